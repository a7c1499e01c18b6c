"""From predictions and outcomes to ``metrics.json`` (schema documented in docs/evaluation.md)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hccprog.evaluation import survival as S
from hccprog.evaluation.bootstrap import bootstrap_ci, paired_bootstrap_difference
from hccprog.evaluation.calibration import calibration_summary, calibration_table
from hccprog.evaluation.classification import binary_metrics, delong_auc_ci
from hccprog.evaluation.groups import GROUP_LABELS, group_shares, hazard_ratio, logrank

SCHEMA = 1


def surv_columns(frame: pd.DataFrame) -> dict[float, str]:
    return {float(c[5:]): c for c in frame.columns if c.startswith("surv_")}


def _model_matrix(preds: pd.DataFrame, model: str, ids: list[str]) -> tuple[list[str], np.ndarray]:
    """Risks of one model as (patients, repeats), restricted to patients scored in every repeat."""
    sub = preds[preds["model"] == model]
    wide = sub.pivot_table(index="patient_id", columns="repeat", values="risk", aggfunc="first")
    wide = wide.reindex([i for i in ids if i in wide.index]).dropna()
    return list(wide.index), wide.to_numpy(float)


def _fmt_h(h: float) -> str:
    return f"{h:g}"


def survival_metrics(predictions: pd.DataFrame, outcomes: pd.DataFrame, *, horizons: list[float],
                     reference: str | None = None, n_boot: int = 1000, seed: int = 0,
                     time_unit: str = "days") -> dict:
    """Per model: Harrell's and Uno's C (mean over repeats, patient-bootstrap 95% CI), time-
    dependent AUC at the horizons, integrated Brier score where survival curves exist, risk
    groups (log-rank, HR high vs low), HR per SD of risk, classification of the event by each
    horizon, calibration; and paired-bootstrap C differences against ``reference``."""
    preds = predictions.copy()
    if "repeat" not in preds:
        preds["repeat"] = 0
    ids_all = list(outcomes.index)
    tau = max(horizons)
    result: dict = {"schema": SCHEMA, "time_unit": time_unit, "horizons": horizons, "uno_tau": tau,
                    "bootstrap": {"n_boot": n_boot, "seed": seed, "level": 0.95, "unit": "patient",
                                  "interval": "percentile"},
                    "models": {}, "comparisons": []}
    stats_by_model = {}
    for model in dict.fromkeys(preds["model"]):
        ids, R = _model_matrix(preds, model, ids_all)
        o = outcomes.loc[ids]
        t = o["time"].to_numpy(float)
        e = o["event"].to_numpy(bool)
        first = preds[(preds["model"] == model) & (preds["repeat"] == preds["repeat"].min())].set_index("patient_id")
        first = first.loc[ids]
        folds = first["fold"].to_numpy(int)
        entry: dict = {"kind": "fixed score" if (folds == -1).all() else "cross-validated",
                       "n": len(ids), "events": int(e.sum()), "repeats": int(R.shape[1])}

        def harrell(ix, R=R, t=t, e=e):
            return float(np.mean([S.harrell_c(t[ix], e[ix], R[ix, r]) for r in range(R.shape[1])]))

        def uno(ix, R=R, t=t, e=e):
            return float(np.mean([S.uno_c(t[ix], e[ix], R[ix, r], tau=tau) for r in range(R.shape[1])]))

        stats_by_model[model] = (ids, harrell)
        entry["harrell_c"] = bootstrap_ci(harrell, len(ids), n_boot=n_boot, seed=seed).as_dict()
        entry["uno_c"] = bootstrap_ci(uno, len(ids), n_boot=n_boot, seed=seed).as_dict()
        if R.shape[1] > 1:
            per = [S.harrell_c(t, e, R[:, r]) for r in range(R.shape[1])]
            entry["harrell_c_per_repeat"] = [round(float(v), 6) for v in per]
            entry["harrell_c_repeat_sd"] = round(float(np.std(per, ddof=1)), 6)
        r0 = R[:, 0]
        td: dict[str, Any] = {}
        for h in horizons:
            def auc_h(ix, h=h, t=t, e=e, r0=r0):
                return float(S.cumulative_dynamic_auc(t[ix], e[ix], r0[ix], [h])[0][0])
            try:
                td[_fmt_h(h)] = bootstrap_ci(auc_h, len(ids), n_boot=n_boot, seed=seed).as_dict()
            except ValueError as err:
                td[_fmt_h(h)] = {"error": str(err)}
        entry["td_auc"] = td
        z = (r0 - r0.mean()) / (r0.std() or 1.0)
        entry["hr_per_sd"] = _round(hazard_ratio(t, e, z, name="risk_sd"))
        if "risk_group" in first and first["risk_group"].notna().all():
            g = first["risk_group"].to_numpy(int)
            n_groups = int(g.max()) + 1 if len(g) else 0
            labels = GROUP_LABELS.get(max(n_groups, 2), [str(k) for k in range(n_groups)])
            smallest, degenerate = group_shares(g)
            entry["risk_groups"] = {
                "smallest_share": round(smallest, 4), "degenerate": degenerate,
                "n_per_group": {labels[k]: int((g == k).sum()) for k in range(len(labels))},
                "events_per_group": {labels[k]: int(e[g == k].sum()) for k in range(len(labels))},
                "logrank": _round(logrank(t, e, g)),
                "hr_high_vs_low": _round(hazard_ratio(t[(g == 0) | (g == g.max())], e[(g == 0) | (g == g.max())],
                                                      (g[(g == 0) | (g == g.max())] == g.max()).astype(float),
                                                      name="high")),
            }
            entry["horizon_classification"] = _horizon_classification(t, e, r0, g, horizons)
        sc = {h: c for h, c in surv_columns(first).items() if first[c].notna().all()}
        if sc:
            grid = sorted(sc)
            Smat = first[[sc[x] for x in grid]].to_numpy(float)
            ok_grid = [k for k, x in enumerate(grid) if x < t.max()]
            if len(ok_grid) >= 2:
                gsel = [grid[k] for k in ok_grid]

                def ibs(ix, Smat=Smat, gsel=gsel, ok=ok_grid, t=t, e=e):
                    try:
                        return S.integrated_brier_score(t[ix], e[ix], Smat[np.ix_(ix, ok)], gsel)
                    except ValueError:
                        return float("nan")
                entry["integrated_brier"] = bootstrap_ci(ibs, len(ids), n_boot=min(n_boot, 200), seed=seed).as_dict()
                entry["integrated_brier"]["times"] = [float(x) for x in gsel]
            cal = {}
            for h in horizons:
                col = sc.get(float(h))
                if col is None:
                    continue
                p = first[col].to_numpy(float)
                tab = calibration_table(t, e, p, h)
                cal[_fmt_h(h)] = _round(calibration_summary(tab, t, e, p, h))
            entry["calibration"] = cal
        result["models"][model] = entry

    if reference and reference in stats_by_model:
        ref_ids, _ = stats_by_model[reference]
        for model, (ids, _) in stats_by_model.items():
            if model == reference:
                continue
            common = [i for i in ids if i in set(ref_ids)]
            if len(common) < 10:
                continue
            o = outcomes.loc[common]
            t = o["time"].to_numpy(float)
            e = o["event"].to_numpy(bool)
            _, RA = _model_matrix(preds, model, common)
            _, RB = _model_matrix(preds, reference, common)

            def ca(ix, R=RA, t=t, e=e):
                return float(np.mean([S.harrell_c(t[ix], e[ix], R[ix, r]) for r in range(R.shape[1])]))

            def cb(ix, R=RB, t=t, e=e):
                return float(np.mean([S.harrell_c(t[ix], e[ix], R[ix, r]) for r in range(R.shape[1])]))
            est, p = paired_bootstrap_difference(ca, cb, len(common), n_boot=n_boot, seed=seed)
            result["comparisons"].append({"model": model, "reference": reference, "n": len(common),
                                          "harrell_c_difference": est.as_dict(),
                                          "p_value": round(p, 6) if np.isfinite(p) else None})
    return result


def _horizon_classification(t, e, risk, groups, horizons) -> dict:
    """The event by each horizon as a binary outcome among patients whose status is known there:
    ROC AUC of the risk (DeLong CI), and the high-risk group (cut-off learned in training folds)
    as the prediction."""
    out = {}
    for h in horizons:
        known = (t > h) | e
        y = ((t <= h) & e)[known]
        if y.sum() < 2 or (~y).sum() < 2:
            continue
        pred = (groups[known] == groups.max()).astype(float)
        m = binary_metrics(y, pred, 0.5)
        auc, lo, hi = delong_auc_ci(y, risk[known])
        out[_fmt_h(h)] = {"n": int(known.sum()), "events": int(y.sum()),
                          "auc": {"value": round(auc, 6), "ci_lower": round(lo, 6), "ci_upper": round(hi, 6),
                                  "method": "DeLong"},
                          **{k: round(v, 6) if np.isfinite(v) else None for k, v in m.items()
                             if k not in ("auc", "threshold")}}
    return out


def _round(d: dict) -> dict:
    return {k: (round(float(v), 6) if isinstance(v, float | np.floating) and np.isfinite(v)
                else (None if isinstance(v, float) else v)) for k, v in d.items()}


def hr_text(hr: dict | None) -> str:
    """'1.85 (1.20-2.84)' from a hazard-ratio entry; the CI left out where it is undefined."""
    if not hr or hr.get("hr") is None:
        return "n/a"
    if hr.get("ci_lower") is None or hr.get("ci_upper") is None:
        return f"{hr['hr']:.2f}"
    return f"{hr['hr']:.2f} ({hr['ci_lower']:.2f}-{hr['ci_upper']:.2f})"


def estimate_text(d: dict | None, digits: int = 3) -> str:
    """'0.612 (0.551 to 0.668)' from a metrics.json estimate."""
    if not d or d.get("value") is None:
        return "n/a"
    if d.get("ci_lower") is None:
        return f"{d['value']:.{digits}f}"
    return f"{d['value']:.{digits}f} ({d['ci_lower']:.{digits}f} to {d['ci_upper']:.{digits}f})"


__all__ = ["SCHEMA", "estimate_text", "surv_columns", "survival_metrics"]
