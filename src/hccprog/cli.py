"""The ``hccprog`` command line."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import signal
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
import typer.core
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hccprog import __version__
from hccprog.errors import ConfigError, HccprogError, OutputExistsError, RunFolderError, check_writable, describe
from hccprog.models.registry import DEFAULT_ABLATION_MODEL, DEFAULT_MODEL

out = Console()
err = Console(stderr=True)
_DEBUG = {"on": bool(os.environ.get("HCCPROG_DEBUG"))}


class _Group(typer.core.TyperGroup):
    """The one error path of the command line: an expected failure (:class:`HccprogError`), an
    operating-system error or an unexpected exception is printed as one message, exit 1; the
    traceback only with ``--debug``. Ctrl-C says how to resume, exit 130."""

    def invoke(self, ctx):
        previous = _on_sigterm()
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except KeyboardInterrupt as exc:
            if _DEBUG["on"]:
                raise
            _interrupted(ctx, signal_name="SIGTERM" if isinstance(exc, _Terminated) else None)
            raise typer.Exit(143 if isinstance(exc, _Terminated) else 130) from None
        except Exception as exc:
            if _DEBUG["on"]:
                raise
            message, hint = describe(exc)
            err.print(f"[bold red]error[/]: {escape(message)}", highlight=False, soft_wrap=True)
            if hint:
                err.print(f"[dim]hint[/]: {escape(hint)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


#: Placeholders in option help that :class:`_ModelListCommand` fills from the registry.
MODELS = "{models}"
ABLATION_MODELS = "{ablation_models}"


class _ModelListCommand(typer.core.TyperCommand):
    """A command whose options' help lists the registered models (``model_names()``, built-ins and
    plugins alike). The list is filled in when the help is shown, since the registry loads torch: the
    other uses of the command do not pay for it."""

    def format_help(self, ctx, formatter) -> None:
        from hccprog.models.registry import get_model, model_names

        names = model_names()
        lists = {MODELS: ", ".join(names),
                 ABLATION_MODELS: ", ".join(n for n in names if get_model(n).ablations)}
        for param in self.params:
            text = getattr(param, "help", None)
            if text:
                for key, value in lists.items():
                    text = text.replace(key, value)
                param.help = text
        super().format_help(ctx, formatter)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a cluster's scheduler, ``kill``): unwinds like Ctrl-C, so that staging folders are
    removed and finished folds kept, and says so."""


def _on_sigterm():
    """Turn SIGTERM into :class:`_Terminated` while a command runs; returns the handler it replaced
    (None where no handler can be set: outside the main thread)."""
    def handler(signum, frame):
        raise _Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding host): leave signals alone
        return None


def _interrupted(ctx, *, signal_name: str | None = None) -> None:
    sub = ctx.invoked_subcommand or ""
    if sub in ("train", "ablation"):
        what = ("finished folds are kept: run the same command again to resume at the fold it stopped in "
                "(--overwrite is not needed; nothing was written under --out)")
    elif sub in ("baselines", "predict", "propagate", "synth", "import", "evaluate"):
        what = "nothing was written under --out: run the same command again to start over"
    else:
        what = "nothing was written"
    head = f"terminated ({signal_name})" if signal_name else "interrupted"
    err.print(f"[yellow]{head}[/]: {what}", highlight=False, soft_wrap=True)


