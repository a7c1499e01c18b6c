"""``hccprog baselines`` and ``hccprog evaluate``: the clinical scores and models, cross-validated."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import typer.core

from hccprog.cli.app import app, out
from hccprog.cli.common import (
    absent_scores,
    cohort_path,
    load_for_run,
    parse_horizons,
    print_metrics,
    read_config,
    run_and_summarise,
    validated_config,
)
from hccprog.errors import RunFolderError, check_writable


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
    cohort = cohort_path(cohort)
    from hccprog.experiment.baselines import BaselinesConfig
    from hccprog.experiment.runfolder import write_baselines_run

    settings = read_config(config, "baselines")
    settings.setdefault("endpoint", endpoint)
    settings.setdefault("cv", {"folds": folds, "repeats": repeats, "seed": seed})
    settings.setdefault("risk_groups", risk_groups)
    settings.setdefault("n_boot", n_boot)
    settings.setdefault("seed", seed)
    if horizons:
        settings["horizons"] = parse_horizons(horizons)
    cfg = validated_config(BaselinesConfig, settings, config)
    check_writable(run)
    c = load_for_run(cohort, images=False, endpoint=cfg.endpoint, cv=cfg.cv)
    run_and_summarise(run, "cross-validating", c.name, cfg.endpoint,
                       lambda tick: write_baselines_run(c, cohort, cfg, run, overwrite=overwrite, progress=tick))


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
    print_metrics(metrics, str(run), metrics.get("endpoint"), absent=absent_scores(run))
    out.print(f"report: {run / 'report.html'}")
