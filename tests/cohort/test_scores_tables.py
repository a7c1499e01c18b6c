"""Score spellings, response classes, cell parsing and table formats."""

from __future__ import annotations

import pandas as pd
import pytest

from hccprog.cohort.scores import parse_response, parse_score
from hccprog.cohort.spec import DAYS_PER_UNIT
from hccprog.cohort.tables import normalize_category, parse_number, read_table


@pytest.mark.parametrize(
    ("name", "cell", "value"),
    [("bclc", "Stage-A", 1), ("bclc", "B", 2), ("bclc", "BCLC D", 4), ("bclc", "0", 0),
     ("clip", "Stage_3", 3), ("clip", "5", 5), ("okuda", "Stage II", 2), ("okuda", "3", 3),
     ("child_pugh", "A", 1), ("child_pugh", "C", 3), ("child_pugh", "B7", 7), ("child_pugh", "9", 9),
     ("albi", "2", 2), ("albi", "-2.71", -2.71), ("hap", "D", 3), ("mrecist", "PD", 4),
     ("mrecist", "2", 2), ("tnm", "Stage-IIIB", 4), ("tnm", "Stage-IVA", 6), ("ecog", "1", 1),
     ("my_score", "0.42", 0.42), ("six_and_twelve", "B", 2), ("six_and_twelve", "3", 3),
     ("seven_eleven", "A", 1), ("up_to_seven", "beyond", 1), ("up_to_seven", "In", 0), ("mhap2", "mHAP-II C", 2),
     ("art", "2.5", 2.5), ("abcr", "-3", -3)],
)
def test_score_spellings(name, cell, value):
    assert parse_score(name, cell) == pytest.approx(value)


@pytest.mark.parametrize(("name", "cell"), [("bclc", "Stage-E"), ("clip", "Stage_ 0-2"),
                                            ("child_pugh", "D"), ("okuda", "IV"), ("my_score", "high"),
                                            ("art", "2.7"), ("abcr", "7"), ("up_to_seven", "maybe")])
def test_bad_score_values(name, cell):
    with pytest.raises(ValueError, match=name):
        parse_score(name, cell)


def test_missing_scores_and_responses():
    assert parse_score("bclc", "") is None
    assert parse_response(" ") is None


@pytest.mark.parametrize(("cell", "cls"), [("CR", "CR"), ("pd", "PD"), ("3", "SD"), ("1.0", "CR"),
                                           ("Partial response", "PR")])
def test_response_classes(cell, cls):
    assert parse_response(cell) == cls


@pytest.mark.parametrize("cell", ["5", "0", "PR+", "good"])
def test_bad_responses(cell):
    with pytest.raises(ValueError):
        parse_response(cell)


def test_cells():
    assert parse_number(" 3.5 ") == 3.5 and parse_number("NA") is None
    with pytest.raises(ValueError):
        parse_number("3,5 weeks")
    assert normalize_category(" Stage_  0-2 ") == "Stage_ 0-2"
    assert normalize_category("1.0") == "1" and normalize_category("none") == "none"


def test_time_units():
    assert DAYS_PER_UNIT["weeks"] == 7 and DAYS_PER_UNIT["years"] == 365.25
    assert DAYS_PER_UNIT["months"] == pytest.approx(30.4375)


@pytest.mark.parametrize("fmt", ["csv", "semicolon", "xlsx", "parquet"])
def test_table_formats_read_the_same(tmp_path, fmt):
    frame = pd.DataFrame({"id": ["a", "b"], "x": [1.5, None], "n": [1, 2]})
    path = tmp_path / f"t.{ 'csv' if fmt in ('csv', 'semicolon') else fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "semicolon":
        frame.to_csv(path, index=False, sep=";")
    elif fmt == "xlsx":
        frame.to_excel(path, index=False)
    else:
        frame.to_parquet(path)
    table = read_table(path)
    assert table.columns == ["id", "x", "n"]
    assert table.frame["x"].tolist() == ["1.5", ""]
    assert [normalize_category(v) for v in table.frame["n"]] == ["1", "2"]
    assert table.row_of(0) == (1 if fmt == "parquet" else 2)


def test_duplicated_header_is_an_error(tmp_path):
    (tmp_path / "t.csv").write_text("id,x,x\n1,2,3\n")
    with pytest.raises(ValueError, match="duplicated column"):
        read_table(tmp_path / "t.csv")
