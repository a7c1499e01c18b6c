"""Does each network extract what its input plainly holds? Cohorts whose risk is one image quantity.

``benchmarks/ceilings.py`` bounds what a perfect image score could add on the mixed benchmark
cohorts. This script asks the other question. Each learnability cohort keeps the images of a
``hccprog synth`` cohort (CT or MRI, 200 patients) and redraws the outcomes so that the true
log-hazard is **one image quantity** inside a network's input (or two, of moderate strength, in
the mixed cohort); the clinical covariates are permuted across patients jointly, so they carry
nothing (the table's image-derived columns, tumor size and count, BCLC, included). The images
and the generator are untouched: the quantities are the generator's own draws in ``truth.csv``.

Quantities (standardised to mean 0, SD 1 over the cohort; log-hazard = ``beta`` x quantity):

* ``volume``: log of the baseline tumor volume (``tumor_ml_baseline``; DLOP, CLDCA, DMMGNet);
* ``necrosis``: the necrotic fraction, bright on T2 (``necrotic_fraction``; DMMGNet);
* ``change``: the log change of the viable volume after TACE (``viable_log_change``; CRNN, ProgSwin);
* ``arterial``: the arterial enhancement (``arterial_enhancement``; ProgSwin and the CT models that
  read the arterial phase);
* ``mixed``: two of them per network, each at ``beta_mixed``.

Outcomes: Weibull proportional hazards (shape 1.2, median 600 days at log-hazard 0), censored by
a 5-year study with 3 years of accrual and 10 % a year lost to follow-up. ProgSwin-UNETR's four
classes are read from a column (``objective_params.class_column``): the quartiles of the
log-hazard plus Gaussian noise of SD 0.5 (a balanced truth).

For each network and cohort: the network's image-only out-of-fold Harrell C (``cpu`` preset,
5-fold CV, :func:`hccprog.training.run.train_run`) with its 95 % bootstrap CI, the oracle's C
(the true log-hazard), the C of ``radiomics-cox`` on the same cohort (and of
``delta-radiomics-cox`` on the change cohorts, which baseline radiomics cannot see), and for class
heads the confusion matrix, the predicted class counts and the macro one-vs-rest AUC. The gate of
issue 37: the network's C reaches 0.85 x the oracle's, or ``radiomics-cox``'s minus 0.03.

    .venv/bin/python benchmarks/learnability.py                       # all networks (hours on 2 cores)
    .venv/bin/python benchmarks/learnability.py --networks dlop dmmgnet --append
    .venv/bin/python benchmarks/learnability.py --networks dlop --cohorts volume --patients 60 --folds 3 \
        --out /tmp/l.json                                                # a quick look

Results: ``benchmarks/results/learnability.json`` and ``.md`` (``--append`` keeps the rows of
network-cohort pairs not run this time).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from hccprog import __version__
from hccprog.cohort import load_cohort
from hccprog.evaluation.bootstrap import bootstrap_ci
from hccprog.evaluation.survival import harrell_c
from hccprog.synth import SynthConfig, synthesize
from hccprog.training.config import resolve_config
from hccprog.training.run import train_run

HERE = Path(__file__).parent

#: truth.csv column and transform of each quantity
QUANTITIES = {
    "volume": ("tumor_ml_baseline", np.log),
    "necrosis": ("necrotic_fraction", None),
    "change": ("viable_log_change", None),
    "arterial": ("arterial_enhancement", None),
}

#: network -> (modality, {cohort name: quantities})
NETWORKS: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {
    "dlop": ("ct", {"volume": ("volume",), "arterial": ("arterial",), "mixed": ("volume", "arterial")}),
    "cldca": ("ct", {"volume": ("volume",), "arterial": ("arterial",), "mixed": ("volume", "arterial")}),
    "crnn": ("ct", {"change": ("change",), "arterial": ("arterial",), "mixed": ("change", "volume")}),
    "dmmgnet": ("mri", {"volume": ("volume",), "necrosis": ("necrosis",), "mixed": ("volume", "necrosis")}),
    "progswin": ("mri", {"change": ("change",), "arterial": ("arterial",), "mixed": ("change", "arterial")}),
}

WEIBULL_SHAPE, MEDIAN_DAYS = 1.2, 600.0
CLASS_COLUMN = "learn_class"
OUTCOME_COLUMNS = ("os_time", "os_event", "pfs_time", "pfs_event")


def _z(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / values.std()


def log_hazard(truth: pd.DataFrame, quantities: tuple[str, ...], beta: float) -> np.ndarray:
    """The true log-hazard of a learnability cohort: ``beta`` x the sum of the standardised quantities."""
    eta = np.zeros(len(truth))
    for q in quantities:
        column, transform = QUANTITIES[q]
        raw = truth[column].to_numpy(float)
        eta += beta * _z(transform(raw) if transform else raw)
    return eta


def draw_outcomes(eta: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Weibull proportional-hazards death times (days) with administrative and loss-to-follow-up censoring."""
    scale = MEDIAN_DAYS / np.log(2) ** (1 / WEIBULL_SHAPE)
    death = scale * (-np.log(rng.uniform(size=len(eta))) / np.exp(eta)) ** (1 / WEIBULL_SHAPE)
    entry = rng.uniform(0, 3 * 365.25, len(eta))
    censor = np.minimum(5 * 365.25 - entry, rng.exponential(365.25 / 0.10, len(eta)))
    return np.maximum(1, np.round(np.minimum(death, censor))), (death <= censor).astype(int)