app = typer.Typer(
    name="hccprog",
    cls=_Group,
    help="Multimodal prognosis of HCC treated with TACE: cohorts, models, honest evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        out.print(f"hccprog {__version__}")
        raise typer.Exit()


class _LogLine(logging.Handler):
    """hccprog's log messages (a discarded resumable state, a skipped patient) as plain lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        level = "warning" if record.levelno >= logging.WARNING else "note"
        err.print(f"[yellow]{level}[/]: {escape(record.getMessage())}", highlight=False, soft_wrap=True)


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of an error (also HCCPROG_DEBUG=1).")
    ] = False,
) -> None:
    """hccprog: train, validate and explain HCC-TACE prognostic models."""
    _DEBUG["on"] = debug or bool(os.environ.get("HCCPROG_DEBUG"))
    log = logging.getLogger("hccprog")
    if not any(isinstance(h, _LogLine) for h in log.handlers):
        log.addHandler(_LogLine())
    log.setLevel(logging.INFO)
    log.propagate = False


def _progress(*, lines: bool = True):
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


def _triple(text: str, cast, what: str):
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


def _fmt_time(value: float) -> str:
    return "not reached" if math.isnan(value) else f"{value:.1f}"


@app.command()
def validate(
    cohort: Annotated[Path, typer.Argument(help="The cohort's cohort.yaml (or its folder).")],
    images: Annotated[
        bool, typer.Option(help="Check image and mask files (existence, readability, geometry, voxels).")
    ] = True,
    quick: Annotated[bool, typer.Option("--quick", help="Read headers only (skip decoding voxels: faster, but "
                                                        "corrupt pixel data and bad masks go unnoticed).")] = False,
    folds: Annotated[int | None, typer.Option(help="Check the cohort is large enough for this many "
                                                   "cross-validation folds (an error if not; without it, a "
                                                   "warning for 5).")] = None,
    strict: Annotated[bool, typer.Option(help="Treat warnings as errors.")] = False,
    all_warnings: Annotated[
        bool, typer.Option("--all-warnings", help="List every warning (default: first 30).")
    ] = False,
    format: Annotated[
        OutputFormat, typer.Option("--format", help="text, or json on standard output.")
    ] = OutputFormat.text,
) -> None:
    """Check a cohort against the contract: every problem at once, each with file, row and column.

    Reads every table, header and voxel (--quick: headers only). Exits 1 on errors (or on warnings
    with --strict); writes no file.
    """
    from hccprog.cohort import load_cohort, summarize
    from hccprog.cohort.sizes import size_issues

    started = time.perf_counter()
    with _progress(lines=format is OutputFormat.text) as bar:
        task = bar.add_task("checking images", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = load_cohort(cohort, check_images=images, check_pixels=not quick, progress=tick)
    report = result.report
    if result.cohort is not None:
        for issue in size_issues(result.cohort, folds):
            (report.error if issue.level == "error" else report.warning)(
                issue.code, result.cohort.spec.clinical, issue.message, column=issue.column)
    failed = bool(report.errors) or (strict and bool(report.warnings))
    summary = summarize(result.cohort) if result.cohort is not None else None

    if format is OutputFormat.json:
        payload = {
            "ok": not failed,
            "errors": len(report.errors),
            "warnings": len(report.warnings),
            "issues": report.to_dicts(),
            "summary": summary.to_dict() if summary else None,
        }
        print(json.dumps(_json_safe(payload), indent=2, default=str, allow_nan=False))
        raise typer.Exit(1 if failed else 0)

    for issue in report.errors:
        out.print(f"[bold red]error[/]  {issue.location()}: {issue.message} [dim]\\[{issue.code}][/]",
                  highlight=False, soft_wrap=True)
    shown = report.warnings if all_warnings else report.warnings[:30]
    for issue in shown:
        out.print(f"[yellow]warning[/] {issue.location()}: {issue.message} [dim]\\[{issue.code}][/]",
                  highlight=False, soft_wrap=True)
    if len(shown) < len(report.warnings):
        out.print(f"[yellow]... and {len(report.warnings) - len(shown)} more warnings "
                  "(--all-warnings lists them)[/]")
    if summary is not None:
        _print_summary(summary)
    elapsed = time.perf_counter() - started
    verdict = "[bold red]FAILED[/]" if failed else "[bold green]OK[/]"
    out.print(f"{verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s) "
              f"({elapsed:.1f} s)")
    raise typer.Exit(1 if failed else 0)


def _json_safe(obj):
    """NaN and infinities (a median not reached) as null: the output stays valid JSON."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _print_summary(s) -> None:
    table = Table(title=f"cohort {s.name}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("patients", f"{s.patients} ({s.patients_with_images} with images)")
    if s.timepoints:
        table.add_row("time points", ", ".join(f"{k}: {v}" for k, v in s.timepoints.items()))
        table.add_row("series", ", ".join(f"{k}: {v}" for k, v in s.series.items()))
        table.add_row("volumes / masks", f"{s.volumes} / {s.masks}")
    for name, e in s.endpoints.items():
        table.add_row(
            f"endpoint {name}",
            f"{e.patients} patients, {e.events} events; median {name} {_fmt_time(e.median_time)}, "
            f"median follow-up {_fmt_time(e.median_followup)} {s.time_unit}",
        )
    if s.response:
        table.add_row("response", ", ".join(f"{k}: {v}" for k, v in s.response.items()))
    table.add_row("covariates", ", ".join(s.covariates) or "-")
    if s.scores:
        table.add_row("scores", ", ".join(s.scores))
    out.print(table)


class Modality(str, Enum):
    ct = "ct"
    mri = "mri"


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write the cohort to.")],
    patients: Annotated[int, typer.Option(min=1, help="Number of patients.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 0,
    modality: Annotated[
        Modality, typer.Option(help="ct (NC/ART/PV phases) or mri (T2/ART/PV sequences).")
    ] = Modality.ct,
    series: Annotated[
        str | None, typer.Option(help="Comma-separated series to write (default: the modality's three).")
    ] = None,
    shape: Annotated[str, typer.Option(help="Volume size in voxels, IxJxK.")] = "96x96x48",
    spacing: Annotated[str, typer.Option(help="Voxel spacing in mm, IxJxK.")] = "4x4x5",
    followups: Annotated[int, typer.Option(min=0, max=4, help="Follow-up time points after TACE.")] = 1,
    missing_rate: Annotated[float, typer.Option(min=0, max=0.5, help="Share of missing lab values.")] = 0.04,
    workers: Annotated[int, typer.Option(min=1, help="Processes.")] = 2,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it holds a synthetic cohort.")] = False,
) -> None:
    """Write a synthetic HCC-TACE cohort (contract files, images, masks, truth.csv)."""
    from hccprog.synth import SynthConfig, synthesize

    try:
        cfg = SynthConfig(
            patients=patients,
            seed=seed,
            modality=modality.value,
            series=tuple(s.strip() for s in series.split(",")) if series else None,
            shape=_triple(shape, int, "--shape"),
            spacing=_triple(spacing, float, "--spacing"),
            followups=followups,
            missing_rate=missing_rate,
            workers=workers,
        )
    except ConfigError:
        raise
    except ValidationError as exc:
        raise ConfigError(_pydantic_text(exc)) from None
    started = time.perf_counter()
    check_writable(out_dir)
    with _progress() as bar:
        task = bar.add_task("synthesizing patients", total=patients)
        synthesize(out_dir, cfg, overwrite=overwrite, progress=lambda done, total: bar.update(task, completed=done))
    out.print(f"wrote {patients} synthetic patients ({cfg.modality}, {', '.join(cfg.series_names)}, "
              f"{followups} follow-up(s)) to {out_dir} in {time.perf_counter() - started:.1f} s")
    out.print(f"cohort file: {out_dir / 'cohort.yaml'}")


def _cohort_path(path: Path) -> Path:
    from hccprog.cohort.load import cohort_file

    return cohort_file(path)


def _load_for_run(cohort: Path, images: bool, *, endpoint: str | None = None, cv=None):
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


def _read_config(path: Path | None, section: str) -> dict:
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


def _horizons(text: str | None) -> list[float] | None:
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


def _metrics_table(metrics: dict, title: str, absent: dict[str, str] | None = None) -> Table:
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


@app.command()
def baselines(
    cohort: Annotated[Path, typer.Argument(help="The cohort's cohort.yaml.")],
    endpoint: Annotated[str, typer.Option(help="Endpoint name from cohort.yaml (e.g. os, pfs, ttp), or `response` "
                                          "(PD vs disease control: the clinical logistic model).")] = "os",
    run: Annotated[Path, typer.Option("--out", help="Run folder to write.")] = Path("runs/baselines"),
    folds: Annotated[int, typer.Option(help="Outer cross-validation folds.")] = 5,
    repeats: Annotated[int, typer.Option(help="Repeats of the cross-validation (seeds seed..seed+repeats-1).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of folds and bootstrap.")] = 0,
    horizons: Annotated[
        str | None, typer.Option(help="Comma-separated horizons in the cohort's time unit (default: 1, 2, 3 years).")
    ] = None,
    risk_groups: Annotated[
        str, typer.Option(help="Cut-off learned on training folds: median, tertiles, youden.")
    ] = "median",
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples for the CIs.")] = 1000,
    config: Annotated[
        Path | None, typer.Option(help="YAML with baseline settings (a run's config.yaml works: its `baselines:`).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run folder.")] = False,
) -> None:
    """Cross-validate the clinical baselines (HCC scores, penalised Cox, their fusion) and report them."""
    cohort = _cohort_path(cohort)
    from hccprog.experiment.baselines import BaselinesConfig
    from hccprog.experiment.runfolder import write_baselines_run

    settings = _read_config(config, "baselines")
    settings.setdefault("endpoint", endpoint)
    settings.setdefault("cv", {"folds": folds, "repeats": repeats, "seed": seed})
    settings.setdefault("risk_groups", risk_groups)
    settings.setdefault("n_boot", n_boot)
    settings.setdefault("seed", seed)
    if horizons:
        settings["horizons"] = _horizons(horizons)
    cfg = _validated(BaselinesConfig, settings, config)
    check_writable(run)
    c = _load_for_run(cohort, images=False, endpoint=cfg.endpoint, cv=cfg.cv)
    _run_and_summarise(run, "cross-validating", c.name, cfg.endpoint,
                       lambda tick: write_baselines_run(c, cohort, cfg, run, overwrite=overwrite, progress=tick))


def _validated(model, settings: dict, source: Path | None):
    """A pydantic config from settings; its errors become one :class:`ConfigError` naming the fields."""
    try:
        return model.model_validate(settings)
    except ValidationError as exc:
        raise ConfigError(_pydantic_text(exc), file=source) from None


def _pydantic_text(exc) -> str:
    """A pydantic ValidationError as one line: ``field: message; field: message``."""
    return "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run folder (predictions.csv, outcomes.csv, config.yaml).")],
) -> None:
    """Recompute metrics.json, the figures and report.html of a run folder from its predictions."""
    from hccprog.reports.report import evaluate_run

    for name in ("predictions.csv", "outcomes.csv", "config.yaml"):
        if not (run / name).exists():
            raise RunFolderError(f"{run / name} is missing: not a run folder")
    metrics = evaluate_run(run)
    _print_metrics(metrics, str(run), metrics.get("endpoint"), absent=_absent_scores(run))
    out.print(f"report: {run / 'report.html'}")


