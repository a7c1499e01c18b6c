"""What the importers share: how a cohort folder names the files it reads, and the error when a
dataset yields no patient."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from hccprog.errors import InputError


def cohort_path(path: str | os.PathLike, cohort: str | os.PathLike) -> str:
    """``path`` as the cohort folder ``cohort`` writes it in its tables: relative to that folder (with
    ``/``), so that the folder and the data next to it can be moved together; absolute only where no
    relative path exists (another drive on Windows)."""
    target, base = os.path.abspath(path), os.path.abspath(cohort)
    try:
        return Path(os.path.relpath(target, base)).as_posix()
    except ValueError:
        return str(Path(target))


def nothing_imported(source: str | os.PathLike, reasons: Mapping[str, str], *, log: str = "") -> InputError:
    """The error of an import that found no usable patient, with each patient's reason (20 shown)."""
    lines = [f"{pid}: {why}" for pid, why in sorted(reasons.items())]
    shown = "; ".join(lines[:20]) + (f"; ... and {len(lines) - 20} more" if len(lines) > 20 else "")
    text = f"{source}: no patient could be imported ({len(lines)} found): {shown}" if lines else (
        f"{source}: no patient could be imported")
    return InputError(text, hint=log or "check that the folder is the dataset as downloaded and that the "
                                        "clinical table's ids match its patient folders")
