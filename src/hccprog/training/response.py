"""``hccprog train --endpoint response``: cross-validated classification of the treatment response.

The label is progressive disease after TACE (mRECIST PD = 1) against disease control (CR, PR, SD
= 0), as in CLDCA (Tong et al.). In each outer fold the network is trained on the training part
(binary cross-entropy, early stopping on an inner validation split) and a clinical-only
reference, an L2-penalised logistic regression on the same covariates (penalty chosen by inner
cross-validation), is fitted on the same patients. Both score the test part.

The run folder follows ``spec/run-outputs.md``: ``predictions.csv`` (``risk`` = logit, higher =
more likely PD; ``p_PD``), ``outcomes.csv`` (the label), ``folds.csv``, ``config.yaml``,
``metrics.json`` (schema 1, ``task: response``: ROC AUC with DeLong's 95% CI, accuracy, F1,
sensitivity and specificity at each training fold's Youden threshold, DeLong's paired test of each
model against the clinical reference), ``roc.png`` and ``report.html``.
"""

from __future__ import annotations

import base64
import html
import logging
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from hccprog import __version__
from hccprog.baselines.preprocess import TabularPreprocessor
from hccprog.cohort.model import Cohort
from hccprog.errors import InputError
from hccprog.evaluation.classification import (
    auc_and_classification,
    binary_metrics,
    delong_auc_ci,
    delong_test,
    youden_threshold,
)
from hccprog.fills import covariate_fills, fill_notes, join_fills
from hccprog.preprocessing.cache import preprocess_cohort
from hccprog.runs import save_figure, staged_run, write_csv, write_json, write_unscored, write_yaml
from hccprog.training.clinical import clinical_frame
from hccprog.training.cv import folds_frame, make_splits

PD_VALUES = {"PD", "4"}
CONTROL_VALUES = {"CR", "PR", "SD", "1", "2", "3"}
REFERENCE = "clinical_logistic"


def response_labels(cohort: Cohort) -> pd.Series:
    """1 = progressive disease, 0 = disease control; patients without a response are dropped."""
    raw = cohort.responses().dropna().astype(str).str.strip().str.upper()
    raw = raw.str.replace(r"\.0$", "", regex=True)
    unknown = sorted(set(raw) - PD_VALUES - CONTROL_VALUES)
    if unknown:
        raise ValueError(f"response values {unknown} are not CR/PR/SD/PD or 1..4")
    return raw.isin(PD_VALUES).astype(int).rename("label")


def _logistic(x_train: pd.DataFrame, y: np.ndarray, seed: int):
    from sklearn.linear_model import LogisticRegressionCV

    folds = int(min(5, np.bincount(y).min()))
    with warnings.catch_warnings():  # scikit-learn 1.8 announces API changes of LogisticRegressionCV
        warnings.simplefilter("ignore", FutureWarning)
        return LogisticRegressionCV(Cs=10, cv=max(2, folds), scoring="roc_auc", max_iter=2000,
                                    random_state=seed).fit(x_train, y)


def _final_model(learner, y: np.ndarray, cfg) -> dict:
    """Refit on every patient for ``predict``: the weights, and the Youden threshold of the
    refitted model on all patients (the cut-off ``predict`` applies)."""
    from hccprog.training.train import model_description

    idx = np.arange(len(y))
    tr = learner.fit(idx, cfg.seed, "final model (all patients)")
    risk = learner.risk(tr, idx)
    return model_description(learner, tr, cfg, task="response", positive_class="PD",
                             threshold=youden_threshold(y, risk))


def response_metrics(y: np.ndarray, risk: np.ndarray, threshold: float) -> dict:
    """ROC AUC with DeLong's 95% CI, and the classification at a fixed logit threshold."""
    out = {"n": len(y), "n_positive": int(np.sum(y)), **auc_and_classification(y, risk, threshold)}
    if "auc" in out:
        out["auc"]["method"] = "DeLong"
    return out


