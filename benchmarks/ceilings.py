"""How much can an image model add to the clinical Cox model at all? Ceilings from ``truth.csv``.

The issues ask the image models to beat the clinical Cox model on the benchmark cohorts. This
script measures, on the same cohorts and with the same cross-validation, fusion and bootstrap as
``hccprog train``, what a *perfect* image score would give: the generator's true imaging
log-hazard terms, from ``truth.csv``, each fused with the fold's clinical Cox model by the
bivariate Cox model of ``<model>+clinical``. No network is trained; a model can only do worse.

Scores (each an upper bound for the models that see the images it needs):

* ``true_pre_tace``: the imaging terms visible on the pre-TACE scan (hccprog: baseline viable
  volume and rim enhancement; independent cohort: baseline viable diameter and enhancing share).
  The bound for models of one pre-treatment scan: ``dlop``, ``cldca``, ``dmmgnet`` as published.
* ``true_pre_tace_plus_expected_change`` (hccprog only): that plus the change after TACE
  expected from the latent aggressiveness (the generator draws the change and new lesions from
  it). Pre-TACE images show aggressiveness only partly (arterial enhancement level, rim), so
  this bounds any pre-TACE reader from above.
* ``true_change``: the post-TACE change term alone (needs a follow-up scan).
* ``true_imaging``: the whole imaging log-hazard (needs baseline and follow-up).

For the response endpoint (``cldca``: PD against CR+PR+SD) the same scores enter a logistic
model with the clinical covariates; AUC out of fold with DeLong's CI of the difference.

    .venv/bin/python benchmarks/ceilings.py     # writes benchmarks/results/ceilings.json and .md (~25 min)
    .venv/bin/python benchmarks/ceilings.py --cohorts hccprog-ct:2 independent-ct:2 \
        --out benchmarks/results/ceilings_fresh.json   # other cohort draws (``--work DIR`` keeps them)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from hccprog import __version__
from hccprog.cohort import load_cohort
from hccprog.cohort.model import Cohort
from hccprog.evaluation.bootstrap import bootstrap_ci, paired_bootstrap_difference
from hccprog.evaluation.classification import delong_auc_ci, delong_test
from hccprog.evaluation.survival import harrell_c
from hccprog.experiment.baselines import BaselinesConfig, CoxSpec, run_baselines
from hccprog.survival.cv import CVConfig
from hccprog.synth import SynthConfig, synthesize
from hccprog.synth.generate import OS_IMAGING

HERE = Path(__file__).parent
SCORES_SURV = ["true_pre_tace", "true_pre_tace_plus_expected_change", "true_change", "true_imaging"]


def _independent_module():
    spec = importlib.util.spec_from_file_location("independent_cohort", HERE / "independent_cohort.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def hccprog_terms(truth: pd.DataFrame) -> pd.DataFrame:
    """The generator's imaging terms (``hccprog.synth.generate``), per patient id."""
    f_viable = np.log1p(truth["viable_ml_baseline"]) - 3.0
    f_rim = truth["rim_enhancement"] - 0.5
    f_change = (truth["viable_log_change"] + 0.9) / 0.93 + truth["new_lesion"]
    a = truth["aggressiveness"]
    # E[f_change | aggressiveness]: change ~ N(-0.9 + 0.55 a, 0.75), new lesion ~ logistic(1.5 (a - 1.8))
    expected_change = 0.55 * a / 0.93 + 1 / (1 + np.exp(-(a - 1.8) * 1.5))
    pre = OS_IMAGING["viable"] * f_viable + OS_IMAGING["rim"] * f_rim
    return pd.DataFrame({
        "true_pre_tace": pre,
        "true_pre_tace_plus_expected_change": pre + OS_IMAGING["change"] * expected_change,
        "true_change": OS_IMAGING["change"] * f_change,
        "true_imaging": truth["log_hazard_os_imaging"],
    }).set_index(truth["patient_id"].astype(str))


def independent_terms(truth: pd.DataFrame) -> pd.DataFrame:
    """``independent_cohort.py``'s imaging terms: its change term and the rest (pre-TACE)."""
    img = _independent_module().IMG
    change = img["change"] * (truth["change"] + 0.35) / 0.3
    return pd.DataFrame({
        "true_pre_tace": truth["log_hazard_imaging"] - change,
        "true_change": change,
        "true_imaging": truth["log_hazard_imaging"],
    }).set_index(truth["pid"].astype(str))


def _est(e) -> list[float]:
    return [round(e.value, 4), round(e.lower, 4), round(e.upper, 4)]


