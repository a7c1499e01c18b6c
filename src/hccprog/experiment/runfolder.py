"""``hccprog baselines``: fit, score and report the clinical baselines into a run folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from hccprog import __version__
from hccprog.cohort.model import Cohort
from hccprog.experiment.baselines import BaselinesConfig, BaselinesResult, run_baselines
from hccprog.reports import figures as F
from hccprog.reports.nomogram import covariate_info, cox_nomogram
from hccprog.reports.nomogram import draw as draw_nomogram
from hccprog.reports.report import evaluate_run
from hccprog.runs import save_figure, staged_run, write_csv, write_json, write_yaml


def public_predictions(preds: pd.DataFrame) -> pd.DataFrame:
    """``predictions.csv``: the first repeat, one row per patient and model, without ``repeat``."""
    first = preds[preds["repeat"] == 0].drop(columns="repeat")
    return first.reset_index(drop=True)


def write_baselines_run(cohort: Cohort, cohort_path: Path, cfg: BaselinesConfig, out: Path, *,
                        overwrite: bool = False,
                        progress: Callable[[str, int, int], None] | None = None) -> tuple[Path, dict]:
    """Run the baselines and leave the run folder ``out``; returns (report path, metrics)."""
    result = run_baselines(cohort, cfg, progress=progress)
    with staged_run(out, overwrite=overwrite) as tmp:
        write_run_files(tmp, cohort, Path(cohort_path), cfg, result)
        metrics = evaluate_run(tmp)
    return Path(out) / "report.html", metrics


def write_run_files(run: Path, cohort: Cohort, cohort_path: Path, cfg: BaselinesConfig, res: BaselinesResult, *,
                    extra: dict | None = None) -> None:
    """Predictions, folds, outcomes, cut-offs, config.yaml (``extra`` keys added; its ``notes``
    appended) and the Cox models' files; ``evaluate_run`` then adds metrics, figures, report."""
    preds = res.predictions
    write_csv(run / "predictions.csv", public_predictions(preds), index=False, float_format="%.6g")
    if cfg.cv.repeats > 1:
        write_csv(run / "predictions_repeats.csv", preds, index=False, float_format="%.6g")
    write_csv(run / "folds.csv", res.folds, index=False)
    write_csv(run / "outcomes.csv", res.outcomes, float_format="%.6g")
    write_json(run / "cutoffs.json", res.cutoffs)
    resolved = cfg.model_copy(update={"horizons": res.horizons})
    response = res.task == "response"
    config = {
        "command": "baselines",
        "task": res.task,
        "title": f"Clinical baselines: {cohort.name}, "
                 + ("response (PD vs disease control)" if response else cfg.endpoint),
        "hccprog_version": __version__,
        "cohort": str(Path(cohort_path).resolve()),
        "cohort_name": cohort.name,
        "endpoint": cfg.endpoint,
        "time_unit": cohort.time_unit,
        "cv": resolved.cv.model_dump(),
        "risk_groups": "youden (risk_group 1 = predicted PD)" if response else resolved.risk_groups,
        "evaluation": {"horizons": res.horizons, "reference": res.reference, "n_boot": cfg.n_boot, "seed": cfg.seed,
                       "survival_times": res.survival_times},
        "score_sources": res.score_sources,
        **({"scores_absent": res.absent_scores} if res.absent_scores else {}),
        "notes": res.notes,
        "baselines": resolved.model_dump(mode="json"),
    }
    for key, value in (extra or {}).items():
        config[key] = config[key] + list(value) if key == "notes" else value
    write_yaml(run / "config.yaml", config)
    for name, model in res.full_models.items():
        hr = model.hazard_ratios()
        write_csv(run / "models" / f"{name}_hazard_ratios.csv", hr, float_format="%.6g")
        rows = hr.rename_axis("label").reset_index()
        save_figure(F.forest_plot(rows, f"{name}: hazard ratio per SD (fitted on all patients, "
                                        f"penalty {model.penalizer_:g})"),
                    run / "figures" / f"forest_model_{name}.png")
        nomo = cox_nomogram(model, covariate_info(cohort), res.horizons, unit=cohort.time_unit, endpoint=cfg.endpoint)
        save_figure(draw_nomogram(nomo, f"{name} nomogram (fitted on all patients)", res.horizons),
                    run / "figures" / f"nomogram_{name}.png")
        write_json(run / "models" / f"{name}.json", {
            "penalizer": model.penalizer_, "tuning_harrell_c": {str(k): v for k, v in model.tuning_.items()},
            "coefficients": {k: float(v) for k, v in model.model_.params_.items()},
            "covariates": model.covariates_,
            "feature_means": {k: float(v) for k, v in model.prep_.mean_.items()},
            "feature_sds": {k: float(v) for k, v in model.prep_.std_.items()},
            "n": len(res.outcomes), "events": int(np.sum(res.outcomes["event"]))})
