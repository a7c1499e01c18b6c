"""What the commands share: loading a cohort for a run, configs, progress lines and the printed tables."""

from __future__ import annotations

import math
import os
import re
import time
from enum import Enum
from pathlib import Path

import typer
import typer.core
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hccprog.cli.app import err, out
from hccprog.errors import ConfigError, HccprogError


def make_progress(*, lines: bool = True):
    """A progress bar on a terminal; off a terminal (a log file, a cluster job) plain timestamped lines
    (:class:`_LineProgress`), or nothing when ``lines`` is False (output meant for a program)."""
    if not err.is_terminal:
        return _LineProgress(err, enabled=lines)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


class _LineProgress:
    """Progress as plain lines for logs: ``YYYY-mm-dd HH:MM:SS progress: <what>``. A line when the stage
    changes (a fold, a model, preprocessing), an epoch summary every ``HCCPROG_LOG_EPOCHS`` epochs (10),
    and otherwise at most one line per ``HCCPROG_LOG_SECONDS`` (30 s) and one when a stage completes.
    The same calls as a rich ``Progress`` (``add_task``, ``update``, a context manager)."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self.every = float(os.environ.get("HCCPROG_LOG_SECONDS", "30") or 30)
        self.epochs = max(1, int(os.environ.get("HCCPROG_LOG_EPOCHS", "10") or 10))
        self.tasks: dict[int, dict] = {}
        self.last_line = 0.0
        self.last_stage: str | None = None

    def __enter__(self) -> _LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **_) -> int:
        task = len(self.tasks)
        self.tasks[task] = {"description": description, "completed": 0.0, "total": total}
        return task

    def update(self, task: int, *, description: str | None = None, completed: float | None = None,
               total: float | None = None, **_) -> None:
        t = self.tasks[task]
        if description is not None:
            t["description"] = description
        if completed is not None:
            t["completed"] = completed
        if total is not None:
            t["total"] = total
        self._maybe_print(t)

    def _maybe_print(self, t: dict) -> None:
        if not self.enabled:
            return
        text = str(t["description"])
        stage = text.split(":")[0] if ":" in text else " ".join(w for w in text.split() if not w[:1].isdigit())
        now = time.monotonic()
        done = t["total"] is not None and t["completed"] is not None and t["completed"] >= t["total"] > 0
        epoch = _EPOCH.search(text)
        due = (stage != self.last_stage or done or now - self.last_line >= self.every
               or (epoch is not None and int(epoch.group(1)) % self.epochs == 0))
        if not due:
            return
        count = "" if ":" in text or t["total"] in (None, 0) or _COUNT.search(text) else \
            f" ({t['completed']:g}/{t['total']:g})"
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.console.print(f"{stamp} progress: {escape(text)}{count}", highlight=False, soft_wrap=True, markup=True)
        self.last_line, self.last_stage = now, stage


_EPOCH = re.compile(r"epoch (\d+)/\d+")


_COUNT = re.compile(r"\d+/\d+")


def parse_triple(text: str, cast, what: str):
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = tuple(cast(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{what}: expected three numbers like 96x96x48, got {text!r}") from None
    if len(values) != 3 or any(v <= 0 for v in values):
        raise ConfigError(f"{what}: expected three positive numbers like 96x96x48, got {text!r}")
    return values


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


def fmt_time(value: float) -> str:
    return "not reached" if math.isnan(value) else f"{value:.1f}"


def json_safe(obj):
    """NaN and infinities (a median not reached) as null: the output stays valid JSON."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def cohort_path(path: Path) -> Path:
    from hccprog.cohort.load import cohort_file

    return cohort_file(path)