def survival_ceiling(cohort: Cohort, terms: pd.DataFrame, endpoint: str, repeats: int, n_boot: int) -> dict:
    """Out-of-fold Harrell's C (mean over CV repeats) of clinical Cox and of each true term fused
    with it, as ``train`` fuses a network's score; paired-bootstrap CI of the difference."""
    names = list(terms.columns)
    cfg = BaselinesConfig(endpoint=endpoint, cv=CVConfig(folds=5, repeats=repeats, seed=0), scores=[],
                          cox_models={"clinical_cox": CoxSpec()},
                          fusions=[(n, "clinical_cox", f"{n}+clinical") for n in names], n_boot=0)
    res = run_baselines(cohort, cfg, extra_scores=terms)
    ids = list(res.outcomes.index)
    t = res.outcomes["time"].to_numpy(float)
    e = res.outcomes["event"].to_numpy(bool)
    preds = res.predictions
    wanted = ["clinical_cox"] + [f"{n}+clinical" for n in names]
    mats = {m: preds[preds["model"] == m].pivot(index="patient_id", columns="repeat", values="risk")
            .loc[ids].to_numpy(float) for m in wanted}
    mats.update({n: terms.loc[ids, [n]].to_numpy(float) for n in names})

    def stat(m):
        R = mats[m]
        return lambda ix: float(np.mean([harrell_c(t[ix], e[ix], R[ix, r]) for r in range(R.shape[1])]))

    out = {"endpoint": endpoint, "patients": len(ids), "events": int(e.sum()),
           "c_index": {m: _est(bootstrap_ci(stat(m), len(ids), n_boot=n_boot, seed=0)) for m in mats},
           "fused_minus_clinical_cox": {}}
    for n in names:
        d, _ = paired_bootstrap_difference(stat(f"{n}+clinical"), stat("clinical_cox"), len(ids),
                                           n_boot=n_boot, seed=0)
        out["fused_minus_clinical_cox"][f"{n}+clinical"] = _est(d)
    return out


def response_ceiling(cohort: Cohort, terms: pd.DataFrame, repeats: int) -> dict:
    """PD against CR+PR+SD: the clinical logistic model (as ``train --endpoint response`` fits it)
    with and without each true term; out-of-fold AUC (mean probability over CV repeats), DeLong
    CI of the difference."""
    from sklearn.model_selection import StratifiedKFold

    from hccprog.baselines.logistic import fit_logistic
    from hccprog.experiment.engine import response_labels
    from hccprog.survival.preprocess import TabularPreprocessor

    labels = response_labels(cohort)
    ids = list(labels.index)
    y = labels.to_numpy(int)
    X = cohort.covariates().loc[ids]
    out = {"patients": len(ids), "pd": int(y.sum()), "auc": {}, "minus_clinical": {}}
    probs = {}
    for name in ["clinical", *terms.columns]:
        Z = X if name == "clinical" else X.join(terms[[name]])
        p = np.zeros((repeats, len(ids)))
        for r in range(repeats):
            for tr, te in StratifiedKFold(5, shuffle=True, random_state=r).split(Z, y):
                pre = TabularPreprocessor().fit(Z.iloc[tr])
                lr = fit_logistic(pre.transform(Z.iloc[tr]), y[tr], r)
                p[r, te] = lr.predict_proba(pre.transform(Z.iloc[te]))[:, 1]
        probs[name] = p.mean(axis=0)
        auc, lo, hi = delong_auc_ci(y, probs[name])
        out["auc"][name] = [round(auc, 4), round(lo, 4), round(hi, 4)]
    for name in terms.columns:
        d = delong_test(y, probs[name], probs["clinical"])
        out["minus_clinical"][name] = [round(d["difference"], 4), round(d["ci_lower"], 4), round(d["ci_upper"], 4)]
    return out


