"""Scores made for patients treated with TACE, computed from the clinical inputs that
``baselines.scores`` finds in the table. Every score is oriented so that higher means worse.

Before treatment (tumour burden = largest tumour diameter in cm + number of tumours):

- **Six-and-twelve** (Wang Q et al., J Hepatol 2019;70:893-903): burden <= 6 -> 1, <= 12 -> 2,
  > 12 -> 3.
- **Up-to-seven** (Mazzaferro et al., Lancet Oncol 2009;10:35-43; for TACE Yamakado et al.,
  Radiology 2014;273:627-634): burden <= 7 "in" -> 0, "out" -> 1.
- **Seven-eleven** (Wang ZX et al.): burden <= 7 -> 1, <= 11 -> 2, > 11 -> 3.
- **mHAP-II** (Park Y et al., Eur Radiol 2016;26:2127-2135): one point each for albumin < 36 g/L,
  AFP > 400 ng/mL, bilirubin > 17 umol/L, largest tumour > 7 cm and two or more tumours; class
  A (0), B (1), C (2), D (>= 3) -> 0..3.

The cut-offs of these four as tabulated by Kim et al., Cancer Imaging 2023;23:56
(doi:10.1186/s40644-023-00575-6), Table 1.

Before the second TACE (the course after the first one):

- **ART** (Sieghart W et al., Hepatology 2013;57:2261-2273): AST increase > 25 % 4 points,
  Child-Pugh score increase by 1 point 1.5 points and by >= 2 points 3 points, no radiological
  response 1 point; 0..8 (>= 2.5: no benefit of retreatment expected).
- **ABCR** (Adhoute X et al., J Hepatol 2015;62:855-862): AFP >= 200 ng/mL 1 point; BCLC 0/A 1,
  B 2, C 3 points; Child-Pugh score increase >= 2 points 2 points; radiological response -3
  points; -3..6 (<= 0 retreat, >= 4 do not).

The tumour number must be a count: a table that says only "multinodular" leaves the burden
unknown (it is never guessed), though it suffices for mHAP-II's "two or more". The radiological
response is the cohort's ``response:`` column (mRECIST CR or PR = response). The Child-Pugh
*score* is in points (5..15), at baseline computed from its five inputs or read from a table
column that holds points; after the first TACE from a ``child_pugh_after`` column (points).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Each score's inputs (the roles of ``baselines.scores.ALIASES``, or the response column).
TACE_SCORE_INPUTS: dict[str, tuple[str, ...]] = {
    "six_and_twelve": ("tumor_size_cm", "tumor_count"),
    "up_to_seven": ("tumor_size_cm", "tumor_count"),
    "seven_eleven": ("tumor_size_cm", "tumor_count"),
    "mhap2": ("albumin", "afp", "bilirubin", "tumor_size_cm", "tumor_count"),
    "art": ("ast", "ast_after", "child_pugh points", "child_pugh_after", "response"),
    "abcr": ("afp", "bclc", "child_pugh points", "child_pugh_after", "response"),
}


def _known(*series: pd.Series) -> pd.Series:
    return pd.concat(series, axis=1).notna().all(axis=1)


def tumor_burden(size_cm: pd.Series, number: pd.Series) -> pd.Series:
    """Largest tumour diameter (cm) plus the number of tumours; NaN where either is unknown."""
    return (size_cm + number).where(_known(size_cm, number))


def six_and_twelve(size_cm: pd.Series, number: pd.Series) -> pd.Series:
    b = tumor_burden(size_cm, number)
    return (1.0 + (b > 6) + (b > 12)).where(b.notna())


def up_to_seven(size_cm: pd.Series, number: pd.Series) -> pd.Series:
    b = tumor_burden(size_cm, number)
    return (b > 7).astype(float).where(b.notna())


def seven_eleven(size_cm: pd.Series, number: pd.Series) -> pd.Series:
    b = tumor_burden(size_cm, number)
    return (1.0 + (b > 7) + (b > 11)).where(b.notna())


def mhap2(albumin_gl: pd.Series, afp: pd.Series, bilirubin_umol: pd.Series, size_cm: pd.Series,
          multiple: pd.Series) -> pd.Series:
    """Class A..D as 0..3; ``multiple``: 1 for two or more tumours, 0 for one."""
    pts = ((albumin_gl < 36).astype(float) + (afp > 400).astype(float) + (bilirubin_umol > 17).astype(float)
           + (size_cm > 7).astype(float) + (multiple >= 1).astype(float))
    return pts.clip(upper=3).where(_known(albumin_gl, afp, bilirubin_umol, size_cm, multiple))


def art(ast: pd.Series, ast_after: pd.Series, cp_points: pd.Series, cp_points_after: pd.Series,
        responded: pd.Series) -> pd.Series:
    """ART points; ``responded``: 1 for a radiological response (CR or PR), 0 otherwise."""
    rise = cp_points_after - cp_points
    pts = (4.0 * (ast_after > 1.25 * ast) + np.where(rise >= 2, 3.0, np.where(rise >= 1, 1.5, 0.0))
           + 1.0 * (responded == 0))
    return pd.Series(pts, index=ast.index).where(_known(ast, ast_after, cp_points, cp_points_after, responded))


#: ABCR's points for the BCLC stage as ``parse_score('bclc')`` numbers it (0, A, B, C, D = 0..4);
#: stage D (not a TACE candidate) has none.
ABCR_BCLC_POINTS = {0.0: 1.0, 1.0: 1.0, 2.0: 2.0, 3.0: 3.0}


def abcr(afp: pd.Series, bclc: pd.Series, cp_points: pd.Series, cp_points_after: pd.Series,
         responded: pd.Series) -> pd.Series:
    """ABCR points; ``bclc`` numbered 0..4 (0, A, B, C, D)."""
    stage = bclc.map(ABCR_BCLC_POINTS)
    pts = ((afp >= 200).astype(float) + stage + 2.0 * ((cp_points_after - cp_points) >= 2)
           - 3.0 * (responded == 1))
    return pts.where(_known(afp, stage, cp_points, cp_points_after, responded))


def compute_tace_scores(x: pd.DataFrame, *, cp_points: pd.Series | None, bclc: pd.Series | None,
                        responded: pd.Series | None) -> tuple[pd.DataFrame, dict[str, str]]:
    """The TACE scores whose inputs ``x`` (``baselines.scores`` inputs frame) holds, and their
    sources. ``cp_points``: baseline Child-Pugh points; ``bclc``: baseline stage 0..4;
    ``responded``: 1 radiological response, 0 none (NaN unknown)."""
    out = pd.DataFrame(index=x.index)
    src: dict[str, str] = {}
    cols = set(x.columns)
    if {"tumor_size_cm", "tumor_number"} <= cols:
        size, number = x["tumor_size_cm"], x["tumor_number"]
        out["six_and_twelve"] = six_and_twelve(size, number)
        out["up_to_seven"] = up_to_seven(size, number)
        out["seven_eleven"] = seven_eleven(size, number)
        for name in ("six_and_twelve", "up_to_seven", "seven_eleven"):
            src[name] = "computed from the largest tumour size (cm) and the tumour count"
    if {"albumin_gl", "afp", "bilirubin_umol", "tumor_size_cm", "tumor_count"} <= cols:
        multiple = (x["tumor_count"] >= 2).astype(float).where(x["tumor_count"].notna())
        out["mhap2"] = mhap2(x["albumin_gl"], x["afp"], x["bilirubin_umol"], x["tumor_size_cm"], multiple)
        src["mhap2"] = "computed from albumin, AFP, bilirubin, tumour size and number"
    after = cp_points is not None and "child_pugh_after" in cols and responded is not None
    if after and {"ast", "ast_after"} <= cols:
        out["art"] = art(x["ast"], x["ast_after"], cp_points, x["child_pugh_after"], responded)
        src["art"] = "computed from AST and Child-Pugh points before the first and second TACE, and the response"
    if after and bclc is not None and "afp" in cols:
        out["abcr"] = abcr(x["afp"], bclc, cp_points, x["child_pugh_after"], responded)
        src["abcr"] = "computed from AFP, BCLC, Child-Pugh points before the first and second TACE, and the response"
    return out, src
