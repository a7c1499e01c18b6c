"""CRNN / RadCLN on synthetic CT cohorts: out-of-fold C-indices, speed and memory.

For each seed: synthesize a 200-patient CT cohort, run ``train`` (preset ``cpu``, 5-fold CV repeated
``--repeats`` times with CV seeds seed .. seed + repeats - 1; C-indices are the mean over repeats) with
the true log-hazard as the oracle, then time a second preprocessing pass (cache) and inference
with the final model (with and without preprocessing). With two or more seeds, each run's final
models (``crnn`` and ``crnn+clinical``) also score the next seed's cohort, patients they never saw
(external validation: Harrell's C with its bootstrap CI, beside that cohort's oracle). Prints one
line per seed and the medians, and writes ``benchmarks/results/crnn.json``.

    .venv/bin/python benchmarks/crnn_benchmark.py --seeds 0 1
    .venv/bin/python benchmarks/crnn_benchmark.py --independent --seeds 0   # benchmarks/independent_cohort.py

``--independent`` uses cohorts that hccprog's generator did not write (MetaImage files in LPS,
two phases, times in months, 15% without follow-up; see ``independent_cohort.py``) and writes
``benchmarks/results/crnn_independent.json``.
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

import pandas as pd
import torch

from hccprog import __version__
from hccprog.cohort import load_cohort
from hccprog.preprocessing import preprocess_cohort
from hccprog.synth import SynthConfig, synthesize
from hccprog.training.config import resolve_config
from hccprog.training.predict import predict_cohort
from hccprog.training.run import train_run

MODELS = ("crnn", "crnn+clinical", "clinical_cox", "oracle")


def _independent(out: Path, patients: int, seed: int) -> None:
    script = Path(__file__).with_name("independent_cohort.py")
    subprocess.run([sys.executable, str(script), str(out), "--patients", str(patients), "--seed", str(seed)],
                   check=True, stdout=subprocess.DEVNULL)


def _oracle(cohort_dir: Path, independent: bool) -> pd.Series:
    """The true log-hazard of OS per patient id, from the cohort's truth.csv."""
    id_col, col = ("pid", "log_hazard") if independent else ("patient_id", "log_hazard_os")
    return pd.read_csv(cohort_dir / "truth.csv", dtype={id_col: str}).set_index(id_col)[col].rename("oracle")


def one_seed(seed: int, patients: int, work: Path, epochs: int | None, independent: bool = False,
             repeats: int = 3) -> dict:
    cohort_dir = work / f"cohort-{seed}"
    if independent:
        _independent(cohort_dir, patients, seed)
    else:
        synthesize(cohort_dir, SynthConfig(patients=patients, seed=seed), overwrite=True)
    cohort = load_cohort(cohort_dir / "cohort.yaml").cohort
    cfg = resolve_config("cpu", n_boot=1000, seed=seed, cv={"folds": 5, "repeats": repeats, "seed": seed},
                         training={"seed": seed, **({"epochs": epochs} if epochs else {})})
    cache = work / f"cache-{seed}"
    run = work / f"run-{seed}"
    t0 = time.perf_counter()
    _, metrics = train_run(cohort, cohort_dir / "cohort.yaml", cfg, run, overwrite=True, cache_dir=cache,
                           extra_scores=_oracle(cohort_dir, independent).to_frame())
    train_s = time.perf_counter() - t0
    conf = json.loads(json.dumps(__import__("yaml").safe_load((run / "config.yaml").read_text())))
    first_prep = conf["preprocessing_stats"]["seconds"]
    second = preprocess_cohort(cohort, cfg.preprocessing, cache_dir=cache)
    epochs_s = [rec["seconds"] for f in sorted((run / "training").glob("fold-*.json"))
                for rec in json.loads(f.read_text())["history"]]
    # inference: a fresh cache (preprocessing included) and the model alone
    with tempfile.TemporaryDirectory() as fresh:
        _, full = predict_cohort(run, cohort, cache_dir=Path(fresh))
    _, cached = predict_cohort(run, cohort, cache_dir=cache)
    out = {"seed": seed, "patients": patients, "events": metrics["n_events"], "cv_repeats": repeats,
           "train_seconds": round(train_s, 1),
           "preprocess_first_s": first_prep, "preprocess_second_s": second.stats["seconds"],
           "preprocess_second_ratio": round(second.stats["seconds"] / first_prep, 4),
           "seconds_per_epoch_median": round(statistics.median(epochs_s), 2),
           "inference_s_per_patient_with_preprocessing": full["seconds_per_patient"],
           "inference_s_per_patient_cached": cached["seconds_per_patient"]}
    for m in MODELS:
        est = metrics["models"][m]["harrell_c"]
        out[f"c_{m}"] = [round(est["value"], 4), round(est["ci_lower"], 4), round(est["ci_upper"], 4)]
    for comp in metrics["comparisons"]:
        if comp["model"] in ("crnn", "crnn+clinical") and comp["reference"] == "clinical_cox":
            d = comp["harrell_c_difference"]
            out[f"c_{comp['model']}_minus_clinical_cox"] = [round(d[k], 4) for k in ("value", "ci_lower", "ci_upper")]
    out["ratio_fused_to_oracle"] = round(out["c_crnn+clinical"][0] / out["c_oracle"][0], 4)
    return out