@app.command(cls=_ModelListCommand)
def train(
    cohort: Annotated[Path, typer.Argument(help="The cohort's cohort.yaml (with images and masks).")],
    model: Annotated[str, typer.Option(help=f"Model name (hccprog.models registry): {MODELS}.")] = DEFAULT_MODEL,
    endpoint: Annotated[str, typer.Option(help="Survival endpoint from cohort.yaml (os, pfs, ttp), or `response` "
                                          "(PD vs disease control, from the cohort's response column).")] = "os",
    run: Annotated[Path, typer.Option("--out", help="Run folder to write.")] = Path("runs/train"),
    preset: Annotated[str, typer.Option(help="Named configuration: cpu (2-core sized), paper (the paper's sizes), "
                                        "tiny (smoke tests).")] = "cpu",
    folds: Annotated[int, typer.Option(help="Outer cross-validation folds.")] = 5,
    repeats: Annotated[int, typer.Option(help="Repeats of the cross-validation.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of folds, initialisation, augmentation and bootstrap.")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Override the preset's maximum epochs.")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples for the CIs.")] = 1000,
    cache: Annotated[Path | None, typer.Option(help="Preprocessing cache folder (default $HCCPROG_CACHE or "
                                                    "~/.cache/hccprog).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML with train settings (a train run's config.yaml works: "
                                                     "its `train:`).")] = None,
    oracle: Annotated[str | None, typer.Option(help="FILE.csv:COLUMN, a known risk per patient (ids in "
                                                    "patient_id or the first column; e.g. a "
                                                    "synthetic cohort's truth.csv:log_hazard_os) reported as 'oracle'.")
                      ] = None,
    class_column: Annotated[str | None, typer.Option(help="Risk-class models (progswin): take the classes "
                                                        "0..K-1 (higher = worse; blank = unknown) from this "
                                                        "clinical column instead of the OS rule.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run folder.")] = False,
) -> None:
    """Cross-validate a deep model (and RadCLN-style fusion with the clinical Cox score) beside the
    clinical baselines; refit it on all patients for `predict`; write the run folder and report.

    An interrupted run resumes at the fold it stopped in when started again with the same settings."""
    cohort = _cohort_path(cohort)
    from hccprog.training.train import TrainRunConfig, resolve_config, train_run

    if config is not None:
        cfg = _validated(TrainRunConfig, _read_config(config, "train"), config)
    else:
        cfg = _configured(lambda: resolve_config(
            preset, model=model, endpoint=endpoint, cv={"folds": folds, "repeats": repeats, "seed": seed},
            training={"seed": seed, **({"epochs": epochs} if epochs else {})}, n_boot=n_boot, seed=seed,
            class_column=class_column))
    _configured(cfg.network_config, config)
    check_writable(run)
    c = _load_for_run(cohort, images=True, endpoint=cfg.endpoint, cv=cfg.cv)
    extra = _oracle_scores(oracle) if oracle else None
    _run_and_summarise(run, "preprocessing", c.name, cfg.endpoint,
                       lambda tick: train_run(c, cohort, cfg, run, overwrite=overwrite, cache_dir=cache,
                                              extra_scores=extra, progress=tick))


def _configured(build, source: Path | None = None):
    """``build()``, its pydantic or registry errors as one :class:`ConfigError`."""
    try:
        return build()
    except HccprogError:
        raise
    except ValidationError as exc:
        raise ConfigError(_pydantic_text(exc), file=source) from None
    except (ValueError, KeyError) as exc:
        raise ConfigError(str(exc).strip("'\""), file=source) from None


@app.command(cls=_ModelListCommand)
def ablation(
    cohort: Annotated[Path, typer.Argument(help="The cohort's cohort.yaml (with images and masks).")],
    model: Annotated[str, typer.Option(
        help=f"A model with an ablation table: {ABLATION_MODELS}.")] = DEFAULT_ABLATION_MODEL,
    endpoint: Annotated[str, typer.Option(help="Survival endpoint (os, pfs, ttp) or `response`.")] = "pfs",
    run: Annotated[Path, typer.Option("--out", help="Folder for the table and one run folder per row.")] = Path(
        "runs/ablation"),
    preset: Annotated[str, typer.Option(help="Named configuration: cpu, paper, tiny.")] = "cpu",
    rows: Annotated[str | None, typer.Option(help="Comma-separated row labels (default: every row).")] = None,
    folds: Annotated[int, typer.Option(help="Outer cross-validation folds (the same folds for every row).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of folds, initialisation, augmentation and bootstrap.")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Override the preset's maximum epochs.")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples for the CIs.")] = 1000,
    cache: Annotated[Path | None, typer.Option(help="Preprocessing cache folder (shared by the rows).")] = None,
    oracle: Annotated[str | None, typer.Option(help="FILE.csv:COLUMN, a known risk per patient, reported as "
                                                    "'oracle' in every row's run.")] = None,
) -> None:
    """Run a model's ablation table (e.g. DMMGNet: baseline, +SGCM, +MMDFM, +CMTFM, pairs, all) with
    the same cross-validation folds and write it as ablation.md / ablation.csv.

    Rows already run with the same settings are reused, so an interrupted ablation resumes."""
    cohort = _cohort_path(cohort)
    from hccprog.training.ablation import ablation_run
    from hccprog.training.train import resolve_config

    cfg = _configured(lambda: resolve_config(
        preset, model=model, endpoint=endpoint, cv={"folds": folds, "repeats": 1, "seed": seed},
        training={"seed": seed, **({"epochs": epochs} if epochs else {})}, n_boot=n_boot, seed=seed))
    _configured(cfg.network_config)
    check_writable(run)
    c = _load_for_run(cohort, images=True, endpoint=cfg.endpoint, cv=cfg.cv)
    extra = _oracle_scores(oracle) if oracle else None
    wanted = [r.strip() for r in rows.split(",")] if rows else None
    started = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task("ablation", total=None)

        def tick(label: str, done: float, total: float) -> None:
            bar.update(task, description=label, completed=done, total=total)

        path, frame = _configured(lambda: ablation_run(c, cohort, cfg, run, rows=wanted, cache_dir=cache,
                                                       extra_scores=extra, progress=tick))
    table = Table(title=f"{model} ablation: {c.name}, {cfg.endpoint}", title_justify="left")
    for col in frame.columns:
        table.add_column(str(col))
    for r in frame.itertuples(index=False):
        table.add_row(*[str(v) for v in r])
    out.print(table)
    out.print(f"table: {path} ({time.perf_counter() - started:.0f} s)")


def _run_and_summarise(run: Path, first_label: str, cohort_name: str, endpoint: str, job) -> None:
    """Run ``job(progress)`` -> (report path, metrics) under a progress bar, then print the
    metrics table, the run folder and the report path; an existing run folder exits 1."""
    started = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task(first_label, total=None)

        def tick(label: str, done: float, total: float) -> None:
            bar.update(task, description=label, completed=done, total=total)

        report, metrics = job(tick)
    _print_metrics(metrics, cohort_name, endpoint, absent=_absent_scores(run))
    out.print(f"run folder: {run} ({time.perf_counter() - started:.0f} s)")
    out.print(f"report: {report}")


def _absent_scores(run: Path) -> dict[str, str]:
    """The run's ``scores_absent`` (score -> why it was not evaluated), from its config.yaml."""
    from hccprog.safe_yaml import load_yaml

    try:
        conf = load_yaml(run / "config.yaml") or {}
    except (OSError, ValueError):
        return {}
    absent = conf.get("scores_absent") if isinstance(conf, dict) else None
    return {str(k): str(v) for k, v in absent.items()} if isinstance(absent, dict) else {}


def _print_metrics(metrics: dict, name: str, endpoint: str | None, *, absent: dict[str, str] | None = None) -> None:
    """The metrics table of a run: AUCs for the response, C-indices for a survival endpoint; ``absent``:
    scores not evaluated, and why."""
    if metrics.get("task") == "response":
        out.print(_response_table(metrics, f"{name}: response, PD vs disease control ({metrics['n_patients']} "
                                           f"patients, {metrics['n_positive']} PD)"))
    else:
        out.print(_metrics_table(metrics, f"{name}: {endpoint} ({metrics['n_patients']} patients, "
                                          f"{metrics['n_events']} events)", absent))


def _response_table(metrics: dict, title: str):
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


def _oracle_scores(spec: str):
    import pandas as pd

    path, _, column = spec.rpartition(":")
    if not path or not column:
        raise ConfigError(f"--oracle: expected FILE.csv:COLUMN, got {spec!r}")
    try:
        frame = pd.read_csv(path, dtype=str)
    except OSError as exc:
        raise ConfigError(f"--oracle: cannot read {path}: {exc}") from None
    if column not in frame.columns:
        raise ConfigError(f"--oracle: {path} has no column {column!r}")
    id_col = "patient_id" if "patient_id" in frame.columns else frame.columns[0]  # else: the first column
    return frame.set_index(id_col)[[column]].astype(float).rename(columns={column: "oracle"})


import_app = typer.Typer(help="Bring a public TACE dataset in, as downloaded: writes a cohort folder (cohort.yaml, "
                              "images.csv) that every command reads. Input files are never modified.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")


def _print_import(res, cohort_file: Path) -> None:
    out.print(f"wrote {res.out}: {res.patients} patients, {res.timepoints} time points, {res.images} image series, "
              f"{res.masks} with a mask")
    for note in res.notes[:20]:
        out.print(f"note: {note}", highlight=False, soft_wrap=True)
    if len(res.notes) > 20:
        out.print(f"... and {len(res.notes) - 20} more notes in {res.out / 'import'}")
    if getattr(res, "uncertain", None):
        out.print(f"[yellow]{len(res.uncertain)} series with an uncertain phase[/] (listed in "
                  f"{res.out / 'import' / 'phases_uncertain.yaml'}; edit it and pass it back with --phases):")
        for r in res.uncertain[:15]:
            out.print(f"  {r['folder']}: {r['phase'] or 'not used'} ({r['reason']})", highlight=False, soft_wrap=True)
    out.print(f"next: hccprog validate {cohort_file}")


@import_app.command("hcc-tace-seg")
def import_hcc_tace_seg(
    download: Annotated[Path, typer.Argument(help="The TCIA download folder (<patient>/<study>/<series>/*.dcm, "
                                                  "with or without metadata.csv).")],
    clinical: Annotated[Path, typer.Option(help="HCC-TACE-Seg_clinical_data-V2.xlsx (or its 'data table' as CSV).")],
    dest: Annotated[Path, typer.Option("--out", help="Cohort folder to write.")],
    phases: Annotated[Path | None, typer.Option(help="YAML mapping series (SeriesInstanceUID or folder) to NC, ART, "
                                                     "PV, DEL or skip; overrides the phases read from the DICOM "
                                                     "headers (import/phases_uncertain.yaml is a template).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a cohort folder written by an earlier import.")] = False,
) -> None:
    """HCC-TACE-Seg (TCIA): studies ordered by date into time points (baseline: the pre-TACE study with the
    DICOM-SEG), series phases from DICOM tags and descriptions, DICOM-SEG masks on their referenced series,
    cohort.yaml from the clinical table (weeks; OS, TTP, mRECIST, scores, covariates)."""
    from hccprog.importers.hcc_tace_seg import import_hcc_tace_seg as run_import

    with _progress() as bar:
        task = bar.add_task("reading DICOM headers", total=None)
        res = run_import(download, clinical, dest, phases=phases, overwrite=overwrite,
                         progress=lambda d, n: bar.update(task, completed=d, total=n))
    _print_import(res, dest / "cohort.yaml")


@import_app.command("waw-tace")
def import_waw_tace(
    dataset: Annotated[Path, typer.Argument(help="The WAW-TACE folder (<id>/<id>_<k>_scan.nii.gz, "
                                                 "tumor_masks_*/<id>/*.nrrd, TotalSegmentator output, XLSX).")],
    dest: Annotated[Path, typer.Option("--out", help="Cohort folder to write.")],
    clinical: Annotated[Path | None, typer.Option(help="The clinical XLSX (default: the .xlsx in the folder).")] = None,
    event_column: Annotated[str | None, typer.Option(help="The binary progression column (default: found by its "
                                                          "name and definition).")] = None,
    time_column: Annotated[str | None, typer.Option(help="The follow-up time column (default: found by its name "
                                                         "and definition).")] = None,
    time_unit: Annotated[str | None, typer.Option(help="days, weeks, months or years (default: from the time "
                                                       "column's definition).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a cohort folder written by an earlier import.")] = False,
) -> None:
    """WAW-TACE: four CT phases per patient, per-lesion tumor masks merged and resampled onto each phase, the
    TotalSegmentator liver where present, and the clinical XLSX (progression and follow-up as the endpoint)."""
    from hccprog.importers.waw_tace import import_waw_tace as run_import

    if time_unit is not None and time_unit not in ("days", "weeks", "months", "years"):
        raise ConfigError(f"--time-unit: {time_unit!r} is not days, weeks, months or years")
    with _progress() as bar:
        task = bar.add_task("reading scans and masks", total=None)
        res = run_import(dataset, dest, clinical=clinical, event=event_column, time=time_column, unit=time_unit,
                         overwrite=overwrite, progress=lambda d, n: bar.update(task, completed=d, total=n))
    for key, value in res.matched.items():
        out.print(f"clinical {key}: {value}", highlight=False, soft_wrap=True)
    _print_import(res, dest / "cohort.yaml")


@app.command()
def propagate(
    cohort: Annotated[Path, typer.Argument(help="The cohort's cohort.yaml.")],
    dest: Annotated[Path, typer.Option("--out", help="Folder of the new cohort (masks, QC figures, images.csv).")],
    bspline: Annotated[bool, typer.Option(help="Add a B-spline stage after rigid and affine.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace a folder written by an earlier propagate.")] = False,
) -> None:
    """Masks for every time point that has none, propagated from the nearest masked time point of the same
    patient by registration (rigid, affine, optionally B-spline; liver-region metric), written as a new cohort
    with mask_source marked, a QC figure per patient and time point, and propagation.csv (figure of merit).
    train and predict do the same on the fly when a cohort lacks masks; this makes it visible and checkable."""
    cohort = _cohort_path(cohort)
    from hccprog.preprocessing.masks import propagate_cohort
    from hccprog.preprocessing.register import RegistrationConfig

    check_writable(dest)
    c = _load_for_run(cohort, images=True)
    started = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task("registering", total=None)
        merit = propagate_cohort(c, cohort, dest, cfg=RegistrationConfig(bspline=bspline), overwrite=overwrite,
                                 progress=lambda d, n: bar.update(task, completed=d, total=n))
    done = merit[merit["status"] == "propagated"] if len(merit) else merit
    out.print(f"{len(done)} time point(s) got a propagated mask in {time.perf_counter() - started:.1f} s"
              + (f"; liver NCC median {done['ncc_before'].median():.2f} -> {done['ncc_after'].median():.2f}"
                 if len(done) else ""))
    for row in merit[merit["status"] != "propagated"].itertuples() if len(merit) else []:
        out.print(f"note: {row.patient_id} {row.timepoint}: {row.status}")
    out.print(f"QC figures: {dest / 'qc'}; figure of merit: {dest / 'propagation.csv'}")
    out.print(f"cohort file: {dest / 'cohort.yaml'}")


@app.command()
def features(
    cohort: Annotated[Path, typer.Argument(help="The cohort's cohort.yaml.")],
    dest: Annotated[Path, typer.Option("--out", help="The table to write: .parquet or .csv.")] = Path(
        "features.parquet"),
    config: Annotated[Path | None, typer.Option(help="YAML of radiomics settings (FeatureConfig: resample_mm, "
                                                "bin_width_ct, filters, regions, ring_mm, ...).")] = None,
    perturbations: Annotated[bool, typer.Option(help="Also the rows of the tumor's eroded and dilated masks "
                                                "(column perturbation).")] = False,
    cache: Annotated[Path | None, typer.Option(help="Feature cache folder (default $HCCPROG_CACHE or "
                                               "~/.cache/hccprog).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing table.")] = False,
) -> None:
    """Radiomics features (PyRadiomics, IBSI-aligned settings) of every patient, time point, series and region
    (tumor, liver, peritumoral ring) as one long table: patient_id, timepoint, series, region, feature, value.
    The settings are written beside it (<name>.settings.yaml); extraction is cached by content."""
    cohort = _cohort_path(cohort)
    from hccprog.preprocessing.features import FeatureConfig, extract_features
    from hccprog.runs import write_yaml

    if dest.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError(f"--out {dest}: the table is written as .parquet or .csv")
    if dest.exists() and not overwrite:
        raise OutputExistsError("exists; give --overwrite to replace it", file=dest)
    check_writable(dest, what="output table", file=True)
    cfg = _validated(FeatureConfig, _read_config(config, "features"), config)
    c = _load_for_run(cohort, images=True)
    started = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task("extracting image features", total=None)
        got = extract_features(c, cfg, cache_dir=cache, progress=lambda d, n: bar.update(task, completed=d, total=n))
    table = got.table if perturbations else got.table[got.table["perturbation"] == "original"].drop(
        columns="perturbation")
    _write_table(dest, table.drop(columns="timepoint_index"))
    write_yaml(dest.with_name(f"{dest.stem}.settings.yaml"),
               {"hccprog_version": __version__, "cohort": str(cohort.resolve()),
                "features": cfg.model_dump(mode="json"), "series": got.channels, "stats": got.stats,
                "skipped": got.skipped, "imputed": got.imputed})
    for pid, why in got.skipped.items():
        out.print(f"note: {pid} skipped: {why}")
    out.print(f"{got.stats['patients']} patients, {got.stats['timepoints']} time points, {len(table)} rows in "
              f"{time.perf_counter() - started:.1f} s: {dest}")


def _write_table(path: Path, frame) -> None:
    """``frame`` to ``path`` (.parquet or .csv), written aside and moved into place."""
    from hccprog.runs import atomic_path

    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False, lineterminator="\n")


def _pairs(items: list[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{option}: expected NAME=NAME, got {item!r}")
        out[key.strip()] = value.strip()
    return out


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="A `train` run folder (with models/<model>.pt).")],
    cohort: Annotated[Path, typer.Argument(help="cohort.yaml of the patients to score.")],
    dest: Annotated[Path, typer.Option("--out", help="Folder to write predictions.csv into.")] = Path("predictions"),
    cache: Annotated[Path | None, typer.Option(help="Preprocessing cache folder.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    series_alias: Annotated[list[str] | None, typer.Option(
        "--series-alias", help="COHORT_NAME=MODEL_NAME: read the cohort's series under the name the model was "
                               "trained on (e.g. PORTAL_VENOUS=CT_PV); repeatable; adds to cohort.yaml's "
                               "series_aliases.")] = None,
    covariate_alias: Annotated[list[str] | None, typer.Option(
        "--covariate-alias", help="COHORT_COLUMN=MODEL_COVARIATE (e.g. AFP_ngml=afp); repeatable; adds to "
                                  "cohort.yaml's covariate_aliases.")] = None,
    explain_ids: Annotated[list[str] | None, typer.Option(
        "--explain", help="Also explain this patient (saliency, contributions, patient card) into "
                          "<out>/explanations/<patient>; repeatable; `all` for every scored patient.")] = None,
) -> None:
    """Score new patients with a trained run's final model and its fusion with the clinical Cox
    score (<model>+clinical): risk, risk group (training cut-off) and survival probabilities at the
    run's horizons, in the new cohort's time unit. With outcomes, also metrics and a report.

    Covariates match by name, then case-insensitively; whatever cannot be scored is said, with why."""
    cohort = _cohort_path(cohort)
    from hccprog.training.predict import write_predictions


    if not (run / "config.yaml").exists():
        raise RunFolderError(f"{run / 'config.yaml'} is missing: not a run folder")
    check_writable(dest)
    aliases = {"series": _pairs(series_alias or [], "--series-alias"),
               "covariates": _pairs(covariate_alias or [], "--covariate-alias")}
    c = _load_for_run(cohort, images=True).with_aliases(**aliases)
    with _progress() as bar:
        task = bar.add_task("preprocessing", total=None)
        stats = write_predictions(run, c, cohort, dest, overwrite=overwrite, cache_dir=cache,
                                  progress=lambda d, n: bar.update(task, completed=d, total=n))
    out.print(f"{stats['patients']} patients scored in {stats['seconds_total']:.1f} s "
              f"({stats['seconds_per_patient']:.3f} s per patient); skipped: {len(stats['skipped'])}")
    for note in stats.get("notes", []):
        out.print(f"note: {note}")
    out.print(f"predictions: {dest / 'predictions.csv'}")
    if explain_ids:
        from hccprog.explain.run import explain_run

        scored = sorted({str(p) for p in _read_ids(dest / "predictions.csv")})
        ids = scored if "all" in explain_ids else list(explain_ids)
        with _progress() as bar:
            task = bar.add_task("explaining", total=None)
            summary = explain_run(run, c, ids, dest / "explanations", cache_dir=cache, overwrite=overwrite,
                                  progress=lambda label, d, n: bar.update(task, description=label, completed=d,
                                                                          total=n))
        for note in summary["notes"]:
            out.print(f"note: {note}")
        out.print(f"explanations: {dest / 'explanations'} (a card.html per patient)")
    if stats["validated"] and (dest / "report.html").exists():
        out.print(f"report: {dest / 'report.html'}")
    elif stats["validated"]:  # a response model: AUC against the new cohort's responses
        m = json.loads((dest / "metrics.json").read_text(encoding="utf-8"))
        for name, v in m["models"].items():
            auc = v.get("auc")
            txt = f"{auc['value']:.3f} ({auc['ci_lower']:.3f} to {auc['ci_upper']:.3f})" if auc else "n/a"
            out.print(f"{name}: response AUC {txt}; metrics: {dest / 'metrics.json'}")


