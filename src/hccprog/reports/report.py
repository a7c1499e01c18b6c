"""Evaluate a run folder (metrics.json, figures) and write its self-contained HTML report."""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from hccprog import __version__
from hccprog.evaluation.classification import (
    horizon_progression_metrics,
    response_run_metrics,
    risk_class_labels,
    risk_class_metrics,
)
from hccprog.evaluation.metrics import estimate_text, hr_text, survival_metrics
from hccprog.fills import FILL_KINDS, fill_kind, split_fills
from hccprog.reports import figures as F
from hccprog.reports.formatting import format_horizon, format_horizons, format_p, plural, times
from hccprog.reports.pages import markup, render_page
from hccprog.runs import atomic_write_text, read_predictions, run_name, save_figure, write_json
from hccprog.safe_yaml import load_yaml
from hccprog.survival.endpoints import horizon_labels

FIGURE_CAPTIONS = {
    "roc.png": "Out-of-fold ROC curves of PD against disease control (first repeat); AUC with DeLong's 95% CI "
               "in the legend.",
    "km_risk_groups.png": "Kaplan-Meier curves by risk group (cut-offs learned on the training part of each "
                          "fold; first repeat), 95% confidence bands, log-rank p and hazard ratio high vs low.",
    "td_roc.png": "Cumulative/dynamic ROC curves at each horizon (IPCW; AUC in the legend).",
    "calibration.png": "Calibration: predicted vs Kaplan-Meier observed survival at the first horizon, "
                       "by quartile of prediction (out of fold).",
    "decision_curve.png": "Decision curve: net benefit of acting on the predicted probability of the event "
                          "by the first horizon, against treating all and treating none.",
    "forest_risk_groups.png": "Hazard ratio of the high vs low risk group for every model (95% CI).",
    "km_risk_classes.png": "Kaplan-Meier curves by predicted risk class (arg-max of the out-of-fold class "
                           "probabilities; every patient, censored ones included), 95% bands, log-rank p.",
}


