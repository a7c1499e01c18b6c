"""The README's picture of what the demo produces: from the demo's run folder, Harrell's C of every model
with its 95% CI (``metrics.json``) beside the Kaplan-Meier curves of RadCLN's (``crnn+clinical``)
out-of-fold risk groups (``predictions.csv``, ``outcomes.csv``; lifelines). Written as a palette PNG
under 300 KB.

    bash scripts/demo.sh
    .venv/bin/python scripts/demo_figure.py demo/runs/crnn-os --out docs/demo.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MAX_BYTES = 300_000


def _km(ax, run: Path, model: str, metrics: dict) -> None:
    """Kaplan-Meier curves (95% bands) of ``model``'s out-of-fold risk groups, first repeat."""
    import pandas as pd
    from lifelines import KaplanMeierFitter

    preds = pd.read_csv(run / "predictions.csv", dtype={"patient_id": str})
    preds = preds[preds["model"] == model].set_index("patient_id")
    outcomes = pd.read_csv(run / "outcomes.csv", dtype={"patient_id": str}).set_index("patient_id")
    joined = outcomes.join(preds["risk_group"], how="inner")
    unit = metrics.get("time_unit", "days")
    for group, label, color in ((0, "low risk", "#1b9e77"), (1, "high risk", "#d95f02")):
        part = joined[joined["risk_group"] == group]
        KaplanMeierFitter().fit(part["time"], part["event"], label=f"{label} (n={len(part)})").plot_survival_function(
            ax=ax, color=color)
    groups = metrics["models"][model].get("risk_groups", {})
    hr = groups.get("hr_high_vs_low") or {}
    if hr.get("hr") is not None:
        ax.text(0.98, 0.97, f"HR high vs low {hr['hr']:.2f} ({hr['ci_lower']:.2f}-{hr['ci_upper']:.2f})",
                transform=ax.transAxes, ha="right", va="top", fontsize=9)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("overall survival")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{model}: out-of-fold risk groups (cut-off learned in each training fold)", fontsize=10)


def draw(run: Path, out: Path) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    metrics = json.loads((run / "metrics.json").read_text())
    rows = []
    for name, m in metrics["models"].items():
        c = m.get("harrell_c") or {}
        if c.get("value") is not None:
            rows.append((name, c["value"], c.get("ci_lower"), c.get("ci_upper")))
    rows.sort(key=lambda r: r[1])
    fused = "crnn+clinical"

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for i, (name, value, lo, hi) in enumerate(rows):
        color = "#c0392b" if name.startswith("crnn") else "#555555"
        if lo is not None and hi is not None:
            left.plot([lo, hi], [i, i], color=color, lw=2)
        left.plot([value], [i], "o", color=color)
    left.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    left.axvline(0.5, color="#999999", lw=0.8, ls="--")
    left.set_xlabel("Harrell's C, out-of-fold (patient-bootstrap 95% CI)")
    cohort = metrics.get("n_patients") or metrics.get("n")
    left.set_title(f"{run.name}: every model of the run" + (f" ({cohort} patients)" if cohort else ""), fontsize=10)
    _km(right, run, fused, metrics)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    Image.open(tmp).convert("RGB").quantize(colors=128).save(out, optimize=True)
    tmp.unlink()
    size = out.stat().st_size
    print(f"{out}: {size / 1000:.0f} KB")
    return 0 if size < MAX_BYTES else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the demo's run folder (demo/runs/crnn-os)")
    parser.add_argument("--out", type=Path, default=Path("docs/demo.png"))
    args = parser.parse_args(argv)
    return draw(args.run, args.out)


if __name__ == "__main__":
    sys.exit(main())
