"""Radiomics and delta-radiomics against the clinical Cox model, the networks and the ceilings.

For each cohort (hccprog's CT generator and the independent one, and MRI of each), extracts the
radiomics features twice (fresh cache, then cached: seconds per patient and time point) and
cross-validates each variant with ``train`` (preset ``cpu``; 5-fold CV, ``--repeats`` repeats,
fusion with the clinical Cox model as for the networks). Records the out-of-fold Harrell's C of each
variant and its fusion, the fused model's difference to the clinical Cox model (paired bootstrap CI),
its share of the full-imaging bound of ``ceilings.json`` (the fusion of the true imaging log-hazard:
(C_fused - C_clinical) / (C_bound - C_clinical)), and, beside them, the networks' rows of
``crnn.json`` / ``crnn_independent.json`` / ``progswin.json``. Writes ``benchmarks/results/radiomics.json``
and ``.md``.

    .venv/bin/python benchmarks/radiomics_benchmark.py                     # every cohort (about an hour)
    .venv/bin/python benchmarks/radiomics_benchmark.py --cohorts hccprog-ct:0 --models delta-radiomics-cox
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from hccprog import __version__
from hccprog.cohort import load_cohort
from hccprog.preprocessing.features import extract_features
from hccprog.synth import SynthConfig, synthesize
from hccprog.training.config import resolve_config
from hccprog.training.run import train_run

HERE = Path(__file__).parent
RESULTS = HERE / "results"
MODELS = ["delta-radiomics-cox", "radiomics-cox", "delta-radiomics-xgb", "radiomics-xgb"]
COHORTS = ["hccprog-ct:0", "hccprog-ct:1", "independent-ct:0", "independent-ct:1", "hccprog-mri:0",
           "independent-mri:0"]


def _cohort(kind: str, seed: int, patients: int, work: Path) -> Path:
    out = work / f"{kind}-{seed}"
    if out.exists():
        return out / "cohort.yaml"
    source, modality = kind.split("-")
    if source == "independent":
        args = [sys.executable, str(HERE / "independent_cohort.py"), str(out), "--patients", str(patients), "--seed",
                str(seed)] + (["--modality", "mri", "--followups", "2"] if modality == "mri" else [])
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    else:
        kw = {"modality": "mri", "followups": 2} if modality == "mri" else {}  # as progswin.json
        synthesize(out, SynthConfig(patients=patients, seed=seed, **kw), overwrite=True)
    return out / "cohort.yaml"


def _c(metrics: dict, name: str) -> list[float] | None:
    m = metrics["models"].get(name)
    if not m or not m.get("harrell_c"):
        return None
    h = m["harrell_c"]
    return [round(h["value"], 4), round(h["ci_lower"], 4), round(h["ci_upper"], 4)]


def _diff(metrics: dict, name: str) -> list[float] | None:
    for comp in metrics["comparisons"]:
        if comp["model"] == name and comp["reference"] == "clinical_cox":
            d = comp["harrell_c_difference"]
            return [round(d["value"], 4), round(d["ci_lower"], 4), round(d["ci_upper"], 4)]
    return None


def _bound(kind: str, seed: int, endpoint: str) -> float | None:
    """C of the fused true imaging log-hazard (``ceilings.json``), where it was measured."""
    path = RESULTS / "ceilings.json"
    if not path.exists():
        return None
    for row in json.loads(path.read_text())["rows"]:  # the same cohort only (its MRI one has no follow-up)
        if row["cohort"] == kind and row["seed"] == seed and row["endpoint"] == endpoint:
            return row["c_index"].get("true_imaging+clinical", [None])[0]
    return None


def _networks(kind: str, seed: int) -> dict:
    """The networks' fused C on the same cohort, from their committed results."""
    out = {}
    files = {"hccprog-ct": ("crnn.json", "crnn"), "independent-ct": ("crnn_independent.json", "crnn"),
             "hccprog-mri": ("progswin.json", "progswin"), "independent-mri": ("progswin.json", "progswin")}
    name, model = files[kind]
    path = RESULTS / name
    if not path.exists():
        return out
    data = json.loads(path.read_text())
    for row in data.get("per_seed") or []:
        if row.get("seed") == seed and f"c_{model}+clinical" in row:
            out[f"{model}+clinical"] = row[f"c_{model}+clinical"]
    for row in data.get("runs") or []:
        if row.get("cohort") == kind and row.get("seed") == seed:
            c = row["c_index"].get(f"{model}+clinical")
            if c:
                out[f"{model}+clinical"] = [c["value"], c["ci_lower"], c["ci_upper"]]
    return out