def learnability_cohort(base: Path, name: str, quantities: tuple[str, ...], *, beta: float, seed: int) -> dict:
    """Write ``cohort-<name>.yaml`` and ``clinical-<name>.csv`` beside the base cohort (its images
    shared), outcomes drawn from ``quantities``, the covariates permuted; returns the truth."""
    spec = yaml.safe_load((base / "cohort.yaml").read_text())
    clinical = pd.read_csv(base / spec["clinical"], dtype=str, keep_default_na=False)
    truth = pd.read_csv(base / "truth.csv").set_index("patient_id").loc[clinical[spec["id_column"]]]
    rng = np.random.default_rng([seed, *(ord(c) for c in name)])
    eta = log_hazard(truth, quantities, beta)
    time_days, event = draw_outcomes(eta, rng)
    covariates = [c for c in clinical.columns if c != spec["id_column"] and c not in OUTCOME_COLUMNS]
    order = rng.permutation(len(clinical))
    out = clinical.copy()
    out[covariates] = clinical[covariates].to_numpy()[order]  # one permutation: realistic rows, no signal
    out["os_time"], out["os_event"] = time_days.astype(int).astype(str), event.astype(str)
    out["pfs_time"], out["pfs_event"] = out["os_time"], out["os_event"]
    noisy = eta + rng.normal(0, 0.5, len(eta))
    out[CLASS_COLUMN] = np.searchsorted(np.quantile(noisy, [0.25, 0.5, 0.75]), noisy).astype(str)
    out.to_csv(base / f"clinical-{name}.csv", index=False)
    spec["clinical"] = f"clinical-{name}.csv"
    spec["name"] = f"{spec['name']}-learn-{name}"
    (base / f"cohort-{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return {"eta": eta, "time": time_days, "event": event, "classes": out[CLASS_COLUMN].astype(int).to_numpy()}


def _c(scores: np.ndarray, t: np.ndarray, e: np.ndarray, n_boot: int, seed: int) -> dict:
    ci = bootstrap_ci(lambda idx: harrell_c(t[idx], e[idx], scores[idx]), len(t), n_boot=n_boot, seed=seed)
    return {k: round(v, 4) for k, v in ci.as_dict().items() if k in ("value", "ci_lower", "ci_upper")}


def _round(d: dict) -> dict:
    return {q: round(d[q], 4) for q in ("value", "ci_lower", "ci_upper")}


def run_model(model: str, cohort_yaml: Path, work: Path, *, folds: int, seed: int, n_boot: int,
              classes: bool) -> dict:
    """One ``train`` run (``cpu`` preset, OS, ``folds``-fold CV): the image-only C with its CI, and
    for class heads the class metrics."""
    extra = {"objective_params": {"class_column": CLASS_COLUMN}} if classes else {}
    cfg = resolve_config("cpu", model=model, endpoint="os", n_boot=n_boot, seed=seed, final_model=False,
                         cv={"folds": folds, "repeats": 1, "seed": seed}, training={"seed": seed}, **extra)
    run = work / f"run-{cohort_yaml.stem}-{model}"
    t0 = time.perf_counter()
    _, metrics = train_run(load_cohort(cohort_yaml).cohort, cohort_yaml, cfg, run, overwrite=True,
                           cache_dir=work / "cache")
    m = metrics["models"][model]
    row = {"c_index": _round(m["harrell_c"]), "n": m["n"], "seconds": round(time.perf_counter() - t0, 1)}
    rc = m.get("risk_classes")
    if rc:
        row["classes"] = {"confusion": rc["confusion"], "predicted_counts": rc["predicted_counts"],
                          "class_counts": rc["class_counts"], "auc_ovr_macro": _round(rc["auc_ovr_macro"]),
                          "accuracy": _round(rc["accuracy"])}
    return row


def gate(row: dict) -> dict:
    """Issue 37's gate: C >= 0.85 x the oracle's, or >= radiomics-cox's - 0.03; class heads: every
    class predicted for >= 5 % of patients and macro AUC >= 0.75."""
    c, oracle = row["network"]["c_index"]["value"], row["oracle"]["value"]
    ref = row.get("radiomics-cox", {}).get("c_index", {}).get("value")
    out = {"fraction_of_oracle": round(c / oracle, 3),
           "passes_c": bool(c >= 0.85 * oracle or (ref is not None and c >= ref - 0.03))}
    cls = row["network"].get("classes")
    if cls:
        counts = np.asarray(list(cls["predicted_counts"].values()), float)
        out["passes_classes"] = bool((counts / counts.sum() >= 0.05).all() and cls["auc_ovr_macro"]["value"] >= 0.75)
    return out


def markdown(result: dict) -> str:
    lines = ["# Learnability: does each network extract one image quantity from its input?", "",
             f"hccprog {result['hccprog_version']}, {result['patients']} patients, {result['folds']}-fold CV, "
             f"`cpu` presets, beta {result['beta']} (mixed {result['beta_mixed']} each). Reproduce: "
             "`.venv/bin/python benchmarks/learnability.py`.", "",
             "| network | cohort | network C (95% CI) | oracle C | fraction of oracle | radiomics-cox C | "
             "delta-radiomics-cox C | gate | classes predicted | macro AUC |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["runs"]:
        c = r["network"]["c_index"]
        rad = r.get("radiomics-cox", {}).get("c_index", {}).get("value", "-")
        delta = r.get("delta-radiomics-cox", {}).get("c_index", {}).get("value", "-")
        cls = r["network"].get("classes")
        passes = r["gate"]["passes_c"] and r["gate"].get("passes_classes", True)
        lines.append(f"| {r['network_name']} | {r['cohort']} ({' + '.join(r['quantities'])}) | {c['value']:.3f} "
                     f"({c['ci_lower']:.3f}-{c['ci_upper']:.3f}) | {r['oracle']['value']:.3f} | "
                     f"{r['gate']['fraction_of_oracle']:.2f} | {rad} | {delta} | {'pass' if passes else 'FAIL'} | "
                     f"{cls['predicted_counts'] if cls else '-'} | "
                     f"{cls['auc_ovr_macro']['value'] if cls else '-'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    ap.add_argument("--cohorts", nargs="+", help="cohort names (default: every one of each network)")
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--beta", type=float, default=1.0, help="log-hazard per SD of a single quantity")
    ap.add_argument("--beta-mixed", type=float, default=0.7, help="per quantity in the mixed cohort")
    ap.add_argument("--n-boot", type=int, default=500)
    ap.add_argument("--no-radiomics", action="store_true", help="skip the radiomics comparators")
    ap.add_argument("--append", action="store_true")
    ap.add_argument("--work", type=Path, help="keep the cohorts and runs here (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "learnability.json")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        bases: dict[str, Path] = {}
        comparators: dict[tuple[str, str], dict] = {}
        for net in args.networks:
            modality, cohorts = NETWORKS[net]
            if modality not in bases:
                bases[modality] = work / f"{modality}-{args.seed}"
                if not (bases[modality] / "truth.csv").exists():
                    print(f"progress: synth {modality} ({args.patients} patients)", flush=True)
                    synthesize(bases[modality], SynthConfig(patients=args.patients, seed=args.seed, modality=modality,
                                                            followups=2 if modality == "mri" else 1),
                               overwrite=True)
            for name, quantities in cohorts.items():
                if args.cohorts and name not in args.cohorts:
                    continue
                key = "+".join(quantities)
                beta = args.beta if len(quantities) == 1 else args.beta_mixed
                truth = learnability_cohort(bases[modality], key, quantities, beta=beta, seed=args.seed)
                path = bases[modality] / f"cohort-{key}.yaml"
                print(f"progress: {net} on {modality}/{key}", flush=True)
                row = {"network_name": net, "modality": modality, "cohort": name, "quantities": list(quantities),
                       "beta": beta, "patients": args.patients, "events": int(truth["event"].sum()),
                       "oracle": _c(truth["eta"], truth["time"], truth["event"], args.n_boot, args.seed),
                       "network": run_model(net, path, work, folds=args.folds, seed=args.seed, n_boot=args.n_boot,
                                            classes=net == "progswin")}
                if not args.no_radiomics:
                    comps = ["radiomics-cox"] + (["delta-radiomics-cox"] if "change" in quantities else [])
                    for comp in comps:
                        if (comp, f"{modality}/{key}") not in comparators:
                            comparators[comp, f"{modality}/{key}"] = run_model(
                                comp, path, work, folds=args.folds, seed=args.seed, n_boot=args.n_boot,
                                classes=False)
                        row[comp] = comparators[comp, f"{modality}/{key}"]
                row["gate"] = gate(row)
                print(json.dumps(row), flush=True)
                rows.append(row)
    ran = {(r["network_name"], r["cohort"]) for r in rows}
    if args.append and args.out.exists():
        kept = json.loads(args.out.read_text())["runs"]
        rows = [r for r in kept if (r["network_name"], r["cohort"]) not in ran] + rows
    result = {"benchmark": "learnability", "hccprog_version": __version__, "machine": platform.machine(),
              "torch_threads": torch.get_num_threads(), "patients": args.patients, "folds": args.folds,
              "seed": args.seed, "beta": args.beta, "beta_mixed": args.beta_mixed,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "goal": "image-only C >= 0.85 x the oracle's C, or >= radiomics-cox's C - 0.03; class heads: "
                      "every class predicted for >= 5% of patients, macro AUC >= 0.75", "runs": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".json.partial")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n")
    tmp_out.replace(args.out)
    args.out.with_suffix(".md").write_text(markdown(result))


if __name__ == "__main__":
    main()