def load_for_run(cohort: Path, images: bool, *, endpoint: str | None = None, cv=None):
    """Load a cohort for a command that writes a run, with the checks of `validate` (every voxel decoded once):
    print its errors (then exit 1) and its
    warnings (what the run will fill in or leave out); with ``endpoint`` and ``cv``, stop when the
    endpoint has no event or too few patients for the folds."""
    from hccprog.cohort import load_cohort
    from hccprog.cohort.load import cohort_file
    from hccprog.cohort.sizes import size_warnings

    cohort = cohort_file(cohort)
    result = load_cohort(cohort, check_images=images, check_pixels=True)
    for issue in result.report.errors:
        err.print(f"[bold red]error[/]  {escape(issue.location())}: {escape(issue.message)} [dim]\\[{issue.code}][/]",
                  highlight=False, soft_wrap=True)
    if result.report.errors or result.cohort is None:
        err.print(f"[bold red]FAILED[/]: {len(result.report.errors)} error(s) in the cohort; nothing written "
                  f"(run `hccprog validate {cohort}` for details)", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    warnings = result.report.warnings
    for issue in warnings[:12]:
        err.print(f"[yellow]warning[/] {escape(issue.location())}: {escape(issue.message)} [dim]\\[{issue.code}][/]",
                  highlight=False, soft_wrap=True)
    if len(warnings) > 12:
        err.print(f"[yellow]... and {len(warnings) - 12} more warnings[/] (`hccprog validate {cohort} --all-warnings` "
                  "lists them)", highlight=False)
    c = result.cohort
    if endpoint is not None and cv is not None:
        for w in size_warnings(c, endpoint, cv, file=cohort):
            err.print(f"[yellow]warning[/] {escape(w)}", highlight=False, soft_wrap=True)
    return c


def read_config(path: Path | None, section: str) -> dict:
    """Settings from a YAML file (a run's config.yaml works: its ``section``)."""
    from hccprog.safe_yaml import load_yaml

    if path is None:
        return {}
    loaded = load_yaml(path)
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError("expected a mapping of settings", file=path)
    inner = loaded.get(section, loaded)
    if not isinstance(inner, dict):
        raise ConfigError(f"`{section}:` should be a mapping of settings", file=path)
    return dict(inner)


def parse_horizons(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        values = [float(h) for h in text.split(",")]
    except ValueError:
        raise ConfigError(f"--horizons: expected numbers like 12,24,36, got {text!r}") from None
    bad = [h for h in values if not math.isfinite(h) or h <= 0]
    if bad:
        raise ConfigError(f"--horizons: horizons are times after baseline, in the cohort's time unit, and must be "
                          f"positive; got {', '.join(f'{b:g}' for b in bad)}")
    return values


def metrics_table(metrics: dict, title: str, absent: dict[str, str] | None = None) -> Table:
    from rich import box

    from hccprog.evaluation.metrics import estimate_text, hr_text

    # fits 80 columns: model names are never cut (other cells wrap); Uno's C and the rest: report.html
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
                  caption="* fixed score (not fitted); HR: high vs low risk group; ! degenerate split (a group "
                          "under 10 %)", caption_justify="left")
    table.add_column("model", no_wrap=True)
    for col in ("n", "events"):
        table.add_column(col, justify="right")
    table.add_column("Harrell's C", min_width=19, overflow="fold")
    table.add_column("HR (95% CI)", min_width=11, overflow="fold")
    for name, m in metrics["models"].items():
        rg = m.get("risk_groups", {})
        hr_txt = hr_text(rg.get("hr_high_vs_low", {})) + (" !" if rg.get("degenerate") else "")
        table.add_row(name + (" *" if m["kind"] == "fixed score" else ""), str(m["n"]), str(m["events"]),
                      estimate_text(m["harrell_c"]).replace(" to ", "-"), hr_txt)
    for name, why in (absent or {}).items():  # scores the cohort has or computes, not evaluated: why
        table.add_row(f"[dim]{escape(name)} *[/]", "-", "-", f"[dim]not evaluated: {escape(why)}[/]", "")
    return table


def validated_config(model, settings: dict, source: Path | None):
    """A pydantic config from settings; its errors become one :class:`ConfigError` naming the fields."""
    try:
        return model.model_validate(settings)
    except ValidationError as exc:
        raise ConfigError(pydantic_text(exc), file=source) from None


def pydantic_text(exc) -> str:
    """A pydantic ValidationError as one line: ``field: message; field: message``."""
    return "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())


def configured(build, source: Path | None = None):
    """``build()``, its pydantic or registry errors as one :class:`ConfigError`."""
    try:
        return build()
    except HccprogError:
        raise
    except ValidationError as exc:
        raise ConfigError(pydantic_text(exc), file=source) from None
    except (ValueError, KeyError) as exc:
        raise ConfigError(str(exc).strip("'\""), file=source) from None


def run_and_summarise(run: Path, first_label: str, cohort_name: str, endpoint: str, job) -> None:
    """Run ``job(progress)`` -> (report path, metrics) under a progress bar, then print the
    metrics table, the run folder and the report path; an existing run folder exits 1."""
    started = time.perf_counter()
    with make_progress() as bar:
        task = bar.add_task(first_label, total=None)

        def tick(label: str, done: float, total: float) -> None:
            bar.update(task, description=label, completed=done, total=total)

        report, metrics = job(tick)
    print_metrics(metrics, cohort_name, endpoint, absent=absent_scores(run))
    out.print(f"run folder: {run} ({time.perf_counter() - started:.0f} s)")
    out.print(f"report: {report}")


def absent_scores(run: Path) -> dict[str, str]:
    """The run's ``scores_absent`` (score -> why it was not evaluated), from its config.yaml."""
    from hccprog.safe_yaml import load_yaml

    try:
        conf = load_yaml(run / "config.yaml") or {}
    except (OSError, ValueError):
        return {}
    absent = conf.get("scores_absent") if isinstance(conf, dict) else None
    return {str(k): str(v) for k, v in absent.items()} if isinstance(absent, dict) else {}


def print_metrics(metrics: dict, name: str, endpoint: str | None, *, absent: dict[str, str] | None = None) -> None:
    """The metrics table of a run: AUCs for the response, C-indices for a survival endpoint; ``absent``:
    scores not evaluated, and why."""
    if metrics.get("task") == "response":
        out.print(response_table(metrics, f"{name}: response, PD vs disease control ({metrics['n_patients']} "
                                           f"patients, {metrics['n_positive']} PD)"))
    else:
        out.print(metrics_table(metrics, f"{name}: {endpoint} ({metrics['n_patients']} patients, "
                                          f"{metrics['n_events']} events)", absent))


def response_table(metrics: dict, title: str):
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("model", no_wrap=True)
    for col in ("n", "PD"):
        table.add_column(col, justify="right")
    for col in ("AUC (95% CI)", "difference vs clinical (95% CI)"):
        table.add_column(col, overflow="fold")
    diff = {c["model"]: c["auc_difference"] for c in metrics["comparisons"]}
    for name, m in metrics["models"].items():
        a, d = m.get("auc"), diff.get(name)
        table.add_row(name, str(m["n"]), str(m["n_positive"]),
                      f"{a['value']:.3f} ({a['ci_lower']:.3f} to {a['ci_upper']:.3f})" if a else "n/a",
                      f"{d['value']:+.3f} ({d['ci_lower']:+.3f} to {d['ci_upper']:+.3f})" if d else "")
    return table


def write_table(path: Path, frame) -> None:
    """``frame`` to ``path`` (.parquet or .csv), written aside and moved into place."""
    from hccprog.runs import atomic_path

    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False, lineterminator="\n")


def parse_pairs(items: list[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{option}: expected NAME=NAME, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def read_ids(path: Path) -> list[str]:
    import pandas as pd

    return pd.read_csv(path, dtype={"patient_id": str})["patient_id"].tolist()
