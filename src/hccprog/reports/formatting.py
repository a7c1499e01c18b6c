"""How numbers read in reports, figures and the terminal: p-values, horizons, counts."""

from __future__ import annotations

import math

#: Length of one year and one month in each time unit a cohort may use.
_YEAR = {"days": 365.25, "weeks": 365.25 / 7, "months": 12.0, "years": 1.0}
_MONTH = {"days": 365.25 / 12, "weeks": 365.25 / 12 / 7, "months": 1.0, "years": 1 / 12}


def format_p(p: float | None, *, digits: int = 3) -> str:
    """A p-value as journals print it: ``< 0.001`` below 0.001, else ``digits`` decimals; ``n/a``
    when missing or not a number."""
    if p is None or not isinstance(p, (int, float)) or math.isnan(p):
        return "n/a"
    floor = 10.0 ** -digits
    if p < floor:
        return f"< {floor:.{digits}f}"
    return f"{min(p, 1.0):.{digits}f}"


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """``1 patient``, ``2 patients`` (``plural_form`` for irregular words)."""
    return f"{n} {singular if n == 1 else (plural_form or singular + 's')}"


def times(n: int) -> str:
    """``once``, ``twice``, ``3 times``."""
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def horizon_parts(h: float, unit: str) -> tuple[float, str] | None:
    """``(2, "year")`` when ``h`` (in ``unit``) is a whole number of years, else of months (within
    1 %); None otherwise or for an unknown unit."""
    for length, name in ((_YEAR.get(unit), "year"), (_MONTH.get(unit), "month")):
        if not length:
            continue
        n = h / length
        k = round(n)
        if k >= 1 and abs(n - k) <= 0.01 * k:
            return float(k), name
    return None


def format_horizon(h: float, unit: str) -> str:
    """A horizon as people say it: ``1 year``, ``18 months``; else ``{h} {unit}``."""
    parts = horizon_parts(h, unit)
    if parts is None:
        return f"1 {unit[:-1]}" if h == 1 and unit.endswith("s") else f"{h:g} {unit}"
    return plural(int(parts[0]), parts[1])


def horizon_adjective(h: float, unit: str) -> str:
    """``1-year``, ``6-month``, else ``{h}-{unit}`` (as in "1-year survival")."""
    parts = horizon_parts(h, unit)
    if parts is None:
        return f"{h:g}-{unit[:-1] if unit.endswith('s') else unit}"
    return f"{int(parts[0])}-{parts[1]}"


def format_horizons(horizons: list[float], unit: str) -> str:
    """``1 year, 2 years and 3 years (365.25, 730.5 and 1095.75 days)``; the raw values alone when
    they are not whole years or months."""
    words = [format_horizon(h, unit) for h in horizons]
    raw = [f"{h:g}" for h in horizons]
    if all(horizon_parts(h, unit) is None for h in horizons):
        return f"{_join(raw)} {unit}"
    if unit in ("months", "years") and all(horizon_parts(h, unit) is not None for h in horizons):
        return _join(words)
    return f"{_join(words)} ({_join(raw)} {unit})"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
