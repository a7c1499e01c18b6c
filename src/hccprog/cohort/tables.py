"""Read clinical and image tables as text, and parse their cells strictly.

Tables are read with every cell as a string so that each value can be checked and a bad
one reported with its row and column, instead of pandas silently guessing types.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hccprog.errors import InputError

#: Cells read as missing. The contract says "empty cells"; the usual NA spellings are
#: accepted too ("none" is not: it is a category, e.g. of ascites).
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "#n/a"})

_WS = re.compile(r"\s+")


@dataclass
class Table:
    """A table of strings; ``row_of(i)`` is the spreadsheet row of record ``i``."""

    path: Path
    frame: pd.DataFrame  # all cells str; missing cells are ""
    first_row: int = 2  # header is row 1

    def row_of(self, index: int) -> int:
        return self.first_row + index

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]


class TableError(InputError):
    """A table that cannot be read."""


def _cell_to_str(value) -> str:
    if value is None or value is pd.NA or value is pd.NaT:  # parquet / Excel nullable values: missing
        return ""
    if isinstance(value, float | int | str | pd.Timestamp | bool) is False and pd.api.types.is_scalar(value) \
            and pd.isna(value):
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


#: File signatures of binary formats a table is sometimes saved as under a .csv name.
_MAGIC = ((b"PK\x03\x04", "a ZIP archive (an XLSX workbook?)"), (b"\xd0\xcf\x11\xe0", "an old Excel (XLS) workbook"),
          (b"\x1f\x8b", "a gzip file"), (b"PAR1", "a Parquet file"), (b"%PDF", "a PDF document"),
          (b"\x7fELF", "a program"), (b"SQLite format 3", "an SQLite database"), (b"\x89HDF", "an HDF5 file"))


def binary_kind(raw: bytes) -> str | None:
    """What a file that should be a text table is instead (``'a ZIP archive ...'``, ``'binary data'``),
    from its first bytes; None for text."""
    for magic, what in _MAGIC:
        if raw.startswith(magic):
            return what
    head = raw[:8192]
    if b"\x00" in head:
        return "binary data (it holds NUL bytes)"
    control = sum(b < 32 and b not in (9, 10, 12, 13) for b in head)
    return "binary data" if head and control / len(head) > 0.05 else None


def read_table(path: Path, sheet: str | int | None = None) -> Table:
    """Read a CSV/TSV, XLSX/XLS or Parquet table with every cell as text."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        raw = path.read_bytes()
        kind = binary_kind(raw)
        if kind:
            raise TableError(f"it is not text but {kind}: save the table as {suffix[1:].upper()} (comma- or "
                             "tab-separated text), or give the file its real extension")
        for encoding in ("utf-8-sig", "latin-1"):
            try:
                text = raw.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        delimiter = "\t" if suffix == ".tsv" else _sniff_delimiter(text[:8192])
        header = next(csv.reader([text.splitlines()[0] if text else ""], delimiter=delimiter), [])
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_filter=False, sep=delimiter,
            encoding=encoding, skip_blank_lines=True,
        )
        _check_header(path, header)
        frame.columns = [h.strip() for h in header][: len(frame.columns)]
        return Table(path, frame.map(lambda s: s.strip()), first_row=2)
    if suffix in (".xlsx", ".xlsm", ".xls"):
        frame = pd.read_excel(path, sheet_name=0 if sheet is None else sheet, dtype=object)
        header = [str(c) for c in frame.columns]
        _check_header(path, header, pandas_mangled=True)
        frame.columns = [h.strip() for h in header]
        return Table(path, frame.map(lambda v: _cell_to_str(v).strip()), first_row=2)
    if suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
        frame.columns = [str(c).strip() for c in frame.columns]
        frame = frame.astype(object).map(lambda v: _cell_to_str(v).strip())
        return Table(path, frame.reset_index(drop=True), first_row=1)
    raise TableError(f"unsupported table format {suffix!r} (CSV, TSV, XLSX or Parquet expected)")


def _check_header(path: Path, header: list[str], pandas_mangled: bool = False) -> None:
    names = [h.strip() for h in header]
    if pandas_mangled:  # pandas renames duplicates "x" -> "x.1"
        present = set(names)
        names = [re.sub(r"\.\d+$", "", n) if re.sub(r"\.\d+$", "", n) in present else n
                 for n in names]
    seen, dups = set(), []
    for n in names:
        if n in seen and n not in dups:
            dups.append(n)
        seen.add(n)
    if dups:
        raise TableError(f"duplicated column name(s) in the header: {dups}")


# ------------------------------------------------------------------------------- cells


def is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING_TOKENS


def normalize_category(cell: str) -> str:
    """Strip and collapse whitespace; integral numbers lose their '.0' ('1.0' -> '1')."""
    text = _WS.sub(" ", cell.strip())
    try:
        value = float(text)
    except ValueError:
        return text
    if math.isfinite(value) and value.is_integer():
        return str(int(value))
    return text


def parse_number(cell: str) -> float | None:
    """A float, None for a missing cell; raises ValueError for anything else."""
    if is_missing(cell):
        return None
    value = float(cell.strip().replace("\u2212", "-"))
    if not math.isfinite(value):
        raise ValueError(f"{cell!r} is not a finite number")
    return value
