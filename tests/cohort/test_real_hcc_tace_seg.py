"""The real HCC-TACE-Seg table through the spec's example cohort.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hccprog.cohort import load_cohort, summarize
from tests.conftest import shared_data

SPEC_EXAMPLE = """
name: hcc-tace-seg
clinical: {clinical}
id_column: TCIA_ID
time_unit: weeks
endpoints:
  os:  {{time: OS,  event: Death_1_StillAliveorLostToFU_0}}
  ttp: {{time: TTP, event: Censored_0_progressed_1}}
response: 1_mRECIST            # reader 1; 1 = CR, 2 = PR, 3 = SD, 4 = PD
scores:
  clip: CLIP_Score
  bclc: BCLC
  okuda: Okuda
  child_pugh: CPS
covariates:
  age: {{type: numeric, unit: years}}
  Sex: {{type: categorical}}
  AFP: {{type: numeric, unit: ng/mL, transform: log}}
  Evidence_of_cirh: {{type: categorical}}
  Vascular invasion: {{type: categorical}}
  Portal Vein Thrombosis: {{type: categorical}}
  Metastasis: {{type: categorical}}
  tumor_nodul: {{type: categorical}}
  T_involvment: {{type: categorical}}
  PS_bclc_0_0_1-2_1_3-4_3: {{type: ordinal, levels: [0, 1, 3]}}
"""


def _cohort_file(tmp_path: Path, table: str) -> Path:
    folder = shared_data("hcc-tace-seg")
    spec = tmp_path / "spec"
    spec.mkdir(parents=True)
    path = spec / "cohort.yaml"
    path.write_text(SPEC_EXAMPLE.format(clinical=folder / table))
    return path


@pytest.mark.parametrize("table", ["clinical.csv", "HCC-TACE-Seg_clinical_data-V2.xlsx"])
def test_spec_example_loads(tmp_path, table):
    result = load_cohort(_cohort_file(tmp_path, table))
    assert result.ok, [str(i) for i in result.report.errors]
    cohort = result.cohort
    assert len(cohort) == 105
    os_ = cohort.outcomes("os")
    ttp = cohort.outcomes("ttp")
    assert len(os_) == 105 and os_["event"].sum() == 93
    assert len(ttp) == 105 and ttp["event"].sum() == 45
    # weeks -> days: HCC_001 has OS 350.2857143 weeks, TTP 197 weeks
    assert os_.loc["HCC_001", "time"] == pytest.approx(350.2857143 * 7)
    assert ttp.loc["HCC_001", "time"] == pytest.approx(197 * 7)
    assert cohort.outcomes("os", unit="weeks").loc["HCC_001", "time"] == pytest.approx(350.2857143)
    # responses: 9 without reading; the rest in CR..PD
    responses = cohort.responses()
    assert responses.isna().sum() == 9
    assert set(responses.dropna()) <= {"CR", "PR", "SD", "PD"}
    scores = cohort.scores()
    assert scores.loc["HCC_001"].to_dict() == {"clip": 1.0, "bclc": 1.0, "okuda": 1.0, "child_pugh": 1.0}
    assert scores.loc["HCC_002", "bclc"] == 3.0  # Stage-C
    cov = cohort.covariates()
    assert cov["AFP"].notna().all()
    assert cov.loc["HCC_001", "AFP"] == pytest.approx(1.6094379, abs=1e-6)  # log(5)
    assert str(cov["T_involvment"].dtype) == "category"
    assert set(cov["PS_bclc_0_0_1-2_1_3-4_3"].unique()) <= {0.0, 1.0, 2.0}


def test_csv_and_xlsx_agree(tmp_path):
    a = load_cohort(_cohort_file(tmp_path / "a", "clinical.csv")).cohort
    b = load_cohort(_cohort_file(tmp_path / "b", "HCC-TACE-Seg_clinical_data-V2.xlsx")).cohort
    assert a.outcomes("os").equals(b.outcomes("os"))
    assert a.scores().equals(b.scores())
    ca, cb = a.covariates(), b.covariates()
    for column in ca:
        assert ca[column].astype(str).tolist() == cb[column].astype(str).tolist(), column


def test_summary_counts(tmp_path):
    cohort = load_cohort(_cohort_file(tmp_path, "clinical.csv")).cohort
    s = summarize(cohort)
    assert s.patients == 105 and s.endpoints["os"].events == 93 and s.endpoints["ttp"].events == 45
    assert s.time_unit == "weeks"
    assert 50 < s.endpoints["os"].median_time < 200  # weeks
    assert s.endpoints["os"].median_followup > 0


def test_stray_spaces_and_negative_intervals_survive(tmp_path):
    """Undeclared covariates: every other column, typed by content; quirks do not crash."""
    path = _cohort_file(tmp_path, "clinical.csv")
    data = yaml.safe_load(path.read_text())
    del data["covariates"]
    path.write_text(yaml.safe_dump(data))
    result = load_cohort(path)
    assert result.ok
    cov = result.cohort.covariates()
    assert "Interval_BL" in cov and cov["Interval_BL"].min() < 0
    assert "Stage_ 0-2" in set(cov["CLIP"].astype(str))
    assert "NOT STATED" in set(cov["Pathology"].astype(str))
