"""Low-level reading of delimited text and JSON exports with line numbers, for the readers.

Structural problems of the whole file (not UTF-8, not JSON, no header) raise
:class:`~perface.errors.AnnotationError` naming the file and line; problems of one row are returned to the
caller so that the row can be rejected with its reason.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator

from perface.errors import AnnotationError

__all__ = ["read_text", "iter_csv_rows", "load_json", "iter_jsonl"]


def read_text(path: str | Path) -> str:
    """The file's text (UTF-8, a byte-order mark is dropped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise AnnotationError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                              "export or save the file as UTF-8") from None


def iter_csv_rows(path: str | Path, delimiter: str | None = None
                  ) -> tuple[list[str], Iterator[tuple[int, dict | None, list[str]]]]:
    """Header and an iterator of ``(line, row_dict_or_None, raw_fields)``; ``None`` when the field count is wrong.

    ``line`` is the 1-based line where the record starts (header = line 1). Blank lines are skipped.

    Raises:
        AnnotationError: empty file or no header.
    """
    text = read_text(path)
    if delimiter is None:
        delimiter = "\t" if str(path).lower().endswith((".tsv", ".tab")) else ","
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise AnnotationError(f"{path}:1: empty file (expected a header row)") from None
    except csv.Error as exc:
        raise AnnotationError(f"{path}:1: unreadable header ({exc})") from None
    header = [h.strip() for h in header]
    if not any(header):
        raise AnnotationError(f"{path}:1: empty header row (the first line must name the columns)")

    def rows():
        prev = reader.line_num
        while True:
            start = prev + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # e.g. NUL byte; report the row and go on
                prev = reader.line_num
                yield start, None, [f"<unreadable: {exc}>"]
                continue
            prev = reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if len(fields) != len(header):
                yield start, None, fields
                continue
            yield start, dict(zip(header, fields)), fields

    return header, rows()


def load_json(path: str | Path, what: str):
    """Parse a whole JSON document.

    Raises:
        AnnotationError: not JSON; names the file, line and column.
    """
    text = read_text(path)
    if not text.strip():
        raise AnnotationError(f"{path}:1: empty file (expected {what})")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno}); expected "
                              f"{what}") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, object, str | None]]:
    """``(line, value, error)`` for each non-blank line of a JSON-lines file; ``error`` set when unparsable."""
    text = read_text(path)
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield i, json.loads(line), None
        except json.JSONDecodeError as exc:
            yield i, line, f"not valid JSON ({exc.msg} at column {exc.colno})"
