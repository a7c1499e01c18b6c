"""Nomograms of Cox models in the units clinicians read: the clinical Cox model and the fused
``<model>+clinical`` model (RadCLN: the image score plus the clinical covariates).

A model is first written as additive *terms* (:class:`Term`): one per covariate as the cohort
declares it (a categorical covariate's dummies form one term) and one for the image score, each
contributing ``sum_k beta_k (x_k - mean_k)`` to the linear predictor, where ``x_k`` is the
covariate on the scale the model was fitted on (a log-transformed AFP is ``log(AFP)``; an ordinal
covariate its level index; a dummy 0/1). :class:`Nomogram` turns them into points: the term with
the widest span of contributions over the training range (1st-99th percentile) spans 100 points,
and ``linear predictor = offset + sum(min contribution) + total points * span / 100`` exactly, so
the points reproduce the model. The same terms give a patient's per-covariate contributions in
original units (the patient card).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from hccprog.reports.formatting import horizon_adjective
from hccprog.survival.breslow import BreslowSurvival

#: Inverse of each covariate transform of the cohort contract (``CovariateSpec.transform``).
_INVERSE = {"none": lambda v: v, "log": np.exp, "log1p": np.expm1, "log10": lambda v: 10.0 ** v,
            "log2": lambda v: 2.0 ** v, "sqrt": np.square}
_FORWARD = {"none": lambda v: v, "log": np.log, "log1p": np.log1p, "log10": np.log10, "log2": np.log2,
            "sqrt": np.sqrt}
#: Endpoint -> what its "survival" probability is called.
OUTCOME_WORDS = {"os": "survival", "pfs": "progression-free survival", "ttp": "progression-free",
                 "rfs": "recurrence-free survival"}

TermKind = Literal["numeric", "ordinal", "categorical", "score"]


@dataclass
class Term:
    """One additive term of a linear predictor.

    ``features`` maps each encoded feature to its coefficient per encoded unit and ``means`` to its
    training mean: ``numeric``, ``ordinal`` and ``score`` terms have one feature (the covariate on
    the model's scale: transformed value, level index, image score), a ``categorical`` term one
    dummy per non-reference level (``name=level``)."""

    name: str
    label: str
    kind: TermKind
    features: dict[str, float]
    means: dict[str, float]
    lo: float = 0.0  # numeric/ordinal/score: the training range on the model's scale
    hi: float = 0.0
    transform: str = "none"
    unit: str | None = None
    levels: list[str] = field(default_factory=list)  # categorical: reference first; ordinal: by index
    fill: float | str | None = None  # what the model puts for a missing value (training median or mode)
    names: dict[str, str] = field(default_factory=dict)  # categorical: how a level reads (binary 0/1: no/yes)

    def encode(self, value) -> dict[str, float]:
        """The encoded features of one raw (model-scale) value: a number, or a level; a missing one
        is filled as the model fills it."""
        if _missing(value):
            value = self.fill
        if self.kind == "categorical":
            return {f: float(str(value) == f.split("=", 1)[1]) for f in self.features}
        (f,) = self.features
        return {f: float(value)}

    def contribution(self, value) -> float:
        """``sum_k beta_k (x_k - mean_k)``: the term's part of the linear predictor, centred."""
        x = self.encode(value)
        return float(sum(b * (x[f] - self.means[f]) for f, b in self.features.items()))

    def axis_values(self) -> list:
        """The values the term's axis spans: its levels, or its range on the model's scale."""
        if self.kind == "categorical":
            return list(self.levels)
        if self.kind == "ordinal":
            return [float(k) for k in range(math.ceil(self.lo - 1e-9), math.floor(self.hi + 1e-9) + 1)]
        return [self.lo, self.hi]

    def original(self, value: float) -> float:
        """A model-scale value in original units (the transform inverted)."""
        return float(_INVERSE[self.transform](value))

    def display(self, value) -> str:
        """A value as the cohort table had it (original units, level names)."""
        if _missing(value):
            return "missing"
        if self.kind == "categorical":
            return self.names.get(str(value), str(value))
        if self.kind == "ordinal" and self.levels:
            k = round(float(value))
            return self.levels[k] if 0 <= k < len(self.levels) else f"{value:g}"
        v = self.original(float(value))
        return f"{v:.3g}" + (f" {self.unit}" if self.unit else "")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def covariate_info(cohort) -> dict[str, dict]:
    """What a nomogram needs to know of each covariate of ``cohort`` (under the name models use,
    aliases applied): type, unit, transform, levels (ordinal: lowest risk first)."""
    out = {}
    aliases = dict(cohort.spec.covariate_aliases)
    for name, spec in (cohort.spec.covariates or {}).items():
        out[aliases.get(name, name)] = {"type": spec.type, "unit": spec.unit, "transform": spec.transform,
                                        "levels": [str(v) for v in spec.levels] if spec.levels else None}
    return out


def _label(name: str, info: Mapping) -> str:
    unit = info.get("unit")
    return f"{name} ({unit})" if unit else name


def clinical_terms(state: Mapping, info: Mapping[str, Mapping] | None = None, *,
                   scale: float = 1.0) -> tuple[list[Term], float]:
    """The terms of a clinical Cox model (``CoxModel.state()``), each coefficient times ``scale``,
    and the offset: ``risk = offset + sum(term contributions)``."""
    info = info or {}
    prep = state["preprocessor"]
    coefs, center = state["coefficients"], state["center"]
    mean, std = prep["mean"], prep["std"]
    ranges = state.get("ranges", {})
    offset = -scale * sum(coefs[k] * center[k] for k in coefs)
    terms = []
    for col in prep["columns"]:
        kind = prep["kinds"][col]
        meta = info.get(col, {})
        if kind == "categorical":
            feats = {k: scale * coefs[k] / std[k] for k in coefs if k.startswith(f"{col}=")}
            if not feats:
                continue
            levels = [str(prep["fill"][col])] + [str(v) for v in prep["levels"][col]]
            names = {}
            if meta.get("type") == "binary" and set(levels) <= {"0", "1", "0.0", "1.0", "False", "True"}:
                names = {lv: "yes" if lv in ("1", "1.0", "True") else "no" for lv in levels}
            terms.append(Term(col, _label(col, meta), "categorical", feats, {k: mean[k] for k in feats},
                              levels=levels, fill=str(prep["fill"][col]), names=names))
            continue
        if col not in coefs:
            continue
        lo, hi = ranges.get(col, (mean[col] - 2 * std[col], mean[col] + 2 * std[col]))
        ordinal = meta.get("type") == "ordinal"
        terms.append(Term(col, _label(col, meta), "ordinal" if ordinal else "numeric",
                          {col: scale * coefs[col] / std[col]}, {col: mean[col]}, lo=float(lo), hi=float(hi),
                          transform=meta.get("transform") or "none", unit=meta.get("unit"),
                          levels=list(meta.get("levels") or []), fill=float(prep["fill"][col])))
    return terms, offset


def fused_terms(image: str, image_range: tuple[float, float], fusion: Mapping, clinical: Mapping,
                info: Mapping[str, Mapping] | None = None) -> tuple[list[Term], float]:
    """The terms of a bivariate Cox fusion (``BivariateCoxFusion.state()``) of an image score and
    a clinical Cox score (``CoxModel.state()``): the image score, then the clinical covariates with
    their coefficients times the fusion's weight of the clinical score. A fusion with the LOCF
    indicator is written for patients with an observed follow-up (indicator 0)."""
    (la, lb), (sa, sb) = fusion["loc"], fusion["scale"]
    fc, cc = fusion["coefficients"], fusion["center"]
    wa, wb = fc["score_a"] / sa, fc["score_b"] / sb
    cterms, coffset = clinical_terms(clinical, info, scale=wb)
    offset = coffset - wb * lb - fc["score_a"] * cc["score_a"] - fc["score_b"] * cc["score_b"]
    offset -= sum(fc[k] * cc[k] for k in ("indicator", "score_a_indicated") if k in fc)
    img = Term(image, f"{image} score", "score", {image: wa}, {image: la}, lo=float(image_range[0]),
               hi=float(image_range[1]))
    return [img, *cterms], offset


class Nomogram:
    """Points of the terms of a Cox model's linear predictor, and the survival they predict.

    ``cumhaz``: the baseline cumulative hazard at each horizon, such that
    ``S(h | lp) = exp(-cumhaz[h] * exp(lp))``."""

    def __init__(self, terms: list[Term], offset: float, *, cumhaz: Mapping[float, float] | None = None,
                 unit: str = "days", endpoint: str = "os", note: str = "") -> None:
        self.offset = float(offset)
        self.cumhaz = {float(h): float(v) for h, v in (cumhaz or {}).items()}
        self.unit, self.endpoint, self.note = unit, endpoint, note
        spans = {}
        for t in terms:
            c = [t.contribution(v) for v in t.axis_values()]
            spans[t.name] = (min(c), max(c))
        self.terms = sorted((t for t in terms if spans[t.name][1] - spans[t.name][0] > 1e-12),
                            key=lambda t: spans[t.name][1] - spans[t.name][0], reverse=True)
        self.cmin = {t.name: spans[t.name][0] for t in self.terms}
        self.span = max((spans[t.name][1] - spans[t.name][0] for t in self.terms), default=1.0)

    def points(self, term: Term, value) -> float:
        return (term.contribution(value) - self.cmin[term.name]) * 100.0 / self.span

    def patient_points(self, values: pd.DataFrame) -> pd.DataFrame:
        """Points per term and ``total`` for each row of ``values`` (model-scale values: numbers or
        levels, one column per term)."""
        out = pd.DataFrame(index=values.index)
        for t in self.terms:
            out[t.name] = [self.points(t, v) for v in values[t.name]]
        out["total"] = out[[t.name for t in self.terms]].sum(axis=1)
        return out

    def max_total(self) -> float:
        return float(sum(max(self.points(t, v) for v in t.axis_values()) for t in self.terms))

    def linear_predictor(self, total_points) -> np.ndarray:
        """The model's linear predictor of a total number of points."""
        return self.offset + sum(self.cmin.values()) + np.asarray(total_points, float) * self.span / 100.0

    def total_points(self, lp) -> np.ndarray:
        """The inverse of :meth:`linear_predictor`."""
        return (np.asarray(lp, float) - self.offset - sum(self.cmin.values())) * 100.0 / self.span

    def predict_survival(self, total_points, horizon: float) -> np.ndarray:
        """The probability of no event by ``horizon`` that a total number of points reads."""
        return np.exp(-self.cumhaz[float(horizon)] * np.exp(self.linear_predictor(total_points)))

    def horizon_label(self, horizon: float) -> str:
        word = OUTCOME_WORDS.get(self.endpoint, "event-free")
        return f"{horizon_adjective(horizon, self.unit)} {word} probability"


def tick_sets(term: Term) -> list[list[tuple[float, str]]]:
    """Candidate ticks of a numeric, ordinal or score axis, densest first: (model-scale value, label
    in original units). Log-transformed covariates get log-spaced 1-2-5 ticks, others round numbers;
    the last set is the range's two ends."""
    from matplotlib.ticker import MaxNLocator

    if term.kind == "ordinal":
        return [[(v, term.display(v)) for v in term.axis_values()]]
    lo, hi = sorted((term.lo, term.hi))
    olo, ohi = sorted((term.original(lo), term.original(hi)))
    fwd = _FORWARD[term.transform]
    sets: list[list[float]] = []
    if term.transform.startswith("log") and olo > 0:
        decades = range(math.floor(math.log10(olo)) - 1, math.ceil(math.log10(ohi)) + 1)
        for mult in ((1, 1.5, 2, 3, 5, 7), (1, 2, 5), (1, 3), (1,)):
            sets.append([m * 10.0 ** k for k in decades for m in mult if olo <= m * 10.0 ** k <= ohi])
    for nbins in (8, 6, 5, 4, 3, 2):
        vals = MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(olo, ohi)
        sets.append([v for v in vals if olo - 1e-9 * max(1, abs(olo)) <= v <= ohi + 1e-9 * max(1, abs(ohi))])
    out = [[(float(fwd(v)), f"{v:g}") for v in vals] for vals in sets if len(vals) >= 2]
    out.append([(lo, f"{term.original(lo):.3g}"), (hi, f"{term.original(hi):.3g}")])
    return out


def draw(nomo: Nomogram, title: str, horizons: list[float]):
    """The nomogram figure: Points, one axis per term (original units), Total points, and the
    predicted probability at each horizon. Numeric axes get the densest round ticks whose labels
    fit; levels (categorical, ordinal) all keep their labels, stacked in as many text rows as it
    takes, so no two labels overlap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(8.5, 4.0))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.93))  # fixed: label widths measured now stay true
    ax.set_xlim(-50, 104)
    ax.axis("off")
    renderer = fig.canvas.get_renderer()
    pad, step_y = 1.4, 0.3  # data units between labels; height of a text row

    def width(text: str, size: int = 8) -> float:
        t = ax.text(0, 0, text, fontsize=size)
        bb = t.get_window_extent(renderer).transformed(ax.transData.inverted())
        t.remove()
        return bb.width

    names = ["Points", "Total points"] + [t.label for t in nomo.terms] + [nomo.horizon_label(h) for h in horizons]
    left = max(width(n, 9) for n in names) + 5  # the label column, as wide as the longest label needs
    ax.set_xlim(-left * 100 / (100 + left) * 1.0, 104)  # first guess in the provisional scale ...
    left = max(width(n, 9) for n in names) + 5  # ... measured again in the final one
    ax.set_xlim(-left, 104)

    def layout(ticks: list[tuple[float, str]], keep_all: bool) -> list[tuple[float, str, int]]:
        """(x, label, text row) of each tick kept: the first row where it fits; numeric axes
        drop a tick that does not fit the first row."""
        rows: list[float] = []
        out = []
        for x, text in sorted(ticks, key=lambda tk: tk[0]):
            w = width(text)
            row = next((k for k, edge in enumerate(rows) if x - w / 2 > edge + pad), len(rows))
            if row > 0 and not keep_all:
                continue
            if row == len(rows):
                rows.append(-1e9)
            rows[row] = x + w / 2
            out.append((x, text, row))
        return out

    def fits(ticks: list[tuple[float, str]]) -> bool:
        return len(layout(ticks, False)) == len(ticks)

    axes: list[tuple[str, list[tuple[float, str, int]], tuple[float, float] | None, str]] = []
    axes.append(("Points", layout([(v, f"{v:.0f}") for v in np.linspace(0, 100, 11)], False), None, ""))
    for term in nomo.terms:
        if term.kind == "categorical":
            ticks = [(nomo.points(term, lv), term.display(lv)) for lv in term.levels]
            axes.append((term.label, layout(ticks, True), None, ""))
            continue
        candidates = [[(nomo.points(term, v), text) for v, text in ts] for ts in tick_sets(term)]
        ticks = next((ts for ts in candidates if fits(ts)), candidates[-1])
        ends = (nomo.points(term, term.lo), nomo.points(term, term.hi))
        axes.append((term.label, layout(ticks, term.kind == "ordinal"), ends, ""))
    top = nomo.max_total()
    totals = np.arange(0, top + 1e-9, _total_step(top))
    axes.append(("Total points", layout([(v * 100 / top, f"{v:g}") for v in totals], False), (0.0, 100.0), ""))
    for h in horizons:
        ticks = []
        for p in (0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05):
            if nomo.cumhaz[float(h)] <= 0:
                continue
            tp = float(nomo.total_points(math.log(-math.log(p) / nomo.cumhaz[float(h)])))
            if 0 <= tp <= top:
                ticks.append((tp * 100 / top, f"{p:g}"))
        note = "" if len(ticks) >= 2 else "(below 0.05 or above 0.95 over the whole points range)"
        axes.append((nomo.horizon_label(h), layout(ticks, False) if not note else [], None, note))

    heights = [1.0 + step_y * max((r for _, _, r in ticks), default=0) for _, ticks, _, _ in axes]
    total = sum(heights)
    fig.set_size_inches(8.5, 0.5 * total + 0.9)
    ax.set_ylim(-0.6, total - 0.3)
    y = total
    for (label, ticks, ends, note), hgt in zip(axes, heights, strict=True):
        y -= hgt
        ax.text(-3, y, label, ha="right", va="center", fontsize=9)
        if note:
            ax.text(50, y, note, ha="center", va="center", fontsize=7, color="#555555")
            continue
        xs = [x for x, _, _ in ticks] + list(ends or ())
        if xs:
            ax.plot([min(xs), max(xs)], [y, y], color="k", lw=1)
        for x, text, row in ticks:
            ax.plot([x, x], [y, y + 0.1], color="k", lw=1)
            if row:
                ax.plot([x, x], [y + 0.1, y + 0.12 + step_y * row], color="#aaaaaa", lw=0.5)
            ax.text(x, y + 0.14 + step_y * row, text, ha="center", va="bottom", fontsize=8, zorder=3,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.4})  # leader lines pass behind
    fig.suptitle(title + (f"\n{nomo.note}" if nomo.note else ""), fontsize=9, y=0.995)
    return fig


def _total_step(top: float) -> float:
    """A round step for the total-points axis (at most 10 intervals)."""
    for step in (5, 10, 20, 25, 50, 100, 200, 250, 500):
        if top / step <= 10:
            return float(step)
    return float(10 ** math.ceil(math.log10(top / 10)))


def cox_nomogram(model, info: Mapping[str, Mapping] | None, horizons: list[float], *, unit: str,
                 endpoint: str) -> Nomogram:
    """The nomogram of a fitted clinical :class:`~hccprog.survival.cox.CoxModel` (lifelines'
    Breslow baseline, whose linear predictor is centred as ``CoxModel.predict_risk``)."""
    terms, offset = clinical_terms(model.state(), info)
    base = model.model_.baseline_cumulative_hazard_
    # lifelines interpolates its baseline linearly between event times (predict_survival does too)
    cumhaz = {float(h): float(np.interp(h, base.index.to_numpy(float), base.iloc[:, 0].to_numpy(float), left=0.0))
              for h in horizons}
    return Nomogram(terms, offset, cumhaz=cumhaz, unit=unit, endpoint=endpoint)


def fused_nomogram(desc: Mapping, *, unit: str, endpoint: str) -> Nomogram:
    """The nomogram of a trained run's fused model (``models/<model>.json``: its ``fusion``), with
    the image score over its training 1st-99th percentile."""

    fusion = desc["fusion"]
    loc, scale = fusion["fusion"]["loc"][0], fusion["fusion"]["scale"][0]
    rng = desc.get("risk_range") or (loc - 2.326 * scale, loc + 2.326 * scale)
    terms, offset = fused_terms(desc["model"], tuple(rng), fusion["fusion"], fusion["clinical"],
                                fusion.get("covariates_info"))
    base = BreslowSurvival.from_state(fusion["breslow"])
    horizons = [float(h) for h in desc["horizons"]]
    # S = exp(-H0(h) exp(lp - shift)): fold the shift into the baseline
    s1 = base.predict_survival(np.zeros(1), horizons)[0]
    cumhaz = {h: float(-np.log(max(s, 1e-300))) for h, s in zip(horizons, s1, strict=True)}
    note = ("for patients with an observed follow-up (the fusion also weighs carried-forward ones)"
            if fusion["fusion"].get("uses_indicator") else "")
    return Nomogram(terms, offset, cumhaz=cumhaz, unit=unit, endpoint=endpoint, note=note)
