"""``hccprog validate``: check a cohort folder and say what a run can use."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
import typer.core
from rich.table import Table

from hccprog.cli.app import app, out
from hccprog.cli.common import OutputFormat, fmt_time, json_safe, make_progress


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
    with make_progress(lines=format is OutputFormat.text) as bar:
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
        print(json.dumps(json_safe(payload), indent=2, default=str, allow_nan=False))
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
            f"{e.patients} patients, {e.events} events; median {name} {fmt_time(e.median_time)}, "
            f"median follow-up {fmt_time(e.median_followup)} {s.time_unit}",
        )
    if s.response:
        table.add_row("response", ", ".join(f"{k}: {v}" for k, v in s.response.items()))
    table.add_row("covariates", ", ".join(s.covariates) or "-")
    if s.scores:
        table.add_row("scores", ", ".join(s.scores))
    out.print(table)
