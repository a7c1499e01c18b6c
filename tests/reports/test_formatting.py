"""How p-values, horizons and counts read."""

from __future__ import annotations

import math

import pytest

from hccprog.reports.formatting import (
    format_horizon,
    format_horizons,
    format_p,
    horizon_adjective,
    plural,
    times,
)


@pytest.mark.parametrize(("p", "text"), [(0.0, "< 0.001"), (1e-12, "< 0.001"), (0.000999, "< 0.001"),
                                         (0.001, "0.001"), (0.0123, "0.012"), (0.5, "0.500"), (1.0, "1.000"),
                                         (None, "n/a"), (math.nan, "n/a")])
def test_p_values_below_0001_read_as_less_than(p, text):
    assert format_p(p) == text


@pytest.mark.parametrize(("h", "unit", "text", "adjective"), [
    (365.25, "days", "1 year", "1-year"), (730.5, "days", "2 years", "2-year"), (365, "days", "1 year", "1-year"),
    (182.625, "days", "6 months", "6-month"), (547.875, "days", "18 months", "18-month"),
    (52.1786, "weeks", "1 year", "1-year"), (104.357, "weeks", "2 years", "2-year"),
    (26.09, "weeks", "6 months", "6-month"), (12, "months", "1 year", "1-year"), (9, "months", "9 months", "9-month"),
    (1, "years", "1 year", "1-year"), (100, "days", "100 days", "100-day"), (1, "days", "1 day", "1-day")])
def test_horizons_read_in_years_or_months(h, unit, text, adjective):
    assert format_horizon(h, unit) == text
    assert horizon_adjective(h, unit) == adjective


def test_horizon_lists_keep_the_raw_values_for_odd_units():
    assert (format_horizons([365.25, 730.5, 1095.75], "days")
            == "1 year, 2 years and 3 years (365.25, 730.5 and 1095.75 days)")
    assert format_horizons([12, 24], "months") == "1 year and 2 years"
    assert format_horizons([100, 200], "days") == "100 and 200 days"


def test_singular_and_plural():
    assert plural(1, "patient") == "1 patient"
    assert plural(0, "patient") == "0 patients"
    assert plural(2, "event") == "2 events"
    assert plural(3, "analysis", "analyses") == "3 analyses"
    assert [times(n) for n in (1, 2, 5)] == ["once", "twice", "5 times"]
