"""Why does a network not learn? The practitioners' checks on one model and cohort.

For ``--model`` on ``COHORT`` (a ``cohort.yaml``, e.g. a learnability cohort of
``benchmarks/learnability.py --work DIR``), with the model's preset (default ``cpu``):

* input statistics per channel after preprocessing;
* the loss at initialisation beside a constant output's;
* the gradient norm of each branch (top-level modules and one level deeper) on a batch;
* overfitting ``--overfit`` patients (default 16) full-batch: the loss should approach zero;
* a learning-rate range test;
* the class balance, for class heads.

Written as JSON (``--out``; default ``benchmarks/results/diagnostics/<model>-<cohort name>.json``).
The functions live in :mod:`hccprog.training.diagnostics`.

    .venv/bin/python benchmarks/diagnose.py WORK/ct-0/cohort-volume.yaml --model dlop
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from hccprog import __version__
from hccprog.cohort import load_cohort
from hccprog.models import get_model
from hccprog.preprocessing import preprocess_cohort
from hccprog.training.clinical import ClinicalEncoder, clinical_frame
from hccprog.training.config import resolve_config
from hccprog.training.diagnostics import (
    branch_gradient_norms,
    class_balance,
    input_statistics,
    loss_at_initialisation,
    lr_range_test,
    overfit,
)
from hccprog.training.objectives import RiskClassObjective
from hccprog.training.run import risk_class_targets

HERE = Path(__file__).parent


class Prepared:
    """A model's network builder, objective and preprocessed inputs on a cohort (what the checks read)."""

    def __init__(self, cohort_yaml: Path, model: str, *, preset: str = "cpu", endpoint: str = "os", seed: int = 0,
                 cache: Path | None = None, objective_params: dict | None = None) -> None:
        cohort = load_cohort(cohort_yaml).cohort
        extra = {"objective_params": objective_params} if objective_params else {}
        self.cfg = cfg = resolve_config(preset, model=model, endpoint=endpoint, seed=seed, **extra)
        self.spec = spec = get_model(model)
        outcomes = cohort.outcomes(cfg.endpoint, unit=cohort.time_unit)
        data = preprocess_cohort(cohort, cfg.preprocessing, cache_dir=cache, ids=list(outcomes.index))
        self.ids = ids = [p for p in outcomes.index if p in data.ids]
        pos = np.array([data.ids.index(p) for p in ids])
        self.x = data.x[pos].astype(np.float32)
        self.t = outcomes.loc[ids, "time"].to_numpy(float)
        self.e = outcomes.loc[ids, "event"].to_numpy(int)
        self.objective = cfg.objective(cohort.time_unit)
        self.labels = None
        if isinstance(self.objective, RiskClassObjective):
            self.labels, _ = risk_class_targets(cohort, ids, self.t, self.e, self.objective, cfg.objective_params)
        self.clin = None
        if spec.clinical:
            frame = clinical_frame(cohort, ids, cfg.clinical)
            self.clin = ClinicalEncoder(cfg.clinical).fit(frame, self.t, self.e).transform(frame).astype(np.float32)
        self.geometry = data.geometry()
        self.net_cfg = cfg.network_config()

    def build(self) -> torch.nn.Module:
        kw = {"clinical_features": self.clin.shape[1]} if self.clin is not None else {}
        return self.spec.build(self.net_cfg, **self.geometry, **kw)

    def part(self, idx: np.ndarray) -> tuple[tuple, dict]:
        """Positional (x, time, event) and keyword (clin, labels) arguments of the checks for ``idx``."""
        return (self.x[idx], self.t[idx], self.e[idx]), {
            "clin": None if self.clin is None else self.clin[idx],
            "labels": None if self.labels is None else self.labels[idx]}


def diagnose(cohort_yaml: Path, model: str, *, preset: str = "cpu", endpoint: str = "os", n_overfit: int = 16,
             steps: int = 150, seed: int = 0, cache: Path | None = None, objective_params: dict | None = None) -> dict:
    """All the checks of this script on one model and cohort (see the module docstring)."""
    p = Prepared(cohort_yaml, model, preset=preset, endpoint=endpoint, seed=seed, cache=cache,
                 objective_params=objective_params)
    x, objective, build, part, cfg = p.x, p.objective, p.build, p.part, p.cfg
    result: dict = {"model": model, "preset": preset, "cohort": str(cohort_yaml), "patients": len(p.ids),
                    "hccprog_version": __version__, "input_shape": list(x.shape)}
    if p.labels is not None:
        result["class_balance"] = class_balance(p.labels, objective.outputs)
    result["input_statistics"] = input_statistics(x)
    rng = np.random.default_rng(seed)
    batch = rng.choice(len(x), size=min(cfg.training.batch_size, len(x)), replace=False)
    torch.manual_seed(seed)
    net = build()
    args, kw = part(batch)
    result["loss_at_initialisation"] = loss_at_initialisation(net, objective, *args, **kw)
    result["gradient_norms"] = branch_gradient_norms(net, objective, *args, **kw)
    result["gradient_norms_depth2"] = branch_gradient_norms(net, objective, *args, **kw, depth=2)
    few = rng.choice(len(x), size=min(n_overfit, len(x)), replace=False)
    args, kw = part(few)
    t0 = time.perf_counter()
    fit = overfit(build, objective, *args, **kw, steps=steps, lr=cfg.training.lr, seed=seed)
    result["overfit"] = {k: v for k, v in fit.items() if k != "losses"} | {
        "losses_every_10": fit["losses"][::10], "seconds": round(time.perf_counter() - t0, 1)}
    args, kw = part(np.arange(len(x)))
    rt = lr_range_test(build, objective, *args, **kw, batch_size=cfg.training.batch_size, seed=seed)
    result["lr_range_test"] = rt | {"configured_lr": cfg.training.lr}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cohort", type=Path)
    ap.add_argument("--model", required=True)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--endpoint", default="os")
    ap.add_argument("--overfit", type=int, default=16, help="patients to overfit")
    ap.add_argument("--steps", type=int, default=150, help="full-batch steps of the overfit")
    ap.add_argument("--class-column", help="class heads: the classes from this clinical column")
    ap.add_argument("--cache", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    params = {"class_column": args.class_column} if args.class_column else None
    res = diagnose(args.cohort, args.model, preset=args.preset, endpoint=args.endpoint, n_overfit=args.overfit,
                   steps=args.steps, cache=args.cache, objective_params=params)
    out = args.out or HERE / "results" / "diagnostics" / f"{args.model}-{args.cohort.stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".json.partial")
    partial.write_text(json.dumps(res, indent=2) + "\n")
    partial.replace(out)
    print(json.dumps({k: res[k] for k in ("overfit", "loss_at_initialisation", "gradient_norms")}, indent=1))


if __name__ == "__main__":
    main()
