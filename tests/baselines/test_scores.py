"""HCC scores computed from clinical inputs, checked on hand-worked patients."""

from __future__ import annotations

import pandas as pd
import yaml

from hccprog.baselines.scores import compute_scores
from hccprog.cohort import load_cohort

ROWS = [
    # id, alb g/L, bili umol/L, inr, ascites, enceph, afp, pvtt, count, size, extent, ecog, os_time, os_event
    ("A", 40, 15, 1.1, "none", 0, 10, 0, 1, 1.8, "<=50%", 0, 900, 0),
    ("B", 30, 40, 1.8, "mild", 0, 500, 0, 2, 2.5, "<=50%", 0, 700, 1),
    ("C", 25, 60, 2.5, "moderate", 1, 1000, 1, 4, 8.0, ">50%", 1, 200, 1),
    ("D", 38, 20, 1.0, "none", 0, 50, 0, 3, 6.0, "<=50%", 3, 400, 1),
]


def _cohort(tmp_path):
    cols = ["patient_id", "albumin", "bilirubin", "inr", "ascites", "encephalopathy", "afp", "pvtt",
            "tumor_count", "tumor_size_cm", "tumor_extent", "ecog", "os_time", "os_event"]
    pd.DataFrame(ROWS, columns=cols).to_csv(tmp_path / "clinical.csv", index=False)
    spec = {"name": "hand", "clinical": "clinical.csv", "id_column": "patient_id", "time_unit": "days",
            "endpoints": {"os": {"time": "os_time", "event": "os_event"}},
            "covariates": {"albumin": {"type": "numeric", "unit": "g/L"},
                           "bilirubin": {"type": "numeric", "unit": "umol/L"}, "inr": {"type": "numeric"},
                           "ascites": {"type": "ordinal", "levels": ["none", "mild", "moderate"]},
                           "encephalopathy": {"type": "binary"}, "afp": {"type": "numeric"},
                           "pvtt": {"type": "binary"}, "tumor_count": {"type": "numeric"},
                           "tumor_size_cm": {"type": "numeric"},
                           "tumor_extent": {"type": "ordinal", "levels": ["<=50%", ">50%"]},
                           "ecog": {"type": "numeric"}}}
    (tmp_path / "cohort.yaml").write_text(yaml.safe_dump(spec))
    result = load_cohort(tmp_path / "cohort.yaml")
    assert not result.report.errors, result.report.errors
    return result.cohort


def test_scores_from_inputs(tmp_path):
    scores, sources = compute_scores(_cohort(tmp_path))
    # Child-Pugh points: A 1+1+1+1+1 = 5; B bili 2, alb 2, inr 2, ascites 2, enc 1 = 9;
    # C 3+3+3+3+2 = 14; D 5
    assert scores["child_pugh"].tolist() == [5, 9, 14, 5]
    # ALBI grade: A 0.66*log10(15) - 0.085*40 = -2.62 -> 1; B -> -1.49 -> 2; C -> -0.95 -> 3
    assert scores["albi"].tolist()[:3] == [1, 2, 3]
    # CLIP: A 0; B CP-B 1 + multinodular 1 + AFP 1 = 3; C CP-C 2 + >50% 2 + AFP 1 + PVT 1 = 6; D 1
    assert scores["clip"].tolist() == [0, 3, 6, 1]
    # Okuda: A 0 -> I; B albumin 30 not < 30, ascites 1 -> II; C 4 -> III; D 0 -> I
    assert scores["okuda"].tolist() == [1, 2, 3, 1]
    # HAP: A 0 -> A(0); B alb<36, afp>400, bili>17 = 3 points -> D(3); C all 4 -> D(3); D bili>17 -> B(1)
    assert scores["hap"].tolist() == [0, 3, 3, 1]
    # BCLC: A single 1.8 cm, ECOG 0, CP A -> 0; B 2 nodules 2.5 cm -> A(1); C PVTT -> D? CP C -> D(4);
    # D ECOG 3 -> D(4)
    assert scores["bclc"].tolist() == [0, 1, 4, 4]
    assert "computed" in sources["clip"]


def test_tace_burden_scores_on_hand_worked_patients(tmp_path):
    """Six-and-twelve, up-to-seven, seven-eleven and mHAP-II from the same four patients.
    Burden = largest size + number: A 1.8 + 1 = 2.8; B 2.5 + 2 = 4.5; C 8 + 4 = 12; D 6 + 3 = 9."""
    scores, sources = compute_scores(_cohort(tmp_path))
    assert scores["six_and_twelve"].tolist() == [1, 1, 2, 2]  # 12 is still <= 12
    assert scores["up_to_seven"].tolist() == [0, 0, 1, 1]
    assert scores["seven_eleven"].tolist() == [1, 1, 3, 2]
    # mHAP-II: A 0 -> A; B alb<36, afp>400, bili>17, multiple = 4 -> D(3); C 5 -> D(3); D bili>17, multiple = 2 -> C
    assert scores["mhap2"].tolist() == [0, 3, 3, 2]
    assert "tumour count" in sources["six_and_twelve"]
    assert "art" not in scores.columns  # no course after the first TACE in this table


