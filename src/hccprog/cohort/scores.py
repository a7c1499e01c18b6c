"""Established staging and prognostic scores as they appear in clinical tables.

A cohort's ``scores:`` mapping names columns that already hold a score; this module reads
their values, whatever the spelling (``Stage-B``, ``B``, ``BCLC B``; ``Stage_3``, ``3``;
``Stage II``, ``2``), into numbers ordered so that **higher means worse prognosis**.
"""

from __future__ import annotations

import re

from hccprog.cohort.tables import is_missing

_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5}

#: Order of each known score, lowest risk first, and a one-line description.
KNOWN_SCORES: dict[str, str] = {
    "bclc": "BCLC stage 0 < A < B < C < D",
    "clip": "CLIP score 0..6",
    "okuda": "Okuda stage I < II < III",
    "child_pugh": "Child-Pugh class A < B < C, or points 5..15",
    "albi": "ALBI grade 1..3 (integers), or the continuous ALBI score",
    "hap": "HAP score A < B < C < D",
    "mrecist": "mRECIST response CR < PR < SD < PD (or 1..4)",
    "recist": "RECIST response CR < PR < SD < PD (or 1..4)",
    "easl": "EASL response CR < PR < SD < PD (or 1..4)",
    "tnm": "TNM stage I < II < IIIA < IIIB < IIIC < IVA < IVB",
    "ecog": "ECOG performance status 0..4",
    "six_and_twelve": "six-and-twelve stratum A < B < C (or 1..3)",
    "up_to_seven": "up-to-seven in < out (or 0/1)",
    "seven_eleven": "seven-eleven stratum A < B < C (or 1..3)",
    "mhap2": "mHAP-II class A < B < C < D",
    "art": "ART points 0..8",
    "abcr": "ABCR points -3..6",
}

#: The one home of the mRECIST response classes, best to worst, and what is derived from them.
RESPONSE_CLASSES = ("CR", "PR", "SD", "PD")
#: class (or its number 1..4) -> ordinal 0 (CR) .. 3 (PD)
RESPONSE_ORDER: dict[str, float] = {**{c: float(i) for i, c in enumerate(RESPONSE_CLASSES)},
                                    **{str(i + 1): float(i) for i in range(len(RESPONSE_CLASSES))}}
#: the response endpoint's positive class (PD) and disease control, as classes or numbers
PD_VALUES = frozenset({"PD", "4"})
CONTROL_VALUES = frozenset({"CR", "PR", "SD", "1", "2", "3"})
#: radiological response (objective response: CR or PR)
RESPONDERS = ("CR", "PR")
_RESPONSE_WORDS = {
    "complete response": "CR",
    "partial response": "PR",
    "stable disease": "SD",
    "progressive disease": "PD",
}


def parse_response(cell: str) -> str | None:
    """'CR'/'PR'/'SD'/'PD' from CR..PD, 1..4 or the words; None if missing; else ValueError."""
    if is_missing(cell):
        return None
    text = cell.strip()
    upper = text.upper()
    if upper in RESPONSE_CLASSES:
        return upper
    if text.lower() in _RESPONSE_WORDS:
        return _RESPONSE_WORDS[text.lower()]
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None and number.is_integer() and 1 <= number <= 4:
        return RESPONSE_CLASSES[int(number) - 1]
    raise ValueError(f"{cell!r} is not a response class (CR, PR, SD, PD or 1..4)")


def _strip_prefix(text: str, *words: str) -> str:
    t = text.strip()
    for w in words:
        t = re.sub(rf"^{w}", "", t, flags=re.IGNORECASE)
    return t.strip(" -_:").strip()


def _integer(text: str, lo: int, hi: int) -> float:
    value = float(text)
    if not value.is_integer() or not lo <= value <= hi:
        raise ValueError
    return value


def _letters(text: str, order: str) -> float:
    t = text.upper()
    if len(t) == 1 and t in order:
        return float(order.index(t))
    raise ValueError


def parse_score(name: str, cell: str) -> float | None:
    """The numeric value of score ``name`` in ``cell``; None if missing; else ValueError."""
    if is_missing(cell):
        return None
    text = cell.strip()
    try:
        if name == "bclc":
            t = _strip_prefix(text, "bclc", "stage")
            return float("0ABCD".index(t.upper())) if len(t) == 1 and t.upper() in "0ABCD" else (
                _integer(t, 0, 4))
        if name == "clip":
            return _integer(_strip_prefix(text, "clip", "score", "stage"), 0, 6)
        if name == "okuda":
            t = _strip_prefix(text, "okuda", "stage")
            return float(_ROMAN[t.upper()]) if t.upper() in _ROMAN and _ROMAN[t.upper()] <= 3 else (
                _integer(t, 1, 3))
        if name == "child_pugh":
            t = _strip_prefix(text, "child-pugh", "child pugh", "cps", "class")
            m = re.fullmatch(r"([ABCabc])\s*-?\s*(\d+)", t)
            if m:  # "B7": the points carry the information
                return _integer(m.group(2), 5, 15)
            if len(t) == 1 and t.upper() in "ABC":
                return float("ABC".index(t.upper()) + 1)
            return _integer(t, 5, 15)
        if name == "albi":
            t = re.sub(r"^(albi|grade)[\s_:]*", "", text.strip(), flags=re.IGNORECASE)
            t = re.sub(r"^(grade)[\s_:]*", "", t, flags=re.IGNORECASE)
            value = float(t)
            if value.is_integer() and 1 <= value <= 3:
                return value
            if value < 0:  # the continuous score (about -4 .. -0.5)
                return value
            raise ValueError
        if name == "hap":
            return _letters(_strip_prefix(text, "hap", "score"), "ABCD")
        if name in ("mrecist", "recist", "easl"):
            return float(RESPONSE_CLASSES.index(parse_response(text)) + 1)  # type: ignore[arg-type]
        if name == "tnm":
            t = _strip_prefix(text, "tnm", "stage").upper().replace(" ", "")
            order = ["I", "II", "IIIA", "IIIB", "IIIC", "IVA", "IVB"]
            if t in order:
                return float(order.index(t) + 1)
            if t in ("III", "IV"):
                return float(order.index(t + "A") + 1)
            raise ValueError
        if name == "ecog":
            return _integer(_strip_prefix(text, "ecog", "ps"), 0, 4)
        if name in ("six_and_twelve", "seven_eleven"):
            t = _strip_prefix(text, "stratum", "group", "class")
            return _letters(t, "ABC") + 1 if len(t) == 1 and t.upper() in "ABC" else _integer(t, 1, 3)
        if name == "up_to_seven":
            t = text.strip().lower()
            words = {"in": 0.0, "within": 0.0, "inside": 0.0, "out": 1.0, "beyond": 1.0, "outside": 1.0}
            return words[t] if t in words else _integer(t, 0, 1)
        if name == "mhap2":
            return _letters(_strip_prefix(text, "mhap-ii", "mhap2", "mhap", "class"), "ABCD")
        if name == "art":
            value = float(text)
            if not 0 <= value <= 8 or (2 * value) % 1:
                raise ValueError
            return value
        if name == "abcr":
            return _integer(text, -3, 6)
        return float(text)  # a score hccprog does not know: numeric, higher = worse
    except (ValueError, KeyError, TypeError):
        what = KNOWN_SCORES.get(name, "a number (unknown scores must be numeric, higher = worse)")
        raise ValueError(f"{cell!r} is not a valid value for score '{name}': expected {what}") from None