def external(train_seed: int, test_seed: int, work: Path, independent: bool) -> dict:
    """The final models of seed ``train_seed``'s run applied to seed ``test_seed``'s cohort."""
    from hccprog.evaluation.bootstrap import bootstrap_ci
    from hccprog.evaluation.survival import harrell_c

    cohort_dir = work / f"cohort-{test_seed}"
    cohort = load_cohort(cohort_dir / "cohort.yaml").cohort
    frame, _ = predict_cohort(work / f"run-{train_seed}", cohort, cache_dir=work / f"cache-{test_seed}")
    outcomes = cohort.outcomes("os", unit=cohort.time_unit)
    oracle = _oracle(cohort_dir, independent)
    row = {"trained_on_seed": train_seed, "scored_seed": test_seed}
    scores = {m: frame[frame["model"] == m].set_index("patient_id")["risk"] for m in ("crnn", "crnn+clinical")}
    scores["oracle"] = oracle.loc[scores["crnn"].index]
    for m, risk in scores.items():
        o = outcomes.loc[risk.index]
        t, e, r = o["time"].to_numpy(float), o["event"].to_numpy(int), risk.to_numpy(float)
        est = bootstrap_ci(lambda idx, t=t, e=e, r=r: harrell_c(t[idx], e[idx], r[idx]), len(t), n_boot=1000,
                           seed=test_seed)
        row[f"c_{m}"] = [round(est.value, 4), round(est.lower, 4), round(est.upper, 4)]
    row["patients"] = len(scores["crnn"])
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=None, help="override the cpu preset's epochs")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the 5-fold CV (C: mean over repeats)")
    ap.add_argument("--independent", action="store_true", help="cohorts from independent_cohort.py")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    name = "crnn_independent" if args.independent else "crnn"
    args.out = args.out or Path(__file__).parent / "results" / f"{name}.json"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            row = one_seed(seed, args.patients, Path(tmp), args.epochs, args.independent, args.repeats)
            print(json.dumps(row), flush=True)
            rows.append(row)
        ext = []
        if len(args.seeds) > 1:  # each run's final models on the next seed's cohort
            for a, b in zip(args.seeds, args.seeds[1:] + args.seeds[:1], strict=True):
                ext.append(external(a, b, Path(tmp), args.independent))
                print("external:", json.dumps(ext[-1]), flush=True)
    summary = {k: statistics.median(r[k][0] if isinstance(r[k], list) else r[k] for r in rows)
               for k in rows[0] if k not in ("seed", "patients", "cv_repeats")}
    result = {"benchmark": name, "cohorts": "independent_cohort.py" if args.independent else "hccprog synth (ct)",
              "hccprog_version": __version__, "machine": platform.machine(),
              "processor": platform.processor(), "torch_threads": torch.get_num_threads(),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "goals": {"fused_over_oracle": ">= 0.90", "fused_minus_clinical_cox": ">= 0.05",
                        "inference_s_per_patient": "<= 1", "preprocess_second_ratio": "<= 0.10"},
              "per_seed": rows, "median": summary, "external": ext}
    print("median:", json.dumps(summary))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
