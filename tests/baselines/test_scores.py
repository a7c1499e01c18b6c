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
