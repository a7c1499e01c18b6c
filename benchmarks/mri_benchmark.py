"""The MRI models (ProgSwin-UNETR, DMMGNet) on synthetic MRI cohorts: C-index (and the model's
classification metrics) against the clinical Cox model and the oracle, cost per epoch and per
patient; for ProgSwin-UNETR also the paper configuration's CPU forward pass at 3 x 128^3.

For each seed, ``hccprog synth --modality mri`` with 200 patients, and for each independent seed
the same from ``independent_cohort.py --modality mri`` (not hccprog's generator);
``train --model <model> --preset cpu`` with 5-fold CV. progswin: three time points (pre-treatment,
after the first and second TACE), endpoint OS. dmmgnet: the pre-treatment T2 and PV series,
endpoint PFS where the cohort has it (hccprog's), else OS (the independent cohort has OS only).
The paper forward runs in a child process so that its peak RSS is its own. Writes
``benchmarks/results/<model>.json`` (``--append`` adds runs to an existing file).

    .venv/bin/python benchmarks/mri_benchmark.py --model progswin --seeds 0 --independent-seeds 0 --jobs 2
    .venv/bin/python benchmarks/mri_benchmark.py --model dmmgnet --seeds 0 --independent-seeds 0
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hccprog import __version__
from hccprog.cohort import load_cohort
from hccprog.models import get_model
from hccprog.preprocessing import preprocess_cohort
from hccprog.synth import SynthConfig, synthesize
from hccprog.training.config import resolve_config
from hccprog.training.run import train_run

PAPER_FORWARD = """
import json, resource, time, torch
from hccprog.models import get_model
from hccprog.training.config import resolve_config
torch.set_num_threads({threads})
cfg = resolve_config("paper", model="progswin")
net = get_model("progswin").build(cfg.network_config(), streams=3, channels=1).eval()
x = torch.rand(1, 3, 1, 128, 128, 128)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
with torch.no_grad():
    t0 = time.perf_counter(); out = net(x); seconds = time.perf_counter() - t0
