"""Figures that take tables: edge cases that used to warn."""

from __future__ import annotations

import warnings

import pandas as pd

from hccprog.reports.figures import forest_plot


def test_forest_plot_with_a_single_model():
    rows = pd.DataFrame([{"label": "crnn", "hr": 2.0, "ci_lower": 1.2, "ci_upper": 3.4, "p_value": 0.01}])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas: "Calling float on a single element Series"
        fig = forest_plot(rows, "high vs low")
    (ax,) = fig.axes
    (line, *_) = ax.lines
    assert list(line.get_xdata()) == [2.0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["crnn"]
