"""The established HCC scores: read from the cohort's ``scores:`` mapping, or computed from the
clinical inputs when the table holds them.

Inputs are found by column name (case-insensitive aliases below) or by the cohort's optional
``score_inputs:`` mapping (an hccprog extension: ``score_inputs: {albumin: ALB_gL}``). Units come
from the covariate's declared ``unit`` (albumin g/L or g/dL; bilirubin umol/L or mg/dL).
Every score is oriented so that higher means worse prognosis.

Definitions (points):
- Child-Pugh: bilirubin <34 / 34-50 / >50 umol/L; albumin >35 / 28-35 / <28 g/L; INR <1.7 /
  1.7-2.3 / >2.3; ascites none / mild / moderate-severe; encephalopathy none / grade I-II /
  III-IV (a binary column counts as 1 / 2). 5-15 points.
- ALBI = 0.66 log10(bilirubin umol/L) - 0.085 albumin g/L; grade 1 <= -2.60 < 2 <= -1.39 < 3.
- CLIP: Child-Pugh A/B/C 0/1/2; uninodular and extent <= 50% 0, multinodular and <= 50% 1,
  massive or > 50% 2; AFP >= 400 ng/mL 1; portal vein thrombosis 1. 0-6.
- Okuda: tumour extent > 50%, ascites, albumin < 30 g/L, bilirubin > 3 mg/dL (51.3 umol/L);
  stage I (0), II (1-2), III (3-4).
- HAP: albumin < 36 g/L, AFP > 400 ng/mL, bilirubin > 17 umol/L, largest tumour > 7 cm;
  A (0), B (1), C (2), D (>2).
- BCLC (simplified from the 2022 update): D if Child-Pugh C or ECOG > 2; C if portal invasion,
  extrahepatic spread or ECOG 1-2; 0 if single <= 2 cm; A if single, or <= 3 nodules <= 3 cm;
  B otherwise.
- The TACE scores (six-and-twelve, up-to-seven, seven-eleven, mHAP-II, ART, ABCR): see
  ``baselines.tace_scores``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hccprog.baselines.tace_scores import TACE_SCORE_INPUTS, compute_tace_scores
from hccprog.cohort.model import Cohort
from hccprog.cohort.scores import RESPONDERS, RESPONSE_CLASSES, RESPONSE_ORDER, parse_score
from hccprog.cohort.tables import is_missing

ALIASES: dict[str, tuple[str, ...]] = {
    "albumin": ("albumin", "alb"),
    "bilirubin": ("bilirubin", "total_bilirubin", "tbil", "bili"),
    "inr": ("inr",),
    "ascites": ("ascites",),
    "encephalopathy": ("encephalopathy", "hepatic_encephalopathy", "he"),
    "afp": ("afp", "alpha_fetoprotein"),
    "pvtt": ("pvtt", "pvt", "portal_vein_thrombosis", "portal vein thrombosis"),
    "metastasis": ("metastasis", "extrahepatic_spread", "ehs"),
    "tumor_count": ("tumor_count", "tumour_count", "n_tumors", "n_nodules", "tumor_nodul", "nodularity"),
    "tumor_size_cm": ("tumor_size_cm", "tumour_size_cm", "max_tumor_size_cm", "tr_size"),
    "tumor_extent": ("tumor_extent", "tumour_extent", "t_involvment", "t_involvement"),
    "ecog": ("ecog", "ecog_ps", "performance_status"),
    "child_pugh_class": ("child_pugh", "cps", "child_pugh_class"),
    # the course after the first TACE (ART, ABCR): AST and Child-Pugh points before the second one
    "ast": ("ast", "sgot", "aspartate_aminotransferase"),
    "ast_after": ("ast_after", "ast_post", "ast_after_tace", "ast_before_second_tace"),
    "child_pugh_after": ("child_pugh_after", "child_pugh_points_after", "cp_points_after", "cps_after"),
}
COMPUTABLE = ("child_pugh", "albi", "clip", "okuda", "hap", "bclc", "six_and_twelve", "up_to_seven", "seven_eleven",
              "mhap2", "art", "abcr")
SEVERITY = {"none": 0, "absent": 0, "no": 0, "0": 0, "mild": 1, "slight": 1, "1": 1, "moderate": 2,
            "severe": 2, "moderate-severe": 2, "2": 2, "3": 2, "yes": 1}


def _number(cell) -> float:
    if cell is None or is_missing(str(cell)):
        return math.nan
    text = str(cell).strip().lstrip("<>=≤≥ ")
    try:
        return float(text)
    except ValueError:
        return math.nan


def _yes(cell) -> float:
    if cell is None or is_missing(str(cell)):
        return math.nan
    t = str(cell).strip().lower()
    if t in ("1", "yes", "y", "true", "present"):
        return 1.0
    if t in ("0", "no", "n", "false", "absent", "none"):
        return 0.0
    return math.nan


def _extent_over_half(cell) -> float:
    if cell is None or is_missing(str(cell)):
        return math.nan
    t = str(cell).replace(" ", "").lower()
    if t.startswith(">"):
        return 1.0
    if t.startswith("<") or t.startswith("<or="):
        return 0.0
    return math.nan


def _find_inputs(cohort: Cohort) -> dict[str, str]:
    explicit = dict(getattr(cohort.spec, "score_inputs", None) or {})
    lower = {c.lower().strip(): c for c in cohort.table.columns}
    found = {}
    for role, names in ALIASES.items():
        if role in explicit:
            found[role] = explicit[role]
            continue
        for n in names:
            if n in lower:
                found[role] = lower[n]
                break
    return found


def _unit(cohort: Cohort, column: str) -> str:
    spec = (cohort.spec.covariates or {}).get(column)
    return (spec.unit or "").lower() if spec is not None else ""


def _inputs_frame(cohort: Cohort) -> pd.DataFrame:
    cols = _find_inputs(cohort)
    t = cohort.table
    out = pd.DataFrame(index=t.index)
    if "albumin" in cols:
        alb = t[cols["albumin"]].map(_number)
        out["albumin_gl"] = alb * 10 if _unit(cohort, cols["albumin"]) in ("g/dl",) else alb
    if "bilirubin" in cols:
        bil = t[cols["bilirubin"]].map(_number)
        out["bilirubin_umol"] = bil * 17.1 if _unit(cohort, cols["bilirubin"]) in ("mg/dl",) else bil
    if "inr" in cols:
        out["inr"] = t[cols["inr"]].map(_number)
    if "ascites" in cols:
        out["ascites"] = t[cols["ascites"]].map(lambda v: SEVERITY.get(str(v).strip().lower(), math.nan))
    if "encephalopathy" in cols:
        out["encephalopathy"] = t[cols["encephalopathy"]].map(lambda v: SEVERITY.get(str(v).strip().lower(), math.nan))
    if "afp" in cols:
        out["afp"] = t[cols["afp"]].map(_number)
    for role in ("pvtt", "metastasis"):
        if role in cols:
            out[role] = t[cols[role]].map(_yes)
    if "tumor_count" in cols:
        # "multinodular" is two or more (enough for "multiple"); the exact number only from a count
        out["tumor_count"] = t[cols["tumor_count"]].map(
            lambda v: 2.0 if str(v).strip().lower().startswith("multi") else (
                1.0 if str(v).strip().lower().startswith("uni") else _number(v)))
        out["tumor_number"] = t[cols["tumor_count"]].map(
            lambda v: math.nan if str(v).strip().lower().startswith("multi") else (
                1.0 if str(v).strip().lower().startswith("uni") else _number(v)))
    if "tumor_size_cm" in cols:
        out["tumor_size_cm"] = t[cols["tumor_size_cm"]].map(_number)
    if "tumor_extent" in cols:
        out["extent_over_half"] = t[cols["tumor_extent"]].map(_extent_over_half)
    if "ecog" in cols:
        out["ecog"] = t[cols["ecog"]].map(_number)
    for role in ("ast", "ast_after", "child_pugh_after"):
        if role in cols:
            out[role] = t[cols[role]].map(_number)
    if "child_pugh_after" in out:  # points 5..15 (a class letter is not enough for a change in points)
        out["child_pugh_after"] = out["child_pugh_after"].where(out["child_pugh_after"].between(5, 15))
    if "child_pugh_class" in cols:
        out["child_pugh_given"] = t[cols["child_pugh_class"]].map(
            lambda v: np.nan if is_missing(str(v)) else _safe_cp(str(v)))
    return out


def _safe_cp(cell: str) -> float:
    try:
        value = parse_score("child_pugh", cell)
    except ValueError:
        return math.nan
    if value is None:
        return math.nan
    return value if value <= 3 else float(1 + (value >= 7) + (value >= 10))  # points -> class 1..3


def _band(x: pd.Series, cuts: tuple[float, float], reverse: bool = False) -> pd.Series:
    pts = pd.Series(np.where(x < cuts[0], 1, np.where(x <= cuts[1], 2, 3)), index=x.index, dtype=float)
    if reverse:
        pts = 4 - pts
    return pts.where(x.notna())


def compute_scores(cohort: Cohort) -> tuple[pd.DataFrame, dict[str, str]]:
    """Scores per patient (index: patient id) and where each came from ('table column X' or
    'computed from ...'). Table values win over computed ones."""
    given = cohort.scores()
    sources = {name: f"table column '{col}'" for name, col in cohort.spec.scores.items()}
    x = _inputs_frame(cohort)
    comp = pd.DataFrame(index=x.index)
    need = {"albumin_gl", "bilirubin_umol", "inr", "ascites", "encephalopathy"}
    cp_class = None
    if need <= set(x.columns):
        enc = x["encephalopathy"]
        pts = (_band(x["bilirubin_umol"], (34, 50)) + _band(x["albumin_gl"], (28, 35), reverse=True)
               + _band(x["inr"], (1.7, 2.3)) + (x["ascites"] + 1) + (enc.clip(upper=2) + 1))
        comp["child_pugh"] = pts
        cp_class = 1 + (pts >= 7).astype(float) + (pts >= 10).astype(float)
        cp_class = cp_class.where(pts.notna())
        sources.setdefault("child_pugh", "computed (points) from bilirubin, albumin, INR, ascites, encephalopathy")
    if cp_class is None and "child_pugh_given" in x:
        cp_class = x["child_pugh_given"]
    if {"albumin_gl", "bilirubin_umol"} <= set(x.columns):
        albi = 0.66 * np.log10(x["bilirubin_umol"].clip(lower=1e-3)) - 0.085 * x["albumin_gl"]
        comp["albi"] = 1.0 + (albi > -2.60) + (albi > -1.39)
        comp["albi"] = comp["albi"].where(albi.notna())
        sources.setdefault("albi", "computed (grade) from bilirubin and albumin")
    if cp_class is not None and {"afp", "pvtt", "extent_over_half", "tumor_count"} <= set(x.columns):
        morph = np.where(x["extent_over_half"] == 1, 2, np.where(x["tumor_count"] > 1, 1, 0)).astype(float)
        morph = pd.Series(morph, index=x.index).where(x["extent_over_half"].notna() & x["tumor_count"].notna())
        comp["clip"] = (cp_class - 1) + morph + (x["afp"] >= 400).astype(float).where(x["afp"].notna()) + x["pvtt"]
        sources.setdefault("clip", "computed from Child-Pugh, tumour count and extent, AFP, PVTT")
    if {"extent_over_half", "ascites", "albumin_gl", "bilirubin_umol"} <= set(x.columns):
        pts = (x["extent_over_half"] + (x["ascites"] > 0).astype(float).where(x["ascites"].notna())
               + (x["albumin_gl"] < 30).astype(float).where(x["albumin_gl"].notna())
               + (x["bilirubin_umol"] > 51.3).astype(float).where(x["bilirubin_umol"].notna()))
        comp["okuda"] = (1.0 + (pts >= 1) + (pts >= 3)).where(pts.notna())
        sources.setdefault("okuda", "computed from extent, ascites, albumin, bilirubin")
    if {"albumin_gl", "afp", "bilirubin_umol", "tumor_size_cm"} <= set(x.columns):
        pts = ((x["albumin_gl"] < 36).astype(float) + (x["afp"] > 400).astype(float)
               + (x["bilirubin_umol"] > 17).astype(float) + (x["tumor_size_cm"] > 7).astype(float))
        ok = x[["albumin_gl", "afp", "bilirubin_umol", "tumor_size_cm"]].notna().all(axis=1)
        comp["hap"] = pts.clip(upper=3).where(ok)
        sources.setdefault("hap", "computed from albumin, AFP, bilirubin, tumour size")
    if cp_class is not None and {"ecog", "pvtt", "tumor_count", "tumor_size_cm"} <= set(x.columns):
        meta = x["metastasis"] if "metastasis" in x else pd.Series(0.0, index=x.index)
        single = x["tumor_count"] <= 1
        stage = np.select(
            [(cp_class >= 3) | (x["ecog"] > 2),
             (x["pvtt"] == 1) | (meta == 1) | (x["ecog"] >= 1),
             single & (x["tumor_size_cm"] <= 2),
             single | ((x["tumor_count"] <= 3) & (x["tumor_size_cm"] <= 3))],
            [4, 3, 0, 1], default=2).astype(float)
        ok = cp_class.notna() & x[["ecog", "pvtt", "tumor_count", "tumor_size_cm"]].notna().all(axis=1)
        comp["bclc"] = pd.Series(stage, index=x.index).where(ok)
        sources.setdefault("bclc", "computed from Child-Pugh, ECOG, PVTT, metastasis, tumour count and size")
    cp_points = comp.get("child_pugh")
    if "child_pugh" in given.columns:  # table points (5..15) win; a class (1..3) is no score in points
        table_points = given["child_pugh"].where(given["child_pugh"] >= 5)
        cp_points = table_points if cp_points is None else table_points.fillna(cp_points)
    bclc = given["bclc"].fillna(comp["bclc"]) if "bclc" in given.columns and "bclc" in comp.columns else (
        given["bclc"] if "bclc" in given.columns else comp.get("bclc"))
    responded = None
    if cohort.spec.response:
        responded = cohort.responses().map({c: float(c in RESPONDERS) for c in RESPONSE_CLASSES}).astype(float)
    tace, tace_sources = compute_tace_scores(x, cp_points=cp_points, bclc=bclc, responded=responded)
    for name in tace.columns:
        comp[name] = tace[name]
        sources.setdefault(name, tace_sources[name])
    out = given.copy()
    for name in comp.columns:
        if name in out.columns:
            out[name] = out[name].fillna(comp[name])
        else:
            out[name] = comp[name]
    if cohort.spec.response and "mrecist" not in out.columns:
        resp = cohort.responses()
        out["mrecist"] = resp.map({c: RESPONSE_ORDER[c] + 1.0 for c in RESPONSE_CLASSES}).astype(float)
        sources["mrecist"] = f"response column '{cohort.spec.response}' (CR 1 < PR < SD < PD 4)"
    out.index.name = "patient_id"
    return out.astype(float), {k: sources[k] for k in out.columns if k in sources}


#: The table inputs (roles of :data:`ALIASES`) each computed score reads, for saying why one is absent.
SCORE_INPUTS: dict[str, tuple[str, ...]] = {
    "child_pugh": ("bilirubin", "albumin", "inr", "ascites", "encephalopathy"),
    "albi": ("albumin", "bilirubin"),
    "clip": ("bilirubin", "albumin", "inr", "ascites", "encephalopathy", "afp", "pvtt", "tumor_extent",
             "tumor_count"),  # Child-Pugh's inputs first
    "okuda": ("tumor_extent", "ascites", "albumin", "bilirubin"),
    "hap": ("albumin", "afp", "bilirubin", "tumor_size_cm"),
    "bclc": ("ecog", "pvtt", "tumor_count", "tumor_size_cm"),
    "six_and_twelve": ("tumor_size_cm", "tumor_count"),
    "up_to_seven": ("tumor_size_cm", "tumor_count"),
    "seven_eleven": ("tumor_size_cm", "tumor_count"),
    "mhap2": ("albumin", "afp", "bilirubin", "tumor_size_cm", "tumor_count"),
    "art": ("ast", "ast_after", "child_pugh_after"),
    "abcr": ("afp", "child_pugh_after"),
}
_ROLE_COLUMN = {"albumin": "albumin_gl", "bilirubin": "bilirubin_umol", "tumor_extent": "extent_over_half"}


def score_gap(cohort: Cohort, name: str, ids: list[str] | None = None) -> str:
    """Why a computed score is known for few patients: its inputs with no value (or few values) in the
    table, e.g. ``"albumin (column 'ALB') has no value"``; empty when no input explains it."""
    found = _find_inputs(cohort)
    x = _inputs_frame(cohort)
    if ids is not None:
        x = x.reindex(ids)
    parts = []
    for role in SCORE_INPUTS.get(name, ()):
        col = _ROLE_COLUMN.get(role, role)
        if role not in found or col not in x:
            continue
        known = float(x[col].notna().mean()) if len(x) else 0.0
        what = role if found[role] == role else f"{role} (column '{found[role]}')"
        if known == 0:
            parts.append(f"{what} has no value")
        elif known < 0.5:
            parts.append(f"{what} is known for {known:.0%} of patients")
    return "; ".join(parts)


def score_inputs_missing(cohort: Cohort, name: str) -> list[str]:
    """What a TACE score (``tace_scores.TACE_SCORE_INPUTS``) needs that the cohort's table lacks
    (empty when every input is there)."""

    found = _find_inputs(cohort)
    x = _inputs_frame(cohort)
    cp_inputs = ("albumin", "bilirubin", "inr", "ascites", "encephalopathy")
    missing = []
    for role in TACE_SCORE_INPUTS[name]:
        if role == "response":
            ok = cohort.spec.response is not None
        elif role == "bclc":
            ok = "bclc" in cohort.spec.scores or {"ecog", "pvtt", "tumor_count", "tumor_size_cm"} <= set(found)
        elif role == "child_pugh points":
            given = cohort.scores()["child_pugh"] if "child_pugh" in cohort.spec.scores else None
            ok = all(r in found for r in cp_inputs) or (given is not None and bool((given >= 5).any()))
            role = "Child-Pugh points (or their five inputs)"
        elif role == "tumor_count" and name != "mhap2":
            ok = "tumor_number" in x and bool(x["tumor_number"].notna().any())
            role = "tumour count (a number, not only uni- or multinodular)"
        else:
            ok = role in found
        if not ok:
            missing.append(role)
    return missing