print(json.dumps({{"input": [1, 3, 128, 128, 128], "output": list(out.shape), "seconds": round(seconds, 2),
                  "parameters": sum(p.numel() for p in net.parameters()),
                  "rss_before_forward_mb": round(before, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}}))
"""


def paper_forward(threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", PAPER_FORWARD.format(threads=threads)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _c(metrics: dict, name: str) -> dict:
    return {q: round(metrics["models"][name]["harrell_c"][q], 4) for q in ("value", "ci_lower", "ci_upper")}


# dmmgnet reads the pre-treatment time point only (the independent generator writes at least one follow-up)
FOLLOWUPS = {"progswin": 2, "dmmgnet": 0}
ENDPOINTS = {"progswin": ["os"], "dmmgnet": ["pfs", "os"]}  # the first one the cohort has


def one(model: str, kind: str, seed: int, patients: int, work: Path) -> dict:
    path = work / f"{kind}-mri-{seed}-{FOLLOWUPS[model]}"
    if kind == "independent":
        script = Path(__file__).with_name("independent_cohort.py")
        subprocess.run([sys.executable, str(script), str(path), "--patients", str(patients), "--seed", str(seed),
                        "--modality", "mri", "--followups", str(max(1, FOLLOWUPS[model]))], check=True,
                       stdout=subprocess.DEVNULL)
    else:
        synthesize(path, SynthConfig(patients=patients, seed=seed, modality="mri", followups=FOLLOWUPS[model]),
                   overwrite=True)
    cohort = load_cohort(path / "cohort.yaml").cohort
    endpoint = next(e for e in ENDPOINTS[model] if e in cohort.endpoints)
    truth = pd.read_csv(path / "truth.csv", dtype=str)
    truth = truth.set_index(truth.columns[0])
    col = next(c for c in (f"log_hazard_{endpoint}", "log_hazard") if c in truth)
    oracle = truth[[col]].astype(float).rename(columns={col: "oracle"})
    cfg = resolve_config("cpu", model=model, endpoint=endpoint, n_boot=1000, seed=seed, final_model=False,
                         cv={"folds": 5, "repeats": 1, "seed": seed}, training={"seed": seed})
    run, cache = work / f"run-{model}-{kind}-{seed}", work / f"cache-{model}-{kind}-{seed}"
    t0 = time.perf_counter()
    _, metrics = train_run(cohort, path / "cohort.yaml", cfg, run, overwrite=True, cache_dir=cache,
                           extra_scores=oracle)
    seconds = time.perf_counter() - t0
    epochs = [rec["seconds"] for f in sorted((run / "training").glob("fold-*.json"))
              for rec in json.loads(f.read_text())["history"]]
    data = preprocess_cohort(cohort, cfg.preprocessing, cache_dir=cache)
    net = get_model(model).build(cfg.network_config(), **data.geometry()).eval()
    x = torch.as_tensor(data.x[:32].astype(np.float32))
    with torch.no_grad():
        t1 = time.perf_counter()
        net(x)
        infer = (time.perf_counter() - t1) / len(x)
    row = {"cohort": f"{kind}-mri", "seed": seed, "patients": patients, "endpoint": endpoint,
           "events": metrics["n_events"],
           "train_seconds": round(seconds, 1), "seconds_per_epoch_median": round(statistics.median(epochs), 2),
           "epochs_run": len(epochs), "parameters": sum(p.numel() for p in net.parameters()),
           "inference_s_per_patient": round(infer, 4),
           "c_index": {k: _c(metrics, k) for k in (model, f"{model}+clinical", "clinical_cox", "oracle")}}
    for comp in metrics["comparisons"]:
        if comp["model"] in (model, f"{model}+clinical") and comp["reference"] == "clinical_cox":
            d = comp["harrell_c_difference"]
            row[f"c_{comp['model']}_minus_clinical_cox"] = {q: round(d[q], 4)
                                                            for q in ("value", "ci_lower", "ci_upper")}
    rc = metrics["models"][model].get("risk_classes")
    if rc:
        row["risk_classes"] = {k: rc[k] for k in ("n_known", "n_unknown", "class_counts", "predicted_counts",
                                                  "accuracy", "f1_macro", "auc_ovr_macro", "auc_ovr", "edges_months")}
    pg = metrics["models"][model].get("progression")
    if pg:
        row["progression"] = pg
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(FOLLOWUPS), default="progswin")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0], help="hccprog synthetic MRI cohorts")
    ap.add_argument("--independent-seeds", type=int, nargs="*", default=[], help="independent_cohort.py MRI cohorts")
    ap.add_argument("--append", action="store_true", help="add the runs to an existing results file")
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--skip-paper-forward", action="store_true", help="progswin: skip the CPU paper-size forward")
    ap.add_argument("--jobs", type=int, default=1, help="cohorts run in parallel (torch threads split)")
    ap.add_argument("--out", type=Path, help="default: benchmarks/results/<model>.json")
    args = ap.parse_args()
    args.out = args.out or Path(__file__).parent / "results" / f"{args.model}.json"
    jobs = [("hccprog", seed) for seed in args.seeds] + [("independent", seed) for seed in args.independent_seeds]
    # with --jobs N the cohorts run N at a time, each process with threads // N torch threads
    threads = max(1, torch.get_num_threads() // max(1, args.jobs))
    with tempfile.TemporaryDirectory() as tmp:
        if args.jobs > 1:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.jobs, mp_context=ctx, initializer=torch.set_num_threads,
                                     initargs=(threads,)) as pool:
                rows = list(pool.map(one, *zip(*[(args.model, kind, seed, args.patients, Path(tmp))
                                                 for kind, seed in jobs], strict=True)))
        else:
            rows = [one(args.model, kind, seed, args.patients, Path(tmp)) for kind, seed in jobs]
    previous = json.loads(args.out.read_text()) if args.append and args.out.exists() else {}
    title = get_model(args.model).summary.split(":")[0]
    result = {"benchmark": f"{args.model} ({title}, cpu preset)", "hccprog_version": __version__,
              "machine": platform.machine(), "torch_threads": threads, "jobs": args.jobs,
              # the largest process: this one, or with --jobs the largest worker (the paper forward runs later)
              "peak_rss_mb": round(max(resource.getrusage(who).ru_maxrss for who in
                                       (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024, 1),
              "goal": "beat the clinical-only model with the difference's 95% CI above 0",
              "runs": previous.get("runs", []) + rows}
    if "paper_forward_cpu" in previous:
        result["paper_forward_cpu"] = previous["paper_forward_cpu"]
    if previous:
        result["peak_rss_mb"] = max(result["peak_rss_mb"], previous.get("peak_rss_mb", 0))
    if args.model == "progswin" and not args.skip_paper_forward:
        result["paper_forward_cpu"] = paper_forward(threads)
        print(json.dumps(result["paper_forward_cpu"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
