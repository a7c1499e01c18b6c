"""The HTML pages come from one jinja2 page shell with autoescape: what a cohort or a user names
(a patient id, a title) is shown as text, never run as markup."""

from __future__ import annotations

import jinja2
import pytest

from hccprog.explain.card import write_card
from hccprog.reports.pages import markup, render_page

HOSTILE = "<script>alert('x')</script>&"


def test_values_are_escaped_and_markup_is_not():
    page = render_page("page.html.j2", title=HOSTILE)
    assert "<script>" not in page
    assert "<title>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;</title>" in page
    assert render_page("report.html.j2", title="t", heading="h", run_folder="r",
                       sections=[markup("<h2>kept</h2>"), "<h2>escaped</h2>"]).count("<h2>") == 1


def test_a_value_the_template_needs_and_was_not_given_is_an_error():
    with pytest.raises(jinja2.UndefinedError):
        render_page("card.html.j2", title="t", sections=[])


def test_the_card_shows_hostile_names_as_text_in_the_shared_shell(tmp_path):
    entry = {"model": HOSTILE, "endpoint": "os",
             "scores": {"crnn": {"risk": 0.25, "risk_group": "high", "cutoffs": [0.1],
                                 "survival": {"12": 0.8}, "imputed": [f"covariate-imputed: {HOSTILE}"]}}}
    path = write_card(tmp_path / "card.html", HOSTILE, entry, run_name=HOSTILE, cohort_name=HOSTILE,
                      time_unit="months")
    page = path.read_text()
    assert "<script>" not in page
    assert page.count("&lt;script&gt;") == 6  # title, heading, model, run, cohort and the list of fills
    assert "<li>covariate-imputed: &lt;script&gt;" in page
    assert page.startswith("<!doctype html>") and '<meta name="generator" content="hccprog' in page
    assert "@page{size:A4" in page and "<td class='risk'>0.250</td>" in page
