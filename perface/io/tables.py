"""CSV / Parquet tables: reading with every value as a string (tab-separated text too), writing by extension, the
one true/false vocabulary, and the aligned text tables commands print (:func:`text_table`).

Every table perface reads (triplets, judgments, label files, pairs CSVs, swap pairs, campaign tasks) goes through
:func:`read_table`, so encodings, blank cells and error messages behave the same everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from perface.errors import TableError

__all__ = ["FALSE_WORDS", "TRUE_WORDS", "delimiter", "is_parquet", "parse_bool", "read_table", "text_table", "where",
           "write_table"]

#: Cell values read as true / false (case-insensitive, stripped); ``on`` is what HTML checkboxes send.
TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "on"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "off"})


def parse_bool(value, *, true: tuple[str, ...] = (), false: tuple[str, ...] = (), blank: bool | None = None
               ) -> bool | None:
    """A table cell as a boolean.

    Args:
        value: The cell (str, bool, number, None).
        true, false: Extra words of a domain (e.g. ``same`` / ``different`` in pairs files).
        blank: What an empty cell means (None: unknown).

    Returns:
        True, False, ``blank`` for an empty cell, or None for anything else (the caller reports it).
    """
    if isinstance(value, bool):
        return value
    if value is None or (isinstance(value, float) and value != value):
        return blank
    v = str(value).strip().lower()
    if v in ("", "nan", "none", "<na>"):
        return blank
    if v in TRUE_WORDS or v in true:
        return True
    if v in FALSE_WORDS or v in false:
        return False
    return None


def is_parquet(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a Parquet file (``.parquet`` / ``.pq``); anything else is CSV."""
    return str(path).lower().endswith((".parquet", ".pq"))


def where(path, kind: str, row: int) -> str:
    """``file:line`` for CSV (header is line 1), ``file: row N`` for Parquet; ``row`` is 0-based."""
    return f"{path}: row {row + 1}" if kind == "parquet" else f"{path}:{row + 2}"


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def delimiter(path: str | os.PathLike) -> str:
    """The field separator of a text table: a tab for ``.tsv`` / ``.tab`` files and for files whose first line
    has tabs but no comma (tab-separated exports), else a comma."""
    if str(path).lower().endswith((".tsv", ".tab")):
        return "\t"
    try:
        with open(path, "rb") as f:
            header = f.readline()
    except OSError:
        return ","
    return "\t" if b"\t" in header and b"," not in header else ","


def text_table(rows: list[list[str]]) -> list[str]:
    """Rows of cells as lines of left-aligned columns two spaces apart (the tables commands print)."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def read_table(path: str | os.PathLike, error: type[TableError] = TableError, example: str = "path,..."
               ) -> tuple[pd.DataFrame, str]:
    """Read a CSV or Parquet file with every column as a string (missing = empty string), names stripped.

    Args:
        path: The file (``.parquet`` / ``.pq`` is Parquet, anything else CSV, UTF-8 with or without BOM;
            tab-separated text is read too, see :func:`delimiter`).
        error: The :class:`TableError` subclass to raise (AnnotationError, LabelFileError, ...).
        example: A header that would be valid, for the empty-file message.

    Returns:
        ``(frame, kind)`` with ``kind`` ``"csv"`` or ``"parquet"``.

    Raises:
        error: unreadable or empty file (message names the file and line).
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    if is_parquet(path):
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types
            raise error(f"{path}: not a readable Parquet file ({_one_line(exc)}); write it with pandas/pyarrow "
                        "or use a .csv extension for CSV") from None
        frame = frame.astype(object).where(frame.notna(), "")
        frame = frame.map(lambda v: "" if v is None else str(v)) if len(frame) else frame.astype(str)
        frame.columns = [str(c).strip() for c in frame.columns]
        return frame, "parquet"
    try:
        frame = pd.read_csv(path, sep=delimiter(path), dtype=str, keep_default_na=False, na_filter=False,
                            encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise error(f"{path}:1: empty file (expected a header row such as '{example}')") from None
    except pd.errors.ParserError as exc:
        raise error(f"{path}: not a readable CSV file ({_one_line(exc)}); fix the quoting or the number of "
                    "fields on that line") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise error(f"{path}:{line}: not UTF-8 text ({exc.reason}); save the file as UTF-8") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame, "csv"


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table as CSV or Parquet (by extension), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_parquet(path):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, lineterminator="\n", float_format="%.6g")
    return path
