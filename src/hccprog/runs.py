"""Run folders (``../shared/spec/run-outputs.md``): staged aside, then moved in place, so that a
crashed or interrupted run never leaves a half-written folder under the requested name."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import yaml

PREDICTION_COLUMNS = ["patient_id", "model", "fold", "risk"]
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_csv(path: Path, frame: pd.DataFrame, **kw) -> None:
    atomic_write_text(path, frame.to_csv(lineterminator="\n", **kw))


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False, default=_json_default) + "\n")


def write_yaml(path: Path, obj) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=150)
    plt.close(fig)
    os.replace(tmp, path)


@contextlib.contextmanager
def staged_output(out: Path, *, overwrite: bool, replaceable: Callable[[Path], bool], what: str) -> Iterator[Path]:
    """Yield a staging folder beside ``out``; on success it replaces ``out``, on failure it is removed.

    An existing ``out`` is replaced only with ``overwrite`` and only if ``replaceable(out)`` says it
    is one of ours (``what`` names it in the error)."""
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
        if not replaceable(out):
            raise FileExistsError(f"{out} exists and is not {what}: not replacing it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp creates 0700
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def staged_run(out: Path, *, overwrite: bool = False):
    """:func:`staged_output` for a run folder (one holding ``config.yaml``, or empty)."""
    return staged_output(out, overwrite=overwrite, what="a run folder",
                         replaceable=lambda p: not any(p.iterdir()) or (p / "config.yaml").exists())


def read_predictions(run: Path) -> pd.DataFrame:
    """All out-of-fold predictions of a run: ``predictions_repeats.csv`` when the run repeated its
    cross-validation, else ``predictions.csv`` (with ``repeat`` 0)."""
    run = Path(run)
    rep = run / "predictions_repeats.csv"
    frame = pd.read_csv(rep if rep.exists() else run / "predictions.csv", dtype={"patient_id": str})
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{run / 'predictions.csv'}: missing columns {missing}")
    if "repeat" not in frame:
        frame.insert(2, "repeat", 0)
    dup = frame.duplicated(["patient_id", "model", "repeat"])
    if dup.any():
        first = frame[dup].iloc[0]
        raise ValueError(f"{run / 'predictions.csv'}: patient {first['patient_id']} appears twice for "
                         f"model {first['model']} (row {int(dup.idxmax()) + 2})")
    return frame
