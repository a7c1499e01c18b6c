"""Run folders (``../shared/spec/run-outputs.md``): staged aside, then moved in place, so that a
crashed or interrupted run never leaves a half-written folder under the requested name."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import yaml

from hccprog.errors import OutputExistsError, RunFolderError, check_writable

PREDICTION_COLUMNS = ["patient_id", "model", "fold", "risk"]
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file beside ``path`` to write to: moved onto ``path`` when the block ends, removed
    if it raises. Readers see the old file or the whole new one, never a part.

    The one way hccprog writes a file in place (text, tables, figures, weights, cache entries). The
    temporary name keeps ``path``'s suffix (``.<name>.<random><suffix>``), for writers that choose
    their format by it, and the file gets the usual permissions (the umask), not ``mkstemp``'s 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """``text`` (UTF-8, ``\\n`` line ends) to ``path``, atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def write_csv(path: Path, frame: pd.DataFrame, **kw) -> None:
    atomic_write_text(path, frame.to_csv(lineterminator="\n", **kw))


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False, default=_json_default) + "\n")


def yaml_text(obj) -> str:
    """``obj`` as the YAML that hccprog writes (keys in their order, UTF-8 text)."""
    return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True)


def write_yaml(path: Path, obj) -> None:
    atomic_write_text(path, yaml_text(obj))


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def save_figure(fig, path: Path) -> None:
    """``fig`` to ``path`` (its format from the suffix) at 150 dpi, atomically; the figure is closed."""
    import matplotlib.pyplot as plt  # lazy: matplotlib only where a figure is written

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", pad_inches=0.1)  # nothing drawn outside the axes is cut
    finally:
        plt.close(fig)


#: Written into every staging folder: the process that owns it (a stale one is removed on the next run).
STAGING_MARKER = ".hccprog-staging"
log = logging.getLogger("hccprog")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_staging(out: Path) -> list[Path]:
    """Remove the staging folders of ``out`` (``.<name>.xxxx`` beside it, marked as ours) whose
    process is gone, e.g. after a SIGKILL during the final write; returns what was removed."""
    out = Path(out)
    removed = []
    if not out.parent.is_dir():
        return removed
    for d in out.parent.glob(f".{out.name}.*"):
        marker = d / STAGING_MARKER
        if not d.is_dir() or not marker.is_file():
            continue
        try:
            pid = int(marker.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = -1
        if pid > 0 and pid != os.getpid() and _alive(pid):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
        log.info("removed %s, left behind by an interrupted earlier run of %s", d, out)
    return removed


@contextlib.contextmanager
def staged_output(out: Path, *, overwrite: bool, replaceable: Callable[[Path], bool], what: str) -> Iterator[Path]:
    """Yield a staging folder beside ``out``; on success it replaces ``out``, on failure it is removed.

    An existing ``out`` is replaced only with ``overwrite`` and only if ``replaceable(out)`` says it
    is one of ours (``what`` names it in the error). Staging folders that an earlier, killed run
    left behind are removed first."""
    out = Path(out)
    check_writable(out)
    if out.exists():
        if not overwrite:
            raise OutputExistsError("exists; give --overwrite to replace it", file=out)
        if not replaceable(out):
            raise OutputExistsError(f"{out} exists and is not {what}: not replacing it")
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_staging(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp creates 0700
    (tmp / STAGING_MARKER).write_text(f"{os.getpid()}\n")
    try:
        yield tmp
        (tmp / STAGING_MARKER).unlink(missing_ok=True)
        old = None
        if out.exists():  # move the old folder aside (marked), so that `out` is never missing for long
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
            (old / STAGING_MARKER).write_text(f"{os.getpid()}\n")
            os.replace(out, old / "replaced")
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def run_name(run: Path) -> str:
    """The name a run folder has, or will have once its staging folder (``.<name>.<random>``,
    holding the staging marker) is moved into place."""
    run = Path(run)
    if (run / STAGING_MARKER).exists() and run.name.startswith(".") and "." in run.name[1:]:
        return run.name[1:].rsplit(".", 1)[0]
    return run.name


def staged_run(out: Path, *, overwrite: bool = False):
    """:func:`staged_output` for a run folder (one holding ``config.yaml``, or empty)."""
    return staged_output(out, overwrite=overwrite, what="a run folder",
                         replaceable=lambda p: not any(p.iterdir()) or (p / "config.yaml").exists())


def write_unscored(run: Path, model: str, skipped: dict[str, str]) -> None:
    """``unscored.csv``: the patients ``model`` could not use and why (the run-outputs spec keeps them
    out of predictions.csv; this names them beside it)."""
    if skipped:
        frame = pd.DataFrame([{"patient_id": p, "model": model, "reason": why} for p, why in skipped.items()])
        write_csv(Path(run) / "unscored.csv", frame, index=False)


def read_predictions(run: Path) -> pd.DataFrame:
    """All out-of-fold predictions of a run: ``predictions_repeats.csv`` when the run repeated its
    cross-validation, else ``predictions.csv`` (with ``repeat`` 0)."""
    run = Path(run)
    rep = run / "predictions_repeats.csv"
    frame = pd.read_csv(rep if rep.exists() else run / "predictions.csv", dtype={"patient_id": str})
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise RunFolderError(f"missing columns {missing}", file=run / "predictions.csv")
    if "repeat" not in frame:
        frame.insert(2, "repeat", 0)
    dup = frame.duplicated(["patient_id", "model", "repeat"])
    if dup.any():
        first = frame[dup].iloc[0]
        raise RunFolderError(f"{run / 'predictions.csv'}: patient {first['patient_id']} appears twice for "
                         f"model {first['model']} (row {int(dup.idxmax()) + 2})")
    return frame
