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
from hccprog.reports.formatting import format_horizon, format_p

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
            txt.append(f"log-rank p {_p_eq(p)}")
        if hr.get("hr") is not None:
            txt.append(f"HR {hr_text(hr)}")
        if rg.get("degenerate"):
            txt.append(f"degenerate split: smallest group {rg['smallest_share']:.0%}")
        ax.text(0.97, 0.97, "\n".join(txt), transform=ax.transAxes, ha="right", va="top", fontsize=8)
        _km_axes(ax, model, unit)
    fig.tight_layout()
    return fig


def _p_eq(p: float) -> str:
    """``= 0.012`` or ``< 0.001``: the relation and the formatted p-value."""
    text = format_p(p)
    return text if text.startswith("<") else f"= {text}"


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
    worst, best = (0, k - 1) if rc.get("worst_first") else (k - 1, 0)
    labels = [f"class {j}" + (" (worst)" if j == worst else " (best)" if j == best else "") for j in range(k)]
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
        ax.text(0.97, 0.97, f"log-rank p {_p_eq(p)}", transform=ax.transAxes, ha="right", va="top", fontsize=8)
    _km_axes(ax, f"{model}: predicted risk class", unit)
    fig.tight_layout()
    return fig


def td_roc(first: dict[str, pd.DataFrame], outcomes: pd.DataFrame, horizons: list[float], metrics: dict,
           unit: str) -> Figure:
    """Cumulative/dynamic ROC curves at each horizon, all models overlaid. With more than five
    models each panel's legend goes below it, where it hides no curve."""
    many = len(first) > 5
    rows = int(np.ceil(len(first) / 2))
    fig, axes = _grid(len(horizons), 4.2, 4.0 + (0.17 * rows + 0.3 if many else 0))
    colors = model_colors(list(first))
    for ax, h in zip(axes, horizons, strict=False):
        for model, f in first.items():
            o = outcomes.loc[f.index]
            fpr, tpr = S.cumulative_dynamic_roc(o["time"], o["event"], f["risk"], h)
            auc = metrics["models"].get(model, {}).get("td_auc", {}).get(f"{h:g}", {}).get("value")
            lab = f"{model} ({auc:.2f})" if auc is not None else model
            ax.plot(fpr, tpr, color=colors[model], lw=1.4, label=lab)
        ax.plot([0, 1], [0, 1], ls=":", color="grey")
        ax.set_title(f"time-dependent ROC at {format_horizon(h, unit)}", fontsize=10)
        ax.set_xlabel("1 - specificity")
        ax.set_ylabel("sensitivity")
        ax.set_box_aspect(1)
        if many:
            ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
        else:
            ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def model_colors(models: list[str]) -> dict[str, str]:
    """One distinct colour per model (the qualitative palette, then tab20 beyond ten models)."""
    if len(models) <= len(COLORS):
        return {m: COLORS[k] for k, m in enumerate(models)}
    cmap = plt.get_cmap("tab20")
    return {m: matplotlib.colors.to_hex(cmap(k % 20)) for k, m in enumerate(models)}


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
    ax.set_xlabel(f"predicted survival at {format_horizon(horizon, unit)}")
    ax.set_ylabel("observed (Kaplan-Meier, 95% CI)")
    ax.set_title("calibration by quartile of prediction", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def model_calibration(frame: pd.DataFrame, outcomes: pd.DataFrame, horizons: list[float], unit: str,
                      model: str) -> Figure | None:
    """One model's calibration at every horizon it predicted (out of fold), the figure that sits
    beside its nomogram."""
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    drawn = 0
    for k, h in enumerate(horizons):
        col = f"surv_{h:g}"
        if col not in frame or frame[col].isna().any():
            continue
        o = outcomes.loc[frame.index]
        if (o["time"] >= h).sum() < 5:  # too few patients followed to the horizon
            continue
        tab = calibration_table(o["time"], o["event"], frame[col], h)
        ax.errorbar(tab["predicted"], tab["observed"],
                    yerr=[tab["observed"] - tab["observed_lower"], tab["observed_upper"] - tab["observed"]],
                    fmt="o-", color=COLORS[k % len(COLORS)], capsize=3, label=format_horizon(h, unit))
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted survival (out of fold)")
    ax.set_ylabel("observed (Kaplan-Meier, 95% CI)")
    ax.set_title(f"{model}: calibration by quartile", fontsize=10)
    ax.legend(fontsize=7, title="horizon", title_fontsize=7)
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
    ax.set_xlabel(f"threshold probability of the event by {format_horizon(horizon, unit)}")
    ax.set_ylabel("net benefit")
    ax.set_title("decision curve", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _plain_log_ticks(ax, values: np.ndarray) -> None:
    """Log-axis ticks at round ratios labelled as plain numbers (0.5, 1, 2), no minor labels."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    lo, hi = (v.min(), v.max()) if len(v) else (0.5, 2.0)
    candidates = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10, 20, 50, 100]
    ticks = [c for c in candidates if lo / 1.05 <= c <= hi * 1.05]
    while len(ticks) > 7:  # keep 1 and thin the rest
        ticks = [c for k, c in enumerate(ticks) if c == 1 or k % 2 == 0]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(lambda x, _pos: f"{x:g}")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def forest_plot(rows: pd.DataFrame, title: str) -> Figure:
    """Hazard ratios with 95% CIs on a log axis; ``rows``: label, hr, ci_lower, ci_upper, p_value."""
    rows = rows.dropna(subset=["hr"]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(6.4, 0.42 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    hr, lo, hi = (rows[c].to_numpy(float) for c in ("hr", "ci_lower", "ci_upper"))  # arrays: one row works too
    ax.errorbar(hr, y, xerr=[hr - lo, hi - hr], fmt="s", color="#333333", ecolor="#333333", capsize=3)
    ax.axvline(1, color="grey", ls=":")
    ax.set_xscale("log")
    _plain_log_ticks(ax, np.r_[lo, hi, 1.0])
    ax.set_yticks(y)
    ax.set_yticklabels(rows["label"], fontsize=8)
    for yi, (_, r) in zip(y, rows.iterrows(), strict=True):
        ax.text(1.02, yi, f"{r['hr']:.2f} ({r['ci_lower']:.2f}-{r['ci_upper']:.2f})  p {_p_eq(r['p_value'])}",
                transform=ax.get_yaxis_transform(), fontsize=7, va="center")
    ax.set_xlabel("hazard ratio (95% CI)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