def _metrics(preds: pd.DataFrame, labels: pd.Series, thresholds: dict[str, dict[tuple[int, int], float]]) -> dict:
    models = {}
    for name, g in preds.groupby("model", sort=False):
        y = labels.loc[g["patient_id"]].to_numpy()
        auc, lo, hi = delong_auc_ci(y, g["risk"].to_numpy())
        # classification at the threshold learned on the training part of the patient's own (repeat, fold)
        pred_pos = np.array([r >= thresholds[name][(int(k), int(f))]
                             for r, k, f in zip(g["risk"], g["repeat"], g["split_fold"], strict=True)])
        bm = binary_metrics(y, pred_pos.astype(float), 0.5)
        models[name] = {"n": len(g), "n_positive": int(y.sum()),
                        "auc": {"value": auc, "ci_lower": lo, "ci_upper": hi, "method": "DeLong"},
                        **{k: bm[k] for k in ("accuracy", "f1", "precision", "recall", "specificity")}}
    comparisons = []
    ref = preds[preds["model"] == REFERENCE].set_index("patient_id")["risk"]
    for name, g in preds.groupby("model", sort=False):
        if name == REFERENCE:
            continue
        common = g.set_index("patient_id")["risk"].index.intersection(ref.index)
        y = labels.loc[common].to_numpy()
        if y.sum() < 2 or (1 - y).sum() < 2:
            continue
        d = delong_test(y, g.set_index("patient_id")["risk"].loc[common], ref.loc[common])
        comparisons.append({"model": name, "reference": REFERENCE, "n": len(common),
                            "auc_difference": {"value": d["difference"], "ci_lower": d["ci_lower"],
                                               "ci_upper": d["ci_upper"], "p_value": d["p_value"],
                                               "method": "DeLong paired"}})
    return {"schema": 1, "task": "response", "positive_class": "PD", "models": models, "comparisons": comparisons}


def _roc_figure(preds: pd.DataFrame, labels: pd.Series, metrics: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for name, g in preds.groupby("model", sort=False):
        fpr, tpr, _ = roc_curve(labels.loc[g["patient_id"]], g["risk"])
        a = metrics["models"][name]["auc"]
        ax.plot(fpr, tpr, label=f"{name} {a['value']:.3f} ({a['ci_lower']:.3f}-{a['ci_upper']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="Out-of-fold ROC: PD vs disease control")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def _report(run: Path, config: dict, metrics: dict) -> Path:
    rows = [{"model": k, "n": v["n"], "PD": v["n_positive"],
             "AUC (95% CI)": f"{v['auc']['value']:.3f} ({v['auc']['ci_lower']:.3f} to {v['auc']['ci_upper']:.3f})",
             "accuracy": f"{v['accuracy']:.3f}", "F1": f"{v['f1']:.3f}", "sensitivity": f"{v['recall']:.3f}",
             "specificity": f"{v['specificity']:.3f}"} for k, v in metrics["models"].items()]
    comp = [{"model": c["model"], "reference": c["reference"],
             "AUC difference (95% CI)": f"{c['auc_difference']['value']:+.3f} ({c['auc_difference']['ci_lower']:+.3f}"
                                        f" to {c['auc_difference']['ci_upper']:+.3f})",
             "p (DeLong)": f"{c['auc_difference']['p_value']:.3g}"} for c in metrics["comparisons"]]
    img = base64.b64encode((run / "roc.png").read_bytes()).decode("ascii")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in config.get("notes", []))
    body = (f"<h1>{html.escape(config['title'])}</h1>"
            f"<p>hccprog {html.escape(__version__)}; {config['cv']['folds']}-fold cross-validation; out-of-fold "
            "predictions; thresholds (Youden) learned on each training fold.</p>"
            f"<h2>Response classification</h2>{pd.DataFrame(rows).to_html(index=False, border=0)}"
            f"<h2>Against the clinical model</h2>{pd.DataFrame(comp).to_html(index=False, border=0)}"
            f'<img alt="roc" src="data:image/png;base64,{img}">'
            + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""))
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>"
            f"{html.escape(config['title'])}</title><style>body{{font-family:sans-serif;max-width:60em;margin:auto}}"
            "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style></head>"
            f"<body>{body}</body></html>")
    (run / "report.html").write_text(page, encoding="utf-8")
    return run / "report.html"