def test_burden_is_not_guessed_from_multinodular():
    from hccprog.baselines.tace_scores import six_and_twelve, up_to_seven

    size = pd.Series([3.0, 3.0, 7.0, None])
    number = pd.Series([None, 4.0, 1.0, 2.0])  # None: "multinodular" without a count
    assert six_and_twelve(size, number).isna().tolist() == [True, False, False, True]
    assert up_to_seven(size, number).tolist()[1:3] == [0.0, 1.0]  # 7 in; 8 out


def test_art_and_abcr_on_hand_worked_patients():
    """ART (Sieghart 2013) and ABCR (Adhoute 2015), worked by hand."""
    from hccprog.baselines.tace_scores import abcr, art

    ast = pd.Series([40.0, 40.0, 40.0, 40.0])
    ast_after = pd.Series([51.0, 50.0, 45.0, 60.0])  # +27.5 %, +25 % (not over), +12.5 %, +50 %
    cp, cp_after = pd.Series([5.0, 6.0, 5.0, 5.0]), pd.Series([6.0, 8.0, 5.0, None])
    responded = pd.Series([1.0, 0.0, 1.0, 1.0])  # PR, SD, CR, PR
    # 4 + 1.5 + 0 = 5.5; 0 + 3 + 1 = 4; 0 + 0 + 0 = 0; Child-Pugh after unknown -> NaN
    got = art(ast, ast_after, cp, cp_after, responded)
    assert got.tolist()[:3] == [5.5, 4.0, 0.0] and pd.isna(got.iloc[3])
    afp = pd.Series([250.0, 100.0, 500.0, 10.0])
    bclc = pd.Series([2.0, 1.0, 4.0, 0.0])  # B, A, D, 0
    cp_after = pd.Series([7.0, 6.0, 5.0, 5.0])
    responded = pd.Series([1.0, 0.0, 0.0, 1.0])
    # 1 + 2 + 2 - 3 = 2; 0 + 1 + 0 + 0 = 1; stage D has no ABCR points -> NaN; 0 + 1 + 0 - 3 = -2
    got = abcr(afp, bclc, cp, cp_after, responded)
    assert got.tolist()[0:2] == [2.0, 1.0] and pd.isna(got.iloc[2]) and got.iloc[3] == -2.0


def test_art_and_abcr_from_a_table_with_the_course_after_tace(tmp_path):
    """The inputs found by name: AST before the first and second TACE, Child-Pugh points after it,
    and the response column."""
    rows = pd.DataFrame(ROWS, columns=["patient_id", "albumin", "bilirubin", "inr", "ascites", "encephalopathy",
                                       "afp", "pvtt", "tumor_count", "tumor_size_cm", "tumor_extent", "ecog",
                                       "os_time", "os_event"])
    rows["ast"] = [40, 40, 40, 40]
    rows["ast_after"] = [60, 45, 41, 80]
    rows["child_pugh_after"] = [7, 9, 14, 6]
    rows["mrecist"] = ["PR", "SD", "PD", "CR"]
    _cohort(tmp_path)  # writes cohort.yaml, extended below
    rows.to_csv(tmp_path / "clinical.csv", index=False)
    spec = yaml.safe_load((tmp_path / "cohort.yaml").read_text())
    spec["response"] = "mrecist"
    for c in ("ast", "ast_after", "child_pugh_after"):
        spec["covariates"][c] = {"type": "numeric"}
    (tmp_path / "cohort.yaml").write_text(yaml.safe_dump(spec))
    cohort = load_cohort(tmp_path / "cohort.yaml").cohort
    scores, sources = compute_scores(cohort)
    # Child-Pugh points before: 5, 9, 14, 5 (test_scores_from_inputs); BCLC 0, A, D, D
    # ART: A AST +50 % 4, CP +2 3, response 0 = 7; B 0 + 0 + 1 = 1; C 0 + 0 + 1 = 1; D 4 + 1.5 + 0 = 5.5
    assert scores["art"].tolist() == [7.0, 1.0, 1.0, 5.5]
    # ABCR: A AFP<200 0, BCLC 0 1, CP +2 2, PR -3 = 0; B AFP 500 1, A 1, 0, 0 = 2; C, D stage D -> NaN
    assert scores["abcr"].tolist()[:2] == [0.0, 2.0] and scores["abcr"].iloc[2:].isna().all()
    assert "second TACE" in sources["art"]


def test_what_a_tace_score_lacks_is_named(tmp_path):
    from hccprog.baselines.scores import score_inputs_missing

    cohort = _cohort(tmp_path)
    assert score_inputs_missing(cohort, "six_and_twelve") == []
    assert score_inputs_missing(cohort, "art") == ["ast", "ast_after", "child_pugh_after", "response"]
