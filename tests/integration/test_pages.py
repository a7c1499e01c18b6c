"""The run report from the shared page shell: a real run re-rendered, with a hostile cohort name."""

from __future__ import annotations

import shutil

import yaml

from hccprog.reports.report import evaluate_run


def test_the_report_of_a_real_run_escapes_the_cohort_name(tiny_trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_trained_run, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert "cohort_name" in config
    config["cohort_name"] = "<img src=x onerror=alert(1)>"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    evaluate_run(run)
    page = (run / "report.html").read_text()
    assert "<img src=x" not in page and page.count("&lt;img src=x onerror=alert(1)&gt;") == 2  # title, cohort line
    assert page.startswith("<!doctype html>") and '<meta name="generator" content="hccprog' in page
    assert "<h2>Discrimination and risk stratification</h2>" in page
    assert page.count('src="data:image/png;base64,') >= 2  # figures embedded: one self-contained file
    assert "run folder run;" in page