def _fixed_scores(extra: pd.DataFrame | None, ids: list[str]) -> dict[str, np.ndarray]:
    """Each column of ``extra`` as a float score over ``ids`` (NaN where a patient has none)."""
    if extra is None:
        return {}
    frame = extra.copy()
    frame.index = frame.index.astype(str)
    return {str(c): frame[c].reindex(ids).astype(float).to_numpy() for c in frame.columns}


def response_run(cohort: Cohort, cohort_path: Path, cfg, out: Path, *, overwrite: bool = False,
                 cache_dir: Path | None = None, progress=None,
                 extra_scores: pd.DataFrame | None = None) -> tuple[Path, dict]:
    """Cross-validate ``cfg.model`` on the response label beside the clinical logistic model.

    ``extra_scores`` (patients x named columns, e.g. a known true risk as ``oracle``) are evaluated as
    fixed scores (fold -1): their AUC on the same patients, and their classification at a Youden cut-off
    learned on the training part of each (repeat, fold), as for the models."""
    from hccprog.models.registry import get_model
    from hccprog.training.objectives import BinaryObjective
    from hccprog.training.train import DeepLearner

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    labels = response_labels(cohort)
    if labels.sum() < cfg.cv.folds or (1 - labels).sum() < cfg.cv.folds:
        raise InputError(f"response: {int(labels.sum())} PD and {int((1 - labels).sum())} disease-control "
                         f"patients; each class needs at least {cfg.cv.folds} for {cfg.cv.folds}-fold CV")
    t0 = time.perf_counter()
    tick = (lambda d, n: progress(f"preprocessing {d}/{n} patients", d, n)) if progress else None
    data = preprocess_cohort(cohort, cfg.preprocessing, cache_dir=cache_dir, ids=list(labels.index), progress=tick)
    ids = [p for p in labels.index if p in set(data.ids)]
    if data.skipped:
        logging.getLogger("hccprog").warning(
            "%s cannot use %d patient(s) (left out of the response analysis, listed in unscored.csv): %s", cfg.model,
            len(data.skipped), "; ".join(f"{p}: {why}" for p, why in list(data.skipped.items())[:10]))
    y = labels.loc[ids].to_numpy(int)
    clin_cfg = cfg.clinical.model_copy(update={"screening": "none"})  # Cox screening needs survival outcomes
    frame = clinical_frame(cohort, ids, clin_cfg)
    spec = get_model(cfg.model)
    run_cfg = cfg.model_copy(update={"clinical": clin_cfg})
    state_dir = out.parent / f".{out.name}.partial"
    state_dir.mkdir(parents=True, exist_ok=True)
    learner = DeepLearner(run_cfg, data, ids, np.ones(len(ids)), y, state_dir, progress,
                          objective=BinaryObjective(), clinical=frame if spec.clinical else None)
    splits = make_splits(len(ids), y, cfg.cv)
    rows, thresholds = [], {cfg.model: {}, REFERENCE: {}}
    for s in splits:
        if progress:
            progress(f"fold {s.fold + 1}/{cfg.cv.folds}", s.fold, cfg.cv.folds)
        tr = learner.fit(s.train, s.seed * 1000 + s.fold, f"fold {s.fold + 1}")
        learner.histories[f"fold-{s.repeat}-{s.fold}"] = tr.history_
        pre = TabularPreprocessor().fit(frame.iloc[s.train])
        logit = _logistic(pre.transform(frame.iloc[s.train]), y[s.train], s.seed)
        scores = {cfg.model: (learner.risk(tr, s.train), learner.risk(tr, s.test)),
                  REFERENCE: (logit.decision_function(pre.transform(frame.iloc[s.train])),
                              logit.decision_function(pre.transform(frame.iloc[s.test])))}
        for name, (r_tr, r_te) in scores.items():
            thresholds[name][(s.repeat, s.fold)] = youden_threshold(y[s.train], r_tr)
            rows += [{"patient_id": ids[i], "model": name, "repeat": s.repeat, "fold": s.fold, "split_fold": s.fold,
                      "risk": float(r), "p_PD": float(1 / (1 + np.exp(-r)))} for i, r in zip(s.test, r_te, strict=True)
                     if s.repeat == 0]
    for name, v in _fixed_scores(extra_scores, ids).items():  # not fitted: fold -1, cut-offs still per split
        thresholds[name] = {}
        for s in splits:
            tr, te = s.train[np.isfinite(v[s.train])], s.test[np.isfinite(v[s.test])]
            if len(tr) == 0 or len(set(y[tr])) < 2:
                continue
            thresholds[name][(s.repeat, s.fold)] = youden_threshold(y[tr], v[tr])
            rows += [{"patient_id": ids[i], "model": name, "repeat": s.repeat, "fold": -1, "split_fold": s.fold,
                      "risk": float(v[i]), "p_PD": np.nan} for i in te if s.repeat == 0]
    final = _final_model(learner, y, cfg) if cfg.final_model else None
    preds = pd.DataFrame(rows)
    clin_fills = covariate_fills(frame, list(frame.columns))
    own = {p: data.imputed.get(p, []) + (clin_fills.get(p, []) if spec.clinical else []) for p in ids}
    preds["imputed"] = [join_fills(own[p] if m == cfg.model else clin_fills.get(p, []) if m == REFERENCE else [])
                        for p, m in zip(preds["patient_id"], preds["model"], strict=True)]
    for col in ("risk", "p_PD"):  # metrics from exactly what predictions.csv holds
        preds[col] = preds[col].map(lambda v: float(f"{v:.6g}"))
    lab = pd.Series(y, index=ids, name="label")
    metrics = _metrics(preds, lab, thresholds)
    preds = preds.drop(columns=["repeat", "split_fold"])  # the first repeat, as predictions.csv holds it
    with staged_run(out, overwrite=overwrite) as tmp:
        write_csv(tmp / "predictions.csv", preds, index=False, float_format="%.6g")
        write_csv(tmp / "outcomes.csv", lab.rename_axis("patient_id").to_frame(), float_format="%.6g")
        write_csv(tmp / "folds.csv", folds_frame(ids, splits), index=False)
        write_unscored(tmp, cfg.model, data.skipped)
        write_json(tmp / "cutoffs.json", [{"model": m, "repeat": k, "fold": f, "cutoffs": [float(v)]}
                                          for m, by in thresholds.items() for (k, f), v in sorted(by.items())])
        config = {"command": "train", "task": "response", "title": f"{cfg.model}: response (PD vs disease control), "
                  f"{cohort.name}", "hccprog_version": __version__, "cohort": str(Path(cohort_path).resolve()),
                  "cohort_name": cohort.name, "endpoint": "response", "model": cfg.model,
                  # the settings as given (the run itself never screens by Cox: see clinical_resolved)
                  "train": cfg.model_dump(mode="json"), "clinical_resolved": clin_cfg.model_dump(mode="json"),
                  "network_resolved": learner.net_cfg.model_dump(mode="json"),
                  "cv": cfg.cv.model_dump(), "preprocessing_stats": data.stats,
                  "notes": [f"{p}: not preprocessed ({why})" for p, why in data.skipped.items()]
                  + fill_notes({p: own[p] for p in ids})
                  + [f"{len(labels) - len(ids)} patients with a response but no images are not scored"]
                  * (len(labels) > len(ids)),
                  "seconds": round(time.perf_counter() - t0, 1)}
        write_yaml(tmp / "config.yaml", config)
        write_json(tmp / "metrics.json", metrics)
        for fold, hist in learner.histories.items():
            write_json(tmp / "training" / f"{fold}.json", {"history": hist})
        if final is not None:
            import torch

            (tmp / "models").mkdir(exist_ok=True)
            torch.save(final.pop("state_dict"), tmp / "models" / f"{cfg.model}.pt")
            write_json(tmp / "models" / f"{cfg.model}.json", final)
        save_figure(_roc_figure(preds, lab, metrics), tmp / "roc.png")
        _report(tmp, config, metrics)
    shutil.rmtree(state_dir, ignore_errors=True)
    return out / "report.html", metrics
