"""The patient card: one printable HTML page per patient with the risk, the risk group against the
training cut-off, the survival curve with its band, the saliency overlay, the contributions and
what was filled in."""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from hccprog.reports.formatting import format_horizon, plural
from hccprog.reports.pages import markup, render_page
from hccprog.runs import atomic_write_text, save_figure


def _img(path: Path, cls: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img class="{cls}" alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def survival_figure(curves: dict[str, dict], unit: str, horizons: list[float]):
    """The predicted survival curve of each score (the fused model first) with its 95% band."""
    fig, ax = plt.subplots(figsize=(4.2, 2.7))
    colors = ["#d95f02", "#1b9e77", "#7570b3"]
    for k, (name, c) in enumerate(curves.items()):
        t = np.asarray(c["time"], float)
        ax.step(t, c["survival"], where="post", color=colors[k % 3], label=name)
        if c.get("lower") is not None:
            ax.fill_between(t, c["lower"], c["upper"], step="post", color=colors[k % 3], alpha=0.18)
    for h in horizons:
        ax.axvline(h, color="grey", ls=":", lw=0.8)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"time ({unit})", fontsize=8)
    ax.set_ylabel("predicted probability", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def write_card(path: Path, pid: str, entry: dict, *, run_name: str, cohort_name: str, time_unit: str) -> Path:
    """Write ``card.html`` for one patient from its ``explanation.json`` entry (figures beside it
    are embedded, so the card is one self-contained file)."""
    folder = Path(path).parent
    scores = entry.get("scores", {})
    model = entry.get("model", "")
    parts: list[str] = []
    rows = []
    for name, s in scores.items():
        group = html.escape(s["risk_group"])
        cut = ", ".join(f"{c:.3f}" for c in s.get("cutoffs", []))
        surv = "; ".join(f"{html.escape(format_horizon(float(h), time_unit))}: {v:.2f}"
                         for h, v in s.get("survival", {}).items())
        extra = f"; P(PD) {s['p_PD']:.2f}" if "p_PD" in s else ""
        rows.append(f"<tr><td>{html.escape(name)}</td><td class='risk'>{s['risk']:.3f}</td>"
                    f"<td class='{group.split()[0] if group else ''}'>{group}</td><td>{cut}</td>"
                    f"<td>{surv}{extra}</td></tr>")
    parts.append("<h2>Risk</h2><table><tr><th>score</th><th>risk</th><th>group</th><th>training cut-off(s)</th>"
                 "<th>predicted probability of no event</th></tr>" + "".join(rows) + "</table>"
                 "<p class='note'>The group compares the risk with the cut-off(s) learned on the training "
                 "cohort (higher risk = worse).</p>")
    curve, overlay = folder / "survival.png", _first_overlay(folder, entry)
    left = (f"{_img(curve, 'curve')}<p class='note'>Predicted survival with a 95% band from the baseline "
            "hazard's uncertainty (the risk score held fixed); dotted: the run's horizons.</p>") \
        if curve.exists() else ""
    right = _contrib_table(entry)
    parts.append(f"<div class='grid'><div><h2>Survival</h2>{left}</div><div>{right}</div></div>")
    if overlay is not None:
        sal = entry.get("saliency", {})
        parts.append(f"<h2>What the network looked at</h2>{_img(overlay, 'sal')}<p class='note'>Grad-CAM++ of "
                     f"the network's risk on its input (red: raised the risk most; cyan: liver, yellow: tumor "
                     f"contours). Layers: {html.escape(', '.join(sal.get('layers', [])))}. NIfTI maps on the "
                     "original scans lie beside this card.</p>")
    feats = entry.get("features")
    if feats:
        chart = folder / "feature_contributions.png"
        parts.append("<h2>Radiomics features</h2>" + (_img(chart, "curve") if chart.exists() else ""))
    imputed = sorted({e for s in scores.values() for e in s.get("imputed", [])})
    parts.append("<h2>What was filled in</h2>" + (
        "<ul>" + "".join(f"<li>{html.escape(e)}</li>" for e in imputed) + "</ul>" if imputed
        else "<p>Nothing: every input of this patient was observed.</p>"))
    page = render_page("card.html.j2", title=f"hccprog patient card: {pid}", patient=pid, model=model,
                       run_name=run_name, cohort_name=cohort_name, endpoint=str(entry.get("endpoint")),
                       date=datetime.now(timezone.utc).strftime("%Y-%m-%d"), sections=[markup(p) for p in parts])
    atomic_write_text(path, page)
    return path


def _first_overlay(folder: Path, entry: dict) -> Path | None:
    for name in ("overlay_gradcampp.png", "overlay_gradcam.png", "overlay_occlusion.png"):
        if (folder / name).exists():
            return folder / name
    return None


def _contrib_table(entry: dict) -> str:
    rows = entry.get("clinical_contributions")
    if not rows:
        return ""
    body = "".join(f"<tr><td>{html.escape(str(r['label']))}</td><td>{html.escape(str(r['value']))}</td>"
                   f"<td>{r['contribution']:+.3f}</td></tr>" for r in rows if r["term"] != "(baseline)")
    n = sum(1 for r in rows if str(r["value"]).startswith("missing"))
    note = f" {plural(n, 'covariate')} missing, imputed as in training." if n else ""
    return ("<h2>Contributions to the fused model</h2><table><tr><th>term</th><th>value</th><th>log-hazard</th>"
            f"</tr>{body}</table><p class='note'>Coefficient x (value - training mean); positive raises the "
            f"risk.{note}</p>")


def save_survival(folder: Path, curves: dict[str, dict], unit: str, horizons: list[float]) -> None:
    if curves:
        save_figure(survival_figure(curves, unit, horizons), folder / "survival.png")
