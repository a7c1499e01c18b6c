"""``hccprog ablation``: a model's ablation table (the rows its registry entry names, e.g.
DMMGNet's module combinations), each row one cross-validated ``train`` run on the same folds,
written as one table in the paper's layout.

Every row is a full run folder under ``<out>/runs/<row>``; a row whose run folder already holds
the same configuration is reused, so an interrupted ablation resumes at the row it stopped in.
The table (``ablation.csv``, ``ablation.md``) gives, per row, the modules switched on, the
image model's out-of-fold C-index (or response AUC), the clinically fused model's, their
difference from the clinical-only model with its paired 95% CI, and the progression head's AUC
where the model has one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from hccprog.cohort.model import Cohort
from hccprog.evaluation.metrics import estimate_text
from hccprog.models.registry import get_model
from hccprog.runs import atomic_write_text, write_json
from hccprog.safe_yaml import load_yaml
from hccprog.training.config import TrainRunConfig
from hccprog.training.run import train_run

Progress = Callable[[str, float, float], None]


def _slug(label: str) -> str:
    """A folder name for a row label: '+SGCM+CMTFM' -> 'sgcm-cmtfm'."""
    return re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-").lower() or "row"


def _same_config(run: Path, cfg: TrainRunConfig) -> bool:
    """The run folder holds a finished run of ``cfg`` (settings added since default alike)."""
    try:
        saved = load_yaml(run / "config.yaml")["train"]
        same = TrainRunConfig.model_validate(saved).model_dump(mode="json") == cfg.model_dump(mode="json")
        return (run / "metrics.json").exists() and same
    except (OSError, KeyError, TypeError, ValueError):
        return False


def _difference(metrics: dict, model: str) -> dict | None:
    for comp in metrics.get("comparisons", []):
        if comp["model"] == model and comp["reference"] in ("clinical_cox", "clinical_logistic", "clinical"):
            return comp.get("harrell_c_difference") or comp.get("auc_difference")
    return None


def table_row(label: str, overrides: dict, model: str, metrics: dict) -> dict:
    """One row of the ablation table from a run's metrics.json."""
    response = metrics.get("task") == "response"
    key = "auc" if response else "harrell_c"
    what = "AUC" if response else "C-index"
    models = metrics["models"]
    fused = f"{model}+clinical"
    ref = next((m for m in ("clinical_cox", "clinical_logistic", "clinical") if m in models), None)
    row = {"row": label, **{k: ("yes" if v else "no") if isinstance(v, bool) else v for k, v in overrides.items()}}
    row[f"{model} {what} (95% CI)"] = estimate_text(models[model][key])
    row[f"{what} minus clinical (95% CI)"] = estimate_text(_difference(metrics, model))
    if fused in models:
        row[f"{fused} {what} (95% CI)"] = estimate_text(models[fused][key])
        row["fused minus clinical (95% CI)"] = estimate_text(_difference(metrics, fused))
    if ref is not None:
        row[f"clinical {what}"] = estimate_text(models[ref][key])
    if "oracle" in models:  # a known true risk (synthetic cohorts)
        row[f"oracle {what}"] = estimate_text(models["oracle"][key])
    pg = models[model].get("progression")
    if pg:
        row[f"progression by {pg.get('horizon_months') or pg['horizon']:g} mo AUC (95% CI)"] = \
            estimate_text(pg.get("auc"))
    return row


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table of ``frame`` (cells as text)."""
    cells = [[str(c) for c in frame.columns]] + [[str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("---" for _ in frame.columns) + "|")
    return "\n".join(lines)


def ablation_run(cohort: Cohort, cohort_path: Path, cfg: TrainRunConfig, out: Path, *,
                 rows: list[str] | None = None, cache_dir: Path | None = None,
                 extra_scores: pd.DataFrame | None = None,
                 progress: Progress | None = None) -> tuple[Path, pd.DataFrame]:
    """Run every ablation row of ``cfg.model`` (or the named ``rows``) and write the table."""
    spec = get_model(cfg.model)
    if not spec.ablations:
        raise ValueError(f"model '{cfg.model}' defines no ablation table")
    chosen = rows or list(spec.ablations)
    unknown = [r for r in chosen if r not in spec.ablations]
    if unknown:
        raise ValueError(f"unknown ablation rows {unknown} for '{cfg.model}'; known: {', '.join(spec.ablations)}")
    switches = list(dict.fromkeys(k for row in spec.ablations.values() for k in row))
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    table = []
    for i, label in enumerate(chosen):
        overrides = spec.ablations[label]
        row_cfg = cfg.model_copy(update={"network": {**cfg.network, **overrides}, "final_model": False})
        row_cfg = TrainRunConfig.model_validate(row_cfg.model_dump())
        run = out / "runs" / _slug(label)
        if _same_config(run, row_cfg):
            metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
            if progress:
                progress(f"{label}: reused {run}", i + 1, len(chosen))
        else:
            def tick(msg: str, done: float, total: float, tag: str = f"[{i + 1}/{len(chosen)} {label}]") -> None:
                if progress:
                    progress(f"{tag} {msg}", done, total)

            _, metrics = train_run(cohort, cohort_path, row_cfg, run, overwrite=True, cache_dir=cache_dir,
                                   extra_scores=extra_scores, progress=tick)
        net = row_cfg.network_config()  # every switch of the table, as this row resolves it
        table.append(table_row(label, {k: getattr(net, k) for k in switches}, cfg.model, metrics))
    frame = pd.DataFrame(table)
    atomic_write_text(out / "ablation.csv", frame.to_csv(index=False))
    head = (f"# {cfg.model} ablation: {cohort.name}, {cfg.endpoint}\n\n"
            f"{cfg.cv.folds}-fold cross-validation (seed {cfg.cv.seed}), preset `{cfg.preset}`; out-of-fold "
            f"estimates with 95% CIs ({cfg.n_boot} bootstrap resamples; differences paired). "
            f"Each row's run folder: `runs/<row>/`.\n\n")
    atomic_write_text(out / "ablation.md", head + markdown_table(frame) + "\n")
    write_json(out / "ablation.json", {"model": cfg.model, "rows": table,
                                       "train": json.loads(cfg.model_dump_json())})
    return out / "ablation.md", frame
