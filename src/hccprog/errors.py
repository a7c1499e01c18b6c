"""Expected failures, typed: every one names what is wrong and where (file, row, column or patient).

The command line prints a :class:`HccprogError` as one message and exits 1; the traceback is
shown only with ``hccprog --debug``. Library callers catch the class they care about; every
class is also the built-in exception that code written before it caught (``ValueError``,
``FileExistsError``), so existing ``except`` clauses keep working.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class HccprogError(Exception):
    """Base class. ``file``, ``row``, ``column`` and ``patient`` locate the problem where known;
    ``hint`` says what to do about it."""

    def __init__(self, message: str, *, file: str | os.PathLike | None = None, row: int | None = None,
                 column: str | None = None, patient: str | None = None, hint: str | None = None):
        self.message = message
        self.file = str(file) if file is not None else None
        self.row = row
        self.column = column
        self.patient = patient
        self.hint = hint
        super().__init__(self._text())

    def location(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column '{self.column}'")
        if self.patient is not None:
            parts.append(f"patient {self.patient}")
        return ", ".join(parts)

    def _text(self) -> str:
        where = self.location()
        return f"{where}: {self.message}" if where else self.message

    def __str__(self) -> str:
        return self._text()


class InputError(HccprogError, ValueError):
    """A cohort, table, image or mask that cannot be used as given."""


class ConfigError(HccprogError, ValueError):
    """A command-line option or configuration file that cannot be used."""


class RunFolderError(HccprogError, ValueError):
    """A run folder (or its checkpoint, model file or resumable state) that is damaged or was not
    written by hccprog."""


class OutputError(HccprogError, OSError):
    """An output folder that cannot be written (under a file, not writable, not ours to replace)."""


class OutputExistsError(OutputError, FileExistsError):
    """The output exists and ``--overwrite`` was not given, or it is not ours to replace."""


def check_writable(out: str | os.PathLike, *, what: str = "output folder", file: bool = False) -> None:
    """Raise :class:`OutputError` when ``out`` could not be created or written, before any work
    starts: a file where the folder (or one of its parents) should be, or a parent folder that is not
    writable. ``file``: ``out`` is a file to write (a table), not a folder."""
    out = Path(out)
    if file:
        try:
            check_writable(out.parent if str(out.parent) else Path("."), what=f"folder of the {what}")
        except OutputError as exc:  # named by the user's --out, not its folder
            raise OutputError(exc.message, file=out) from None
        if out.exists() and out.is_dir():
            raise OutputError(f"the {what} is a folder, not a file: give another --out", file=out)
        return
    if out.exists() and not out.is_dir():
        raise OutputError(f"the {what} is a file, not a folder: give another --out", file=out)
    parent = out if out.exists() else out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"the {what} cannot be created: {parent} is a file, not a folder", file=out)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"the {what} cannot be written: no write permission in {parent}", file=out)
    if out.exists() and not os.access(out.parent, os.W_OK | os.X_OK):
        raise OutputError(f"the {what} cannot be replaced: no write permission in {out.parent}", file=out)
    # permissions do not tell everything (root, read-only or virtual file systems like /proc, /sys):
    # try, as the run will, to make a folder where it goes
    probe_in = parent if not out.exists() else out
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".hccprog-probe.", dir=probe_in))
    except OSError as exc:
        raise OutputError(f"the {what} cannot be written: {probe_in} refuses new files "
                          f"({exc.strerror or exc}); give an --out in a folder you can write to", file=out) from None


def describe(exc: BaseException) -> tuple[str, str | None]:
    """(message, hint) for an exception reaching the command line."""
    if isinstance(exc, HccprogError):
        return str(exc), exc.hint
    if isinstance(exc, OSError) and exc.filename is not None:
        name = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
        return f"{name}: {exc.strerror or exc}", None
    if isinstance(exc, MemoryError):
        return ("out of memory", "the input is larger than this machine can hold: check voxel spacing and "
                                 "image size (`hccprog validate`), or use a smaller preset")
    return (f"unexpected {type(exc).__name__}: {exc}",
            "this is a bug in hccprog or an input it does not check yet: run again with `hccprog --debug ...` "
            "for the traceback and report it")