def one(kind: str, seed: int, args, work: Path) -> list[dict]:
    path = _cohort(kind, seed, args.patients, work)
    cohort = load_cohort(path).cohort
    endpoint = "os"
    truth = pd.read_csv(path.parent / "truth.csv", dtype=str)
    truth = truth.set_index(truth.columns[0])
    col = next(c for c in (f"log_hazard_{endpoint}", "log_hazard") if c in truth)
    oracle = truth[[col]].astype(float).rename(columns={col: "oracle"})
    cache = work / f"cache-{kind}-{seed}"
    shutil.rmtree(cache, ignore_errors=True)
    feat_cfg = resolve_config("cpu", model=args.models[0]).preprocessing
    t0 = time.perf_counter()
    features = extract_features(cohort, feat_cfg, cache_dir=cache)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    extract_features(cohort, feat_cfg, cache_dir=cache)
    second = time.perf_counter() - t0
    tps = features.stats["timepoints"]
    rows = []
    bound = _bound(kind, seed, endpoint)
    for model in args.models:
        cfg = resolve_config("cpu", model=model, endpoint=endpoint, n_boot=args.n_boot, seed=seed,
                             final_model=False, cv={"folds": 5, "repeats": args.repeats, "seed": seed})
        run = work / f"run-{kind}-{seed}-{model}"
        t0 = time.perf_counter()
        _, metrics = train_run(cohort, path, cfg, run, overwrite=True, cache_dir=cache, extra_scores=oracle)
        clin = _c(metrics, "clinical_cox")
        fused = _c(metrics, f"{model}+clinical")
        row = {"cohort": kind, "seed": seed, "endpoint": endpoint, "patients": metrics["n_patients"],
               "events": metrics["n_events"], "model": model, "cv_repeats": args.repeats,
               "train_seconds": round(time.perf_counter() - t0, 1),
               "extraction": {"timepoints": tps, "first_s": round(first, 1), "cached_s": round(second, 2),
                              "first_s_per_patient_timepoint": round(first / tps, 3),
                              "cached_ratio": round(second / first, 4), "features": features.stats["features"]},
               "c_index": {k: _c(metrics, k) for k in (model, f"{model}+clinical", "clinical_cox", "oracle")},
               "fused_minus_clinical_cox": _diff(metrics, f"{model}+clinical"),
               "bound_c": bound,
               "share_of_bound": (round((fused[0] - clin[0]) / (bound - clin[0]), 3)
                                  if bound and fused and clin and bound > clin[0] else None),
               "networks": _networks(kind, seed)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def _fmt(c) -> str:
    return "-" if not c else f"{c[0]:.3f} ({c[1]:.3f}-{c[2]:.3f})"


def render(result: dict) -> str:
    lines = ["# Radiomics and delta-radiomics on the benchmark cohorts", "",
             f"Generated by `benchmarks/radiomics_benchmark.py` (hccprog {result['hccprog_version']}); "
             f"{result['patients']} patients per cohort, overall survival, 5-fold CV x {result['repeats']} "
             "repeats, preset `cpu` (4 mm isotropic grid, original image; tumor, liver, 5 mm ring), fusion with "
             "the clinical Cox model in each fold. Harrell's C with patient-bootstrap 95% CIs. The bound is the "
             "C of the true imaging log-hazard fused the same way (`ceilings.json`); share = (fused - clinical) "
             "/ (bound - clinical). Networks: the fused network's C on the same cohort from its own results file.",
             "",
             "| cohort | model | C | fused C | clinical Cox | fused - clinical (95% CI) | share of bound | "
             "network (fused) | extraction s / patient x time point (cached ratio) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["runs"]:
        c = r["c_index"]
        net = ", ".join(f"{k} {_fmt(v)}" for k, v in r["networks"].items()) or "-"
        ex = r["extraction"]
        share = "-" if r["share_of_bound"] is None else f"{100 * r['share_of_bound']:.0f} %"
        lines.append(f"| {r['cohort']} seed {r['seed']} | {r['model']} | {_fmt(c[r['model']])} | "
                     f"{_fmt(c[r['model'] + '+clinical'])} | {_fmt(c['clinical_cox'])} | "
                     f"{_fmt(r['fused_minus_clinical_cox'])} | {share} | {net} | "
                     f"{ex['first_s_per_patient_timepoint']:.2f} ({ex['cached_ratio']:.3f}) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohorts", nargs="+", metavar="KIND:SEED", default=COHORTS)
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=RESULTS / "radiomics.json")
    ap.add_argument("--work", type=Path, default=None, help="keep cohorts and runs here (default: a temp folder)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="radiomics-bench-"))
    rows = []
    try:
        for item in args.cohorts:  # the files are rewritten after each cohort
            kind, seed = item.split(":")
            rows += one(kind, int(seed), args, work)
            _write(args, rows)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")


def _write(args, rows: list[dict]) -> None:
    result = {"benchmark": "radiomics", "hccprog_version": __version__, "machine": platform.machine(),
              "patients": args.patients, "repeats": args.repeats,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "goals": {"delta-radiomics-cox+clinical": ">= crnn+clinical - 0.01 on every CT cohort; >= 70 % of the "
                                                       "full-imaging bound on hccprog's cohorts",
                        "extraction": "<= 2 s per patient and time point; cached <= 10 % of the first run"},
              "runs": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(render(result))


if __name__ == "__main__":
    main()
