"""Publication-grade figures of a run (matplotlib, Agg backend; PNG at 150 dpi)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hccprog.evaluation import survival as S
from hccprog.evaluation.calibration import calibration_table, decision_curve
from hccprog.evaluation.groups import GROUP_LABELS, kaplan_meier_table
from hccprog.evaluation.metrics import hr_text

COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
          "#1f78b4", "#b2df8a"]
GROUP_COLORS = {"low": "#1b9e77", "intermediate": "#e6ab02", "high": "#d95f02"}


def _grid(n: int, width: float = 4.2, height: float = 3.4) -> tuple[Figure, np.ndarray]:
    cols = min(3, max(1, n))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def km_by_group(first: dict[str, pd.DataFrame], outcomes: pd.DataFrame, metrics: dict, unit: str) -> Figure:
    """Kaplan-Meier curves (95% band) by risk group, one panel per model, with log-rank p and HR."""
    models = [m for m, f in first.items() if "risk_group" in f]
    fig, axes = _grid(len(models))
    for ax, model in zip(axes, models, strict=False):
        f = first[model]
        o = outcomes.loc[f.index]
        g = f["risk_group"].to_numpy(int)
        labels = GROUP_LABELS.get(max(int(g.max()) + 1, 2))
        for label, tab in kaplan_meier_table(o["time"], o["event"], g, labels).items():
            c = GROUP_COLORS.get(label, "k")
            n_k = int((g == labels.index(label)).sum())
            ax.step(tab.index, tab["survival"], where="post", color=c, label=f"{label} (n={n_k})")
            ax.fill_between(tab.index, tab["lower"], tab["upper"], step="post", color=c, alpha=0.15)
        rg = metrics["models"].get(model, {}).get("risk_groups", {})
        p = rg.get("logrank", {}).get("p_value")
        hr = rg.get("hr_high_vs_low", {})
        txt = []
        if p is not None:
            txt.append(f"log-rank p = {p:.3g}")
        if hr.get("hr") is not None:
            txt.append(f"HR {hr_text(hr)}")
        ax.text(0.97, 0.97, "\n".join(txt), transform=ax.transAxes, ha="right", va="top", fontsize=8)
        _km_axes(ax, model, unit)
    fig.tight_layout()
    return fig


def _km_axes(ax, title: str, unit: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("event-free probability")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower left")


def km_by_class(frame: pd.DataFrame, rc: dict, model: str, unit: str) -> Figure:
    """Kaplan-Meier curves (95% band) by predicted risk class (arg-max of ``p_<k>``)."""
    proba = frame.filter(like="p_").to_numpy(float)
    pred = np.argmax(proba, axis=1)
    k = proba.shape[1]
    labels = [f"class {j}" for j in range(k)]
    fig, axes = _grid(1, width=5.0, height=3.8)
    ax = axes[0]
    cmap = plt.get_cmap("viridis")
    for label, tab in kaplan_meier_table(frame["time"], frame["event"], pred, labels).items():
        j = labels.index(label)
        c = cmap(j / max(1, k - 1))
        ax.step(tab.index, tab["survival"], where="post", color=c, label=f"{label} (n={int((pred == j).sum())})")
        ax.fill_between(tab.index, tab["lower"], tab["upper"], step="post", color=c, alpha=0.12)
    p = rc.get("logrank_predicted", {}).get("p_value")
    if p is not None:
        ax.text(0.97, 0.97, f"log-rank p = {p:.3g}", transform=ax.transAxes, ha="right", va="top", fontsize=8)
    _km_axes(ax, f"{model}: predicted risk class", unit)
    fig.tight_layout()
    return fig


def td_roc(first: dict[str, pd.DataFrame], outcomes: pd.DataFrame, horizons: list[float], metrics: dict,
           unit: str) -> Figure:
    """Cumulative/dynamic ROC curves at each horizon, all models overlaid."""
    fig, axes = _grid(len(horizons), 4.2, 4.0)
    for ax, h in zip(axes, horizons, strict=False):
        for k, (model, f) in enumerate(first.items()):
            o = outcomes.loc[f.index]
            fpr, tpr = S.cumulative_dynamic_roc(o["time"], o["event"], f["risk"], h)
            auc = metrics["models"].get(model, {}).get("td_auc", {}).get(f"{h:g}", {}).get("value")
            lab = f"{model} ({auc:.2f})" if auc is not None else model
            ax.plot(fpr, tpr, color=COLORS[k % len(COLORS)], lw=1.4, label=lab)
        ax.plot([0, 1], [0, 1], ls=":", color="grey")
        ax.set_title(f"time-dependent ROC at {h:g} {unit}", fontsize=10)
        ax.set_xlabel("1 - specificity")
        ax.set_ylabel("sensitivity")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def response_roc(first: dict[str, pd.DataFrame], labels: pd.Series, metrics: dict) -> Figure:
    """Out-of-fold ROC curves of PD against disease control, all models overlaid (AUC and DeLong
    95% CI in the legend)."""
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    for k, (model, f) in enumerate(first.items()):
        y = labels.loc[f.index].to_numpy(int)
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, f["risk"].to_numpy(float))
        a = metrics["models"].get(model, {}).get("auc")
        lab = f"{model} {a['value']:.3f} ({a['ci_lower']:.3f}-{a['ci_upper']:.3f})" if a else model
        ax.plot(fpr, tpr, color=COLORS[k % len(COLORS)], lw=1.4, label=lab)
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="Out-of-fold ROC: PD vs disease control")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def _with_survival(first: dict[str, pd.DataFrame], horizon: float) -> tuple[str, list[str]]:
    """The ``surv_<horizon>`` column and the models that predicted it for every patient."""
    col = f"surv_{horizon:g}"
    return col, [m for m, f in first.items() if col in f and f[col].notna().all()]


def calibration_plot(first: dict[str, pd.DataFrame], outcomes: pd.DataFrame, horizon: float,
                     unit: str) -> Figure | None:
    """Predicted vs Kaplan-Meier observed survival at ``horizon`` by quartile of prediction."""
    col, models = _with_survival(first, horizon)
    if not models:
        return None
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    for k, model in enumerate(models):
        f = first[model]
        o = outcomes.loc[f.index]
        tab = calibration_table(o["time"], o["event"], f[col], horizon)
        c = COLORS[k % len(COLORS)]
        ax.errorbar(tab["predicted"], tab["observed"],
                    yerr=[tab["observed"] - tab["observed_lower"], tab["observed_upper"] - tab["observed"]],
                    fmt="o-", color=c, capsize=3, label=model)
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"predicted survival at {horizon:g} {unit}")
    ax.set_ylabel("observed (Kaplan-Meier, 95% CI)")
    ax.set_title("calibration by quartile of prediction", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def decision_curve_plot(first: dict[str, pd.DataFrame], outcomes: pd.DataFrame, horizon: float,
                        unit: str) -> Figure | None:
    """Net benefit of the event probability by ``horizon`` (1 - predicted survival)."""
    col, models = _with_survival(first, horizon)
    if not models:
        return None
    fig, ax = plt.subplots(figsize=(5.0, 4.0))
    ref = None
    for k, model in enumerate(models):
        f = first[model]
        o = outcomes.loc[f.index]
        dca = decision_curve(o["time"], o["event"], 1 - f[col].to_numpy(float), horizon)
        ax.plot(dca["threshold"], dca["net_benefit"], color=COLORS[k % len(COLORS)], label=model)
        ref = dca
    ax.plot(ref["threshold"], ref["treat_all"], color="grey", ls="--", label="treat all")
    ax.axhline(0, color="k", lw=0.8, label="treat none")
    top = max(0.05, float(np.nanmax(ref["treat_all"])) * 1.1)
    ax.set_ylim(-0.05, top)
    ax.set_xlabel(f"threshold probability of the event by {horizon:g} {unit}")
    ax.set_ylabel("net benefit")
    ax.set_title("decision curve", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def forest_plot(rows: pd.DataFrame, title: str) -> Figure:
    """Hazard ratios with 95% CIs on a log axis; ``rows``: label, hr, ci_lower, ci_upper, p_value."""
    rows = rows.dropna(subset=["hr"]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(6.4, 0.42 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    hr, lo, hi = (rows[c].to_numpy(float) for c in ("hr", "ci_lower", "ci_upper"))  # arrays: one row works too
    ax.errorbar(hr, y, xerr=[hr - lo, hi - hr], fmt="s", color="#333333", ecolor="#333333", capsize=3)
    ax.axvline(1, color="grey", ls=":")
    ax.set_xscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels(rows["label"], fontsize=8)
    for yi, (_, r) in zip(y, rows.iterrows(), strict=True):
        ax.text(1.02, yi, f"{r['hr']:.2f} ({r['ci_lower']:.2f}-{r['ci_upper']:.2f})  p={r['p_value']:.3g}",
                transform=ax.get_yaxis_transform(), fontsize=7, va="center")
    ax.set_xlabel("hazard ratio (95% CI)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def nomogram(model, horizons: list[float], unit: str, title: str) -> Figure:
    """Nomogram of a fitted :class:`~hccprog.baselines.cox.CoxModel`: points per covariate on its
    original scale (the largest effect spans 100 points), total points, linear predictor and the
    predicted survival at each horizon (Breslow baseline)."""
    coefs = model.model_.params_
    prep = model.prep_
    lo_hi = {n: model.ranges_[n] for n in coefs.index}  # 1st-99th percentile of training patients
    spans = {n: abs(coefs[n]) * (lo_hi[n][1] - lo_hi[n][0]) for n in coefs.index}
    order = sorted(spans, key=spans.get, reverse=True)
    order = [n for n in order if spans[n] > 1e-9][:12]
    max_span = max(spans[n] for n in order) if order else 1.0
    n_rows = len(order) + 2 + len(horizons)
    fig, ax = plt.subplots(figsize=(8.0, 0.5 * n_rows + 1.0))
    ax.set_xlim(-0.5, 110)
    ax.set_ylim(-0.5, n_rows)
    ax.axis("off")

    def axis_row(y, label, positions, ticks):
        ax.plot([min(positions), max(positions)], [y, y], color="k", lw=1)
        for x, tlabel in zip(positions, ticks, strict=True):
            ax.plot([x, x], [y, y + 0.12], color="k", lw=1)
            ax.text(x, y + 0.18, tlabel, ha="center", va="bottom", fontsize=7)
        ax.text(-1.5, y, label, ha="right", va="center", fontsize=8)

    y = n_rows - 1
    axis_row(y, "Points", list(np.linspace(0, 100, 11)), [f"{v:.0f}" for v in np.linspace(0, 100, 11)])
    total_max = 0.0
    for name in order:
        y -= 1
        b = coefs[name]
        zs = np.linspace(*lo_hi[name], 5)
        pts = (b * zs - min(b * zs)) / max_span * 100
        total_max += pts.max()
        raw = prep.unscaled(name, zs)
        labels = [f"{v:.3g}" for v in raw]
        if "=" in name:  # a dummy: only 0/1 make sense
            z01 = (np.array([0.0, 1.0]) - prep.mean_[name]) / prep.std_[name]
            pts = (b * z01 - min(b * zs)) / max_span * 100
            labels = ["no", "yes"]
        axis_row(y, name, list(pts), labels)
    y -= 1
    tot = np.linspace(0, total_max, 6)
    pos = tot / max(total_max, 1e-9) * 100
    axis_row(y, "Total points", list(pos), [f"{v:.0f}" for v in tot])
    # linear predictor for total points: lp = min_lp + total * max_span / 100
    min_lp = sum(min(coefs[n] * np.array(lo_hi[n])) for n in order)
    lps = min_lp + tot * max_span / 100
    bh = model.model_.baseline_cumulative_hazard_
    norm_mean = getattr(model.model_, "_norm_mean", None)
    mean_lp = float(np.dot(norm_mean.to_numpy(), coefs.to_numpy())) if norm_mean is not None else 0.0
    for h in horizons:
        y -= 1
        idx = bh.index.searchsorted(h, side="right") - 1
        H0 = float(bh.iloc[max(idx, 0), 0])
        surv = np.exp(-H0 * np.exp(lps - mean_lp))
        axis_row(y, f"S({h:g} {unit})", list(pos), [f"{v:.2f}" for v in surv])
    ax.set_title(title + "  (covariates over their 1st-99th training percentiles)", fontsize=9)
    fig.tight_layout()
    return fig