def render(result: dict) -> str:
    """The results as Markdown tables (``benchmarks/results/ceilings.md``)."""
    def f(v):
        return f"{v[0]:.3f} ({v[1]:.3f} to {v[2]:.3f})"

    lines = ["# Ceilings: a perfect image score fused with the clinical Cox model", "",
             f"Generated by `benchmarks/ceilings.py` (hccprog {result['hccprog_version']}); "
             f"{result['patients']} patients per cohort, {result['cv']}, the fusion of `train` "
             f"(bivariate Cox of the score and the fold's clinical Cox model), {result['n_boot']} "
             "paired patient-bootstrap resamples. Each cell: the fused model's out-of-fold Harrell's C "
             "minus the clinical Cox model's, with its 95% CI. See the script's docstring for the scores.", "",
             "| cohort | endpoint | events | clinical Cox | pre-TACE terms | pre-TACE + expected change | "
             "change after TACE | all imaging terms |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    names = SCORES_SURV
    for r in result["rows"]:
        if "c_index" not in r:
            continue
        cells = [f(r["fused_minus_clinical_cox"][f"{n}+clinical"]) if f"{n}+clinical" in r["fused_minus_clinical_cox"]
                 else "-" for n in names]
        lines.append(f"| {r['cohort']} seed {r['seed']} | {r['endpoint']} | {r['events']} | "
                     f"{r['c_index']['clinical_cox'][0]:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "Response (PD against CR+PR+SD): out-of-fold AUC of the clinical logistic model with each "
              "true term added, minus the clinical model's (DeLong 95% CI).", "",
              "| cohort | PD | clinical AUC | pre-TACE terms | pre-TACE + expected change | change after TACE | "
              "all imaging terms |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        if "auc" not in r:
            continue
        cells = [f(r["minus_clinical"][n]) if n in r["minus_clinical"] else "-" for n in names]
        lines.append(f"| {r['cohort']} seed {r['seed']} | {r['pd']} | {r['auc']['clinical'][0]:.3f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# cohort kind -> (survival endpoints, whether to add the response row)
KINDS = {"hccprog-ct": (["os", "pfs"], True), "hccprog-mri-pre": (["pfs", "os"], False),
         "independent-ct": (["os"], True)}


def _cohort_arg(text: str) -> tuple[str, int]:
    kind, _, seed = text.partition(":")
    if kind not in KINDS or not seed.isdigit():
        raise SystemExit(f"--cohorts: expected KIND:SEED with KIND one of {', '.join(KINDS)}, got {text!r}")
    return kind, int(seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "ceilings.json")
    ap.add_argument("--render-only", action="store_true", help="rewrite the .md from an existing .json")
    ap.add_argument("--cohorts", nargs="+", metavar="KIND:SEED", default=None,
                    help=f"cohorts instead of the default plan, e.g. hccprog-ct:2 independent-ct:2 (kinds: "
                         f"{', '.join(KINDS)})")
    ap.add_argument("--work", type=Path, default=None,
                    help="write the cohorts to WORK/KIND-SEED and reuse those already there (default: a temp dir)")
    args = ap.parse_args()
    md = args.out.with_suffix(".md")
    if args.render_only:
        _write(md, render(json.loads(args.out.read_text())))
        print(f"wrote {md}")
        return
    rows = []
    plan = [("hccprog-ct", 0), ("hccprog-ct", 1), ("hccprog-mri-pre", 0), ("independent-ct", 0),
            ("independent-ct", 1)]
    if args.cohorts:
        plan = [_cohort_arg(c) for c in args.cohorts]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for kind, seed in plan:
            endpoints, response = KINDS[kind]
            d = work / f"{kind}-{seed}"
            hccprog = kind.startswith("hccprog")
            if not ((d / "cohort.yaml").is_file() and (d / "truth.csv").is_file()):  # else reuse --work's
                if hccprog:
                    mri = kind == "hccprog-mri-pre"
                    synthesize(d, SynthConfig(patients=args.patients, seed=seed, modality="mri" if mri else "ct",
                                              followups=0 if mri else 1), overwrite=True)
                else:
                    subprocess.run([sys.executable, str(HERE / "independent_cohort.py"), str(d), "--patients",
                                    str(args.patients), "--seed", str(seed)], check=True, stdout=subprocess.DEVNULL)
            terms = (hccprog_terms(pd.read_csv(d / "truth.csv")) if hccprog
                     else independent_terms(pd.read_csv(d / "truth.csv", dtype={"pid": str})))
            cohort = load_cohort(d / "cohort.yaml").cohort  # reads every image header: once per cohort
            for ep in endpoints:
                row = {"cohort": kind, "seed": seed, **survival_ceiling(cohort, terms, ep, args.repeats, args.n_boot)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            if response:
                row = {"cohort": kind, "seed": seed, "endpoint": "response (PD)",
                       **response_ceiling(cohort, terms, args.repeats)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {"benchmark": "ceilings: true imaging terms fused with the clinical Cox model",
              "hccprog_version": __version__, "machine": platform.machine(),
              "cv": f"5-fold, {args.repeats} repeats (CV seeds 0..{args.repeats - 1})", "n_boot": args.n_boot,
              "patients": args.patients, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _write(args.out, json.dumps(result, indent=1) + "\n")
    _write(md, render(result))
    print(f"wrote {args.out} and {md}")


if __name__ == "__main__":
    main()
