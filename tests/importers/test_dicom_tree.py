"""Phases from DICOM headers, and the NBIA metadata.csv."""

from __future__ import annotations

from pathlib import Path

from hccprog.importers.dicom_tree import SeriesInfo, classify_study, metadata_folders


def _info(uid: str, description: str, *, contrast: str = "IV", files: int = 80, time: str = "", modality="CT",
          sop="1.2.840.10008.5.1.4.1.1.2") -> SeriesInfo:
    return SeriesInfo(folder=Path(f"/d/P/S/{uid}"), patient="P", study_uid="s", study_date=None, study_time="",
                      study_description="", series_uid=uid, series_number=None, description=description,
                      modality=modality, sop_class=sop, files=files, contrast=contrast, time=time)


def test_phase_words_timing_and_skips():
    series = [
        _info("a", "LIVER ARTERIAL PHASE"), _info("b", "Portal venous 5mm"), _info("c", "DELAYED 3 MIN"),
        _info("d", "PRE CONTRAST", contrast=""), _info("e", "SCOUT", files=2), _info("f", "Dose Report", files=1),
        _info("g", "Segmentation", sop="1.2.840.10008.5.1.4.1.1.66.4", modality="SEG"),
        _info("h", "Recon 3: LIVER 2 PHASE (C/A/P)"), _info("i", "LIVER 3 PHASE (AP) ART PV", files=40),
    ]
    calls = classify_study(series)
    got = {uid: (c.phase, c.confidence) for uid, c in calls.items()}
    assert got["a"] == ("ART", "high") and got["b"] == ("PV", "high") and got["c"] == ("DEL", "high")
    assert got["d"] == ("NC", "high")
    assert got["e"][0] is None and got["f"][0] is None and got["g"][0] is None
    assert got["h"] == ("PV", "medium")  # contrast, chest/abdomen/pelvis, no phase word
    assert got["i"] == (None, "low")  # several phases named: uncertain, listed for the user
    assert classify_study([_info("l", "LATE ARTERIAL 1.25mm")])["l"].phase == "ART"
    # "(AP)" names the abdomen and pelvis, not the arterial phase
    assert classify_study([_info("x", "LIVER 3 PHASE (AP)")])["x"].confidence == "low"


def test_timing_orders_contrast_series_without_words():
    series = [_info("n", "Body 5.0", contrast=""), _info("p", "Body 5.0 B", time="101630"),
              _info("a", "Body 5.0 A", time="101500"), _info("d", "Body 5.0 C", time="101900")]
    calls = classify_study(series)
    assert [(calls[u].phase, calls[u].confidence) for u in "napd"] == [
        ("NC", "medium"), ("ART", "medium"), ("PV", "medium"), ("DEL", "medium")]


def test_overrides_by_uid_or_folder():
    series = [_info("a", "Recon 2"), _info("b", "Recon 3")]
    calls = classify_study(series, {"a": "pv", "P/S/b": "skip"}, root=Path("/d"))
    assert (calls["a"].phase, calls["a"].confidence) == ("PV", "given")
    assert calls["b"].phase is None and calls["b"].confidence == "given"


def test_metadata_csv_locates_series_with_the_collection_prefix(tmp_path):
    series = tmp_path / "HCC_001" / "02-15-1998-NA-CT-1" / "2.000000-PV-2"
    series.mkdir(parents=True)
    (tmp_path / "metadata.csv").write_text(
        "Series UID,Subject ID,File Location\n"
        "1.2,HCC_001,.\\HCC-TACE-Seg\\HCC_001\\02-15-1998-NA-CT-1\\2.000000-PV-2\n")
    assert metadata_folders(tmp_path) == [series]
    assert metadata_folders(tmp_path / "HCC_001") is None