def load_run(run: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    run = Path(run)
    config = load_yaml(run / "config.yaml")
    outcomes = pd.read_csv(run / "outcomes.csv", dtype={"patient_id": str}).set_index("patient_id")
    return config, read_predictions(run), outcomes


def evaluate_run(run: Path) -> dict:
    """Recompute ``metrics.json``, the figures and ``report.html`` of a run from its files."""
    run = Path(run)
    config, preds, outcomes = load_run(run)
    ev = config.get("evaluation", {})
    n_boot, seed = int(ev.get("n_boot", 1000)), int(ev.get("seed", 0))
    if config.get("task") == "response":

        labels = outcomes["label"].astype(int)
        metrics = response_run_metrics(preds, labels, reference=ev.get("reference"))
        metrics["n_positive"] = int(labels.sum())
    else:
        horizons = [float(h) for h in ev["horizons"]]
        unit = config.get("time_unit", "days")
        metrics = survival_metrics(preds, outcomes, horizons=horizons, reference=ev.get("reference"), n_boot=n_boot,
                                   seed=seed, time_unit=unit)
        metrics["n_events"] = int(outcomes["event"].sum())
    metrics["endpoint"] = config.get("endpoint")
    metrics["n_patients"] = len(outcomes)
    metrics["notes"] = config.get("notes", [])
    metrics["imputed"] = imputed_counts(preds)
    metrics["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    metrics["hccprog_version"] = __version__
    rc = config.get("risk_classes")
    if rc:
        _risk_class_metrics(metrics, preds, outcomes, rc, n_boot=n_boot, seed=seed)
    pg = config.get("progression")
    if pg:
        _progression_metrics(metrics, preds, outcomes, pg)
    write_json(run / "metrics.json", metrics)
    if metrics.get("task") == "response":
        save_figure(F.response_roc(_first_repeat(preds), outcomes["label"], metrics), run / "figures" / "roc.png")
    else:
        _figures(run, preds, outcomes, metrics, horizons, unit)
    write_report(run, config, metrics)
    return metrics


def imputed_counts(preds: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per model, the number of patients (first repeat) whose input had each kind of fill."""
    if "imputed" not in preds.columns:
        return {}
    first = preds[preds["repeat"] == preds["repeat"].min()] if "repeat" in preds.columns else preds
    out: dict[str, dict[str, int]] = {}
    for model, sub in first.groupby("model", sort=False):
        counts: dict[str, int] = {}
        for cell in sub["imputed"]:
            for kind in {fill_kind(e) for e in split_fills(cell)}:
                counts[kind] = counts.get(kind, 0) + 1
        if counts:
            out[str(model)] = dict(sorted(counts.items()))
    return out


def imputed_table(counts: dict[str, dict[str, int]]) -> pd.DataFrame:
    """Rows of the report's "What was filled in" table."""
    rows = [{"model": m, "what was filled in": k, "patients": n, "meaning": FILL_KINDS.get(k, "")}
            for m, kinds in counts.items() for k, n in kinds.items()]
    return pd.DataFrame(rows)


def _class_frame(preds: pd.DataFrame, outcomes: pd.DataFrame, model: str) -> pd.DataFrame:
    first = _first_repeat(preds).get(model)
    if first is None:
        return pd.DataFrame()
    cols = sorted((c for c in first.columns if c.startswith("p_") and c[2:].isdigit()), key=lambda c: int(c[2:]))
    f = first[cols].dropna()
    return f.join(outcomes[["time", "event"]], how="inner")


def _risk_class_metrics(metrics: dict, preds: pd.DataFrame, outcomes: pd.DataFrame, rc: dict, *, n_boot: int,
                        seed: int) -> None:
    """``risk_classes`` of the class model: labels from the outcomes and the run's class edges."""

    f = _class_frame(preds, outcomes, rc["model"])
    if f.empty or rc["model"] not in metrics["models"]:
        return
    proba = f.filter(like="p_").to_numpy(float)
    if "risk_class" in outcomes:  # the user's classes (train.class_column)
        labels = outcomes.loc[f.index, "risk_class"].fillna(-1).to_numpy(int)
    else:
        labels = risk_class_labels(f["time"].to_numpy(float), f["event"].to_numpy(int), rc["edges"],
                                   worst_first=bool(rc.get("worst_first", False)))
    res = risk_class_metrics(labels, proba, f["time"], f["event"], n_boot=n_boot, seed=seed)
    res["edges"] = rc["edges"]
    res["edges_months"] = rc.get("edges_months")
    res["labels"] = rc.get("labels", "rule")
    res["rule"] = rc.get("rule", "os-edges")
    res["worst_first"] = bool(rc.get("worst_first", False))
    res["severity_column"] = rc.get("severity_column")
    metrics["models"][rc["model"]]["risk_classes"] = res


def _progression_metrics(metrics: dict, preds: pd.DataFrame, outcomes: pd.DataFrame, pg: dict) -> None:
    """``progression`` of a model with a progression head: its ``p_progression`` against the
    status at the run's horizon (patients censored before it are left out)."""

    first = _first_repeat(preds).get(pg["model"])
    if first is None or "p_progression" not in first or pg["model"] not in metrics["models"]:
        return
    f = first[["p_progression"]].join(outcomes[["time", "event"]], how="inner")
    labels = horizon_labels(f["time"].to_numpy(float), f["event"].to_numpy(int), float(pg["horizon"]))
    res = horizon_progression_metrics(labels, f["p_progression"].to_numpy(float))
    res["horizon"] = pg["horizon"]
    res["horizon_months"] = pg.get("horizon_months")
    metrics["models"][pg["model"]]["progression"] = res


def _first_repeat(preds: pd.DataFrame) -> dict[str, pd.DataFrame]:
    r0 = preds[preds["repeat"] == preds["repeat"].min()]
    return {m: g.set_index("patient_id") for m, g in r0.groupby("model", sort=False)}


def _figures(run: Path, preds, outcomes, metrics, horizons, unit) -> None:
    figdir = run / "figures"
    first = _first_repeat(preds)
    save_figure(F.km_by_group(first, outcomes, metrics, unit), figdir / "km_risk_groups.png")
    save_figure(F.td_roc(first, outcomes, horizons, metrics, unit), figdir / "td_roc.png")
    cal = F.calibration_plot(first, outcomes, horizons[0], unit)
    if cal is not None:
        save_figure(cal, figdir / "calibration.png")
    dca = F.decision_curve_plot(first, outcomes, horizons[0], unit)
    if dca is not None:
        save_figure(dca, figdir / "decision_curve.png")
    rows = []
    for model, m in metrics["models"].items():
        hr = m.get("risk_groups", {}).get("hr_high_vs_low")
        if hr and all(hr.get(k) is not None for k in ("hr", "ci_lower", "ci_upper")):
            rows.append({"label": model, **hr})
    if rows:
        save_figure(F.forest_plot(pd.DataFrame(rows), "high vs low risk group"), figdir / "forest_risk_groups.png")
    for path in figdir.glob("nomogram_*.png"):  # the calibration that sits beside each nomogram
        model = path.stem[len("nomogram_"):]
        if model in first:
            cal = F.model_calibration(first[model], outcomes, horizons, unit, model)
            if cal is not None:
                save_figure(cal, figdir / f"calibration_{model}.png")
    for model, m in metrics["models"].items():
        if "risk_classes" in m:
            f = _class_frame(preds, outcomes, model)
            save_figure(F.km_by_class(f, m["risk_classes"], model, unit), figdir / "km_risk_classes.png")


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, escape=True, border=0, classes="t", na_rep="")


def summary_table(metrics: dict) -> pd.DataFrame:
    """One row per model: n, events, Harrell's and Uno's C, td-AUC per horizon, IBS, risk groups."""
    unit = metrics.get("time_unit", "days")
    rows = []
    for model, m in metrics["models"].items():
        row = {"model": model, "kind": m["kind"], "patients": m["n"], "events": m["events"],
               "Harrell's C (95% CI)": estimate_text(m.get("harrell_c")),
               "Uno's C (95% CI)": estimate_text(m.get("uno_c"))}
        for h, est in m.get("td_auc", {}).items():
            row[f"AUC at {format_horizon(float(h), unit)} (95% CI)"] = estimate_text(est)
        row["IBS (95% CI)"] = estimate_text(m.get("integrated_brier"))
        hr = m.get("risk_groups", {}).get("hr_high_vs_low", {})
        row["HR high vs low (95% CI)"] = hr_text(hr)
        rg = m.get("risk_groups", {})
        row["log-rank p"] = format_p(rg.get("logrank", {}).get("p_value"))
        if rg.get("degenerate"):
            row["HR high vs low (95% CI)"] += f" [degenerate: smallest group {rg['smallest_share']:.0%}]"
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_table(metrics: dict) -> pd.DataFrame:
    rows = [{"model": c["model"], "reference": c["reference"], "patients": c["n"],
             "difference in Harrell's C (95% CI)": estimate_text(c["harrell_c_difference"]),
             "bootstrap p": format_p(c["p_value"])}
            for c in metrics.get("comparisons", [])]
    return pd.DataFrame(rows)


def write_report(run: Path, config: dict, metrics: dict) -> Path:
    """The self-contained HTML report (figures embedded) of a run: the task's own sections, then
    what was filled in, the patients a model could not use, figures and notes."""
    run = Path(run)
    response = metrics.get("task") == "response"
    sections = _response_sections(config, metrics) if response else _survival_sections(config, metrics)
    sections += _shared_sections(run, config, metrics)
    page = render_page("report.html.j2",
                       title=f"hccprog report: {config.get('cohort_name', '')} {metrics.get('endpoint')}",
                       heading=str(config.get("title", "hccprog run")), run_folder=run_name(run),
                       sections=[markup(part) for part in sections])
    path = run / "report.html"
    atomic_write_text(path, page)
    return path


def _protocol(config: dict, stratified_by: str) -> str:
    cv = config.get("cv", {})
    repeats, seed = int(cv.get("repeats", 1)), int(cv.get("seed", 0))
    runs = (f"run once (seed {seed})" if repeats == 1
            else f"repeated {times(repeats)} (seeds {seed} to {seed + repeats - 1})")
    return (f"Protocol: patient-level {cv.get('folds')}-fold cross-validation stratified by {stratified_by}, "
            f"{runs}; imputation, encoding, scaling and the penalty "
            f"(inner {cv.get('inner_folds')}-fold CV) fitted on training folds only. Cross-validated models are "
            "scored out of fold; fixed scores are not fitted (fold -1).")


def _response_sections(config: dict, metrics: dict) -> list[str]:
    """Response classification (PD vs disease control): AUC, the classification at each training
    part's cut-off, and DeLong's paired comparison with the clinical reference."""
    parts = [f"<p>Cohort <b>{html.escape(str(config.get('cohort_name', '')))}</b>, endpoint <b>response</b> "
             f"(mRECIST PD against disease control: CR, PR, SD): {plural(metrics['n_patients'], 'patient')}, "
             f"{metrics['n_positive']} with PD.</p>"]
    if config.get("cv"):
        parts.append(f"<p>{_protocol(config, 'class')} Metrics are those of the first repeat (predictions.csv). "
                     "Each patient is classified at the Youden cut-off learned on the training part of its own "
                     "repeat and fold (<code>risk_group</code> 1 = predicted PD; cutoffs.json).</p>")
    rows = [{"model": k, "kind": v.get("kind", ""), "patients": v["n"], "PD": v["n_positive"],
             "AUC (DeLong 95% CI)": estimate_text(v.get("auc")),
             **{label: "n/a" if v.get(key) is None else f"{v[key]:.3f}" for label, key in
                (("accuracy", "accuracy"), ("F1", "f1"), ("sensitivity", "recall"), ("specificity", "specificity"),
                 ("precision", "precision"), ("NPV", "npv"))}} for k, v in metrics["models"].items()]
    parts.append("<h2>Response classification</h2>" + _table(pd.DataFrame(rows)))
    comp = [{"model": c["model"], "reference": c["reference"], "patients": c["n"],
             "AUC difference (95% CI)": estimate_text(c["auc_difference"]),
             "p (DeLong)": format_p(c["auc_difference"].get("p_value"))} for c in metrics.get("comparisons", [])]
    if comp:
        parts.append("<h2>Comparison with the clinical model</h2><p class='note'>DeLong's paired test of the "
                     "difference in AUC on the patients both models scored.</p>" + _table(pd.DataFrame(comp)))
    return parts


def _survival_sections(config: dict, metrics: dict) -> list[str]:
    """Discrimination, calibration, risk groups and the task-specific heads of a survival run."""
    unit = metrics.get("time_unit", "days")
    parts = [
        f"<p>Cohort <b>{html.escape(str(config.get('cohort_name', '')))}</b>, endpoint "
        f"<b>{html.escape(str(metrics.get('endpoint')))}</b>: {plural(metrics['n_patients'], 'patient')}, "
        f"{plural(metrics['n_events'], 'event')}; times in {html.escape(unit)}. Horizons: "
        f"{html.escape(format_horizons([float(h) for h in metrics['horizons']], unit))}.</p>"]
    if config.get("cv"):
        parts.append(
            f"<p>{_protocol(config, 'event')} C-indices are the mean over repeats; 95% CIs by patient bootstrap "
            f"({metrics['bootstrap']['n_boot']} resamples, percentile). Risk groups: "
            f"{html.escape(str(config.get('risk_groups', 'median')))} cut-off learned on each training fold.</p>")
    parts.append("<h2>Discrimination and risk stratification</h2>")
    parts.append(_table(summary_table(metrics)))
    comp = comparison_table(metrics)
    if len(comp):
        parts.append("<h2>Comparison with the reference model</h2><p class='note'>Paired patient bootstrap of "
                     "the difference in Harrell's C; the CI excluding 0 means a difference beyond chance.</p>")
        parts.append(_table(comp))
    cal_rows = []
    for model, m in metrics["models"].items():
        for h, c in m.get("calibration", {}).items():
            cal_rows.append({"model": model, "horizon": format_horizon(float(h), unit),
                             "mean predicted S": f"{c['mean_predicted']:.3f}",
                             "observed S (KM)": f"{c['observed']:.3f}",
                             "calibration-in-the-large": f"{c['in_the_large']:+.3f}",
                             "mean |pred - obs| over quartiles": f"{c['mean_abs_error']:.3f}"})
    if cal_rows:
        parts.append("<h2>Calibration</h2>" + _table(pd.DataFrame(cal_rows)))
    cls_rows = []
    for model, m in metrics["models"].items():
        for h, c in m.get("horizon_classification", {}).items():
            cls_rows.append({"model": model, "event by": format_horizon(float(h), unit),
                             "patients (known status)": c["n"], "events": c["events"],
                             "AUC (DeLong 95% CI)": estimate_text(c["auc"]), "accuracy": f"{c['accuracy']:.3f}",
                             **{label: "n/a" if c.get(key) is None else f"{c[key]:.3f}" for label, key in
                                (("sensitivity", "recall"), ("specificity", "specificity"), ("precision", "precision"),
                                 ("NPV", "npv"), ("F1", "f1"))}})
    if cls_rows:
        parts.append("<h2>Event by each horizon as a classification</h2><p class='note'>Patients censored before "
                     "a horizon are left out there; the prediction is the high-risk group.</p>")
        parts.append(_table(pd.DataFrame(cls_rows)))
    for model, m in metrics["models"].items():
        rc = m.get("risk_classes")
        if not rc:
            continue
        edges = ", ".join(f"{e:g}" for e in rc["edges"])
        order = "class 0 = worst" if rc.get("worst_first") else "higher = worse"
        unknown = plural(rc['n_unknown'], 'patient')
        if str(rc.get("labels", "rule")).startswith("column"):
            rule = (f"Classes from the clinical table's {html.escape(rc['labels'])} ({order}); patients "
                    f"with a blank class are left out here ({unknown}).")
        elif rc.get("rule") == "os-severity":
            months = rc.get("edges_months") or []
            if months:
                edges = f"{months[0]:g} months ({edges}"
                unit_shown = f"{unit})"
            else:
                unit_shown = unit
            rule = (f"Classes of Yao et al. 2025 (Appendix 5): survival below or beyond {edges} "
                    f"{html.escape(unit_shown)}, each split by the expert severity read in column "
                    f"'{html.escape(str(rc.get('severity_column')))}' ({order}: short and severe, short and milder, "
                    f"long and severe, long and milder); patients censored before {edges} {html.escape(unit_shown)} or "
                    f"without a severity read are left out here ({unknown}).")
        else:
            rule = (f"Classes of the time to event at edges {edges} {html.escape(unit)} ({order}); a patient "
                    f"censored before the last edge has no known class and is left out here ({unknown}).")
        parts.append(f"<h2>Risk classes of {html.escape(model)}</h2><p class='note'>{rule} "
                     f"95% CIs by patient bootstrap.</p>")
        row = {"patients (known class)": rc["n_known"],
               "class counts": ", ".join(f"{k}: {v}" for k, v in rc["class_counts"].items()),
               "accuracy": estimate_text(rc["accuracy"]), "macro F1": estimate_text(rc["f1_macro"]),
               "one-vs-rest AUC (macro)": estimate_text(rc["auc_ovr_macro"]),
               "AUC per class": ", ".join(f"{k}: {v:.3f}" for k, v in rc["auc_ovr"].items() if v is not None)}
        parts.append(_table(pd.DataFrame([row])))
        if rc.get("per_class"):
            per = [{"class": k, "patients": c["n"], "one-vs-rest AUC (DeLong 95% CI)": estimate_text(c["auc"])
                    if c.get("auc") else "n/a",
                    **{label: "n/a" if c.get(key) is None else f"{c[key]:.3f}" for label, key in
                       (("sensitivity", "sensitivity"), ("specificity", "specificity"), ("precision", "precision"),
                        ("NPV", "npv"), ("F1", "f1"))}} for k, c in rc["per_class"].items()]
            parts.append("<p class='note'>Each class against the rest: the AUC of its probability, and the "
                         "arg-max class being it.</p>")
            parts.append(_table(pd.DataFrame(per)))
        conf = pd.DataFrame(rc["confusion"], index=[f"true {k}" for k in rc["class_counts"]],
                            columns=[f"predicted {k}" for k in rc["class_counts"]])
        parts.append(_table(conf.reset_index(names="")))
    for model, m in metrics["models"].items():
        pg = m.get("progression")
        if not pg:
            continue
        parts.append(f"<h2>Progression head of {html.escape(model)}</h2><p class='note'>Predicted probability of "
                     f"the event by {html.escape(format_horizon(float(pg['horizon']), unit))} (out of fold) against "
                     f"the observed status; {plural(pg['n_unknown'], 'patient')} censored earlier "
                     f"{'is' if pg['n_unknown'] == 1 else 'are'} left out. AUC with DeLong's 95% CI; the other "
                     "figures at probability 0.5.</p>")
        row = {"patients (known status)": pg["n_known"], "events": pg["events"],
               "AUC (DeLong 95% CI)": estimate_text(pg.get("auc")),
               **{k: f"{pg[k]:.3f}" for k in ("accuracy", "f1", "recall", "specificity") if pg.get(k) is not None}}
        parts.append(_table(pd.DataFrame([row])))
    return parts


def _shared_sections(run: Path, config: dict, metrics: dict) -> list[str]:
    parts = []
    filled = imputed_table(metrics.get("imputed", {}))
    if len(filled):
        parts.append("<h2>What was filled in</h2><p class='note'>Patients whose input was completed by the "
                     "toolkit, per model; the <code>imputed</code> column of predictions.csv lists each patient's "
                     "entries.</p>" + _table(filled))
    unscored = run / "unscored.csv"
    if unscored.exists():
        frame = pd.read_csv(unscored, dtype=str, keep_default_na=False)
        if len(frame):
            parts.append("<h2>Patients a model could not use</h2><p class='note'>These patients have no row for the "
                         "model in predictions.csv (its metrics rest on fewer patients than the clinical models'); "
                         "the reason is the error met when reading their input.</p>" + _table(frame))
    parts.append("<h2>Figures</h2>")
    figdir = run / "figures"
    for name, caption in FIGURE_CAPTIONS.items():
        if (figdir / name).exists():
            parts.append(f"<figure>{_img(figdir / name)}<figcaption>{html.escape(caption)}</figcaption></figure>")
    for path in sorted(figdir.glob("forest_model_*.png")):
        model = path.stem[len("forest_model_"):]
        parts.append(f"<figure>{_img(path)}<figcaption>Hazard ratios per SD (or vs the reference level) of "
                     f"{html.escape(model)} fitted on all patients (apparent; for presentation, not for judging "
                     "performance).</figcaption></figure>")
    for path in sorted(figdir.glob("nomogram_*.png")):
        model = path.stem[len("nomogram_"):]
        cal = figdir / f"calibration_{model}.png"
        side = f"<div class='side'>{_img(cal)}</div>" if cal.exists() else ""
        parts.append(f"<figure class='nomogram'><div class='row'><div class='main'>{_img(path)}</div>{side}</div>"
                     f"<figcaption>Nomogram of {html.escape(model)} fitted on all patients: read each covariate's "
                     "points, add them, and read the predicted probability below the total (covariates over their "
                     "1st-99th training percentiles, in original units). Beside it, the same model's out-of-fold "
                     "calibration at each horizon: the nomogram is apparent, the calibration is honest."
                     "</figcaption></figure>")
    sources = config.get("score_sources", {})
    if sources:
        parts.append("<h2>Where the scores come from</h2>" + _table(
            pd.DataFrame([{"score": k, "source": v} for k, v in sources.items()])))
    notes = metrics.get("notes", [])
    if metrics.get("task") == "response":
        caveats = ["The response is assessed after treatment: patients who died or left follow-up before the "
                   "assessment have no label and are not part of this analysis.",
                   "Accuracy, F1, sensitivity and specificity depend on the cut-off; the AUC does not."]
    else:
        caveats = [
            "Response scores (mRECIST and others) and the scores of the course after the first TACE (ART, ABCR) are "
            "assessed after treatment; as predictors of survival from baseline they carry a landmark bias "
            "(patients must survive to be assessed).",
            "Fixed scores take few distinct values: ties lower their C-index, and their td-AUC curves are stepwise.",
        ]
    parts.append("<h2>Notes and caveats</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes + caveats)
                 + "</ul>")
    return parts
