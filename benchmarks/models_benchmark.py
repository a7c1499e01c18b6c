"""DLOP_Combin (OS, C-index) and CLDCA (response, AUC) against the clinical-only models.

For each cohort (hccprog's synthetic CT cohort of a seed, and/or the independent generator's),
runs ``train`` with preset ``cpu`` and 5-fold CV: ``dlop`` on overall survival (beside the
clinical Cox model) and ``cldca`` on the response (beside the clinical logistic model). Records the
out-of-fold C-index or AUC with 95% CIs, the difference to the clinical model with its CI, the
number of parameters, seconds per epoch and inference seconds per patient (network forward on
preprocessed tensors). Writes ``benchmarks/results/models.json``.

    .venv/bin/python benchmarks/models_benchmark.py --seeds 0 --independent-seeds 0
    .venv/bin/python benchmarks/models_benchmark.py --models dlop   # re-run one model, keep the others' rows
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hccprog import __version__
from hccprog.cohort import load_cohort
from hccprog.models import get_model
from hccprog.preprocessing import preprocess_cohort
from hccprog.survival.preprocess import TabularPreprocessor
from hccprog.synth import SynthConfig, synthesize
from hccprog.training.clinical import clinical_frame
from hccprog.training.config import resolve_config
from hccprog.training.run import train_run


def _cohort(kind: str, seed: int, patients: int, work: Path) -> Path:
    out = work / f"{kind}-{seed}"
    if kind == "independent":
        script = Path(__file__).with_name("independent_cohort.py")
        subprocess.run([sys.executable, str(script), str(out), "--patients", str(patients), "--seed", str(seed)],
                       check=True, stdout=subprocess.DEVNULL)
    else:
        synthesize(out, SynthConfig(patients=patients, seed=seed), overwrite=True)
    return out / "cohort.yaml"


def _inference_seconds(cfg, cohort, cache: Path, clinical_features: int) -> tuple[int, float]:
    spec = get_model(cfg.model)
    data = preprocess_cohort(cohort, cfg.preprocessing, cache_dir=cache)
    shape = data.x.shape
    kw = {"clinical_features": clinical_features} if spec.clinical else {}
    net = spec.build(cfg.network_config(), streams=shape[2], channels=shape[4], **kw).eval()
    params = sum(p.numel() for p in net.parameters())
    x = torch.as_tensor(data.x[:64].astype(np.float32))
    clin = torch.zeros(len(x), clinical_features) if spec.clinical else None
    with torch.no_grad():
        t0 = time.perf_counter()
        net(x) if clin is None else net(x, clin)
        return params, (time.perf_counter() - t0) / len(x)


MODELS = {"dlop": "os", "cldca": "response"}


def one(kind: str, seed: int, patients: int, work: Path, models: list[str]) -> list[dict]:
    path = _cohort(kind, seed, patients, work)
    cohort = load_cohort(path).cohort
    cache = work / f"cache-{kind}-{seed}"
    rows = []
    for model, endpoint in ((m, MODELS[m]) for m in models):
        cfg = resolve_config("cpu", model=model, endpoint=endpoint, n_boot=1000, seed=seed, final_model=False,
                             cv={"folds": 5, "repeats": 1, "seed": seed}, training={"seed": seed})
        run = work / f"run-{kind}-{seed}-{model}"
        t0 = time.perf_counter()
        _, metrics = train_run(cohort, path, cfg, run, overwrite=True, cache_dir=cache)
        seconds = time.perf_counter() - t0
        epochs = [rec["seconds"] for f in sorted((run / "training").glob("fold-*.json"))
                  for rec in json.loads(f.read_text())["history"]]
        # encoded clinical columns (exact for cldca; dlop's screening keeps a subset): the timing input
        n_clin = len(TabularPreprocessor().fit(clinical_frame(cohort, list(cohort.ids), cfg.clinical)).feature_names)
        params, infer = _inference_seconds(cfg, cohort, cache, n_clin)
        row = {"cohort": kind, "seed": seed, "model": model, "endpoint": endpoint, "patients": patients,
               "train_seconds": round(seconds, 1), "seconds_per_epoch_median": round(statistics.median(epochs), 2),
               "parameters": params, "inference_s_per_patient": round(infer, 4)}
        if endpoint == "response":
            m = metrics["models"]
            row["auc"] = {k: {q: round(v["auc"][q], 4) for q in ("value", "ci_lower", "ci_upper")} | {"n": v["n"],
                          "pd": v["n_positive"]} for k, v in m.items()}
            (c,) = metrics["comparisons"]
            row["auc_minus_clinical"] = {q: round(c["auc_difference"][q], 4)
                                         for q in ("value", "ci_lower", "ci_upper", "p_value")}
        else:
            m = metrics["models"]
            row["c_index"] = {k: {q: round(m[k]["harrell_c"][q], 4) for q in ("value", "ci_lower", "ci_upper")}
                              for k in ("dlop", "dlop+clinical", "clinical_cox")}
            for comp in metrics["comparisons"]:
                if comp["model"] in ("dlop", "dlop+clinical") and comp["reference"] == "clinical_cox":
                    d = comp["harrell_c_difference"]
                    row[f"c_{comp['model']}_minus_clinical_cox"] = {q: round(d[q], 4)
                                                                    for q in ("value", "ci_lower", "ci_upper")}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0], help="hccprog synthetic CT cohorts")
    ap.add_argument("--independent-seeds", type=int, nargs="*", default=[0], help="independent_cohort.py cohorts")
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "models.json")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            rows += one("hccprog", seed, args.patients, Path(tmp), args.models)
        for seed in args.independent_seeds:
            rows += one("independent", seed, args.patients, Path(tmp), args.models)
    if args.out.exists():  # rows of models not run this time are kept (each row records its own run)
        rows = [r for r in json.loads(args.out.read_text())["runs"] if r["model"] not in args.models] + rows
    result = {"benchmark": "models (dlop, cldca)", "hccprog_version": __version__, "machine": platform.machine(),
              "torch_threads": torch.get_num_threads(),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "goal": "beat the clinical-only model with the difference's 95% CI above 0", "runs": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