@app.command()
def explain(
    run: Annotated[Path, typer.Argument(help="A `train` run folder with a final model.")],
    cohort: Annotated[Path, typer.Argument(help="cohort.yaml of the patients to explain.")],
    patients: Annotated[list[str], typer.Option("--patients", "-p", help="Patient ID to explain; repeatable.")],
    dest: Annotated[Path, typer.Option("--out", help="Folder to write (one sub-folder per patient).")] = Path(
        "explanations"),
    method: Annotated[list[str] | None, typer.Option(
        "--method", help="gradcam++ (default) and/or gradcam; repeatable.")] = None,
    with_occlusion: Annotated[bool, typer.Option("--occlusion", help="Also occlusion sensitivity (model-agnostic, "
                                                   "slower: one forward pass per patch).")] = False,
    nifti: Annotated[bool, typer.Option(help="Write the maps on the original scans as NIfTI.")] = True,
    layer: Annotated[list[str] | None, typer.Option(
        "--layer", help="Explain this module (a name of the network's modules, or a glob) instead of the model's "
                        "default last feature map, e.g. an earlier encoder stage for a finer map; repeatable.")] = None,
    cache: Annotated[Path | None, typer.Option(help="Preprocessing cache folder.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    series_alias: Annotated[list[str] | None, typer.Option(
        "--series-alias", help="COHORT_NAME=MODEL_NAME, as for predict; repeatable.")] = None,
    covariate_alias: Annotated[list[str] | None, typer.Option(
        "--covariate-alias", help="COHORT_COLUMN=MODEL_COVARIATE, as for predict; repeatable.")] = None,
) -> None:
    """What a trained model looked at, per patient: Grad-CAM++ / Grad-CAM overlays on the model's
    input with the liver and tumor contours, the maps on the original scans (NIfTI), the radiomics
    features' or the clinical covariates' contributions, and a printable patient card (card.html)."""
    cohort = _cohort_path(cohort)
    from hccprog.explain.run import METHODS, explain_run

    if not (run / "config.yaml").exists():
        raise RunFolderError(f"{run / 'config.yaml'} is missing: not a run folder")
    methods = tuple(method or ["gradcam++"])
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ConfigError(f"--method: unknown {', '.join(bad)} (known: {', '.join(METHODS)})")
    check_writable(dest)
    aliases = {"series": _pairs(series_alias or [], "--series-alias"),
               "covariates": _pairs(covariate_alias or [], "--covariate-alias")}
    c = _load_for_run(cohort, images=True).with_aliases(**aliases)
    with _progress() as bar:
        task = bar.add_task("explaining", total=None)
        summary = explain_run(run, c, list(patients), dest, methods=methods, with_occlusion=with_occlusion,
                              nifti=nifti, overwrite=overwrite, cache_dir=cache, layers=list(layer or []) or None,
                              progress=lambda label, d, n: bar.update(task, description=label, completed=d, total=n))
    for pid, secs in summary["seconds_per_patient"].items():
        out.print(f"{pid}: maps in {secs['maps']:.1f} s, {secs['total']:.1f} s with rendering")
    for note in summary["notes"]:
        out.print(f"note: {note}")
    out.print(f"explanations: {dest} (a card.html per patient)")


def _read_ids(path: Path) -> list[str]:
    import pandas as pd

    return pd.read_csv(path, dtype={"patient_id": str})["patient_id"].tolist()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
