"""Generic reader: any CSV / TSV / JSON-lines (or JSON list) export, with a column mapping.

Each row is one answer. ``columns`` maps canonical names to the export's names, e.g.
``{"anchor": "query_img", "a": "left", "b": "right", "choice": "answer", "annotator_id": "worker"}``;
canonical names not mapped are looked up under their own name. ``choice_map`` maps the export's answer values
to ``a`` / ``b`` (case-insensitive), e.g. ``{"left": "a", "right": "b"}``; ``a``/``b`` map to themselves, and
an answer equal to one candidate's path is resolved by ingest.

Optional canonical columns read when present: ``response_ms``, ``timestamp``, ``is_gold``, ``gold_choice``,
``split``, ``source``.

The format is chosen by extension: ``.jsonl`` / ``.ndjson`` JSON lines, ``.json`` a JSON list of objects,
``.tsv`` tab-separated, anything else comma-separated.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator, Mapping

from perface.annotations.readers.record import RawRecord
from perface.annotations.readers.textfile import iter_csv_rows, iter_jsonl, load_json
from perface.errors import AnnotationError
from perface.io.tables import parse_bool

__all__ = ["read_generic", "map_choice", "REQUIRED"]

REQUIRED = ("anchor", "a", "b", "choice", "annotator_id")
OPTIONAL = ("response_ms", "timestamp", "is_gold", "gold_choice", "split", "source")



def map_choice(value, choice_map: Mapping[str, str] | None = None):
    """``a``/``b`` for a recognised answer value (case-insensitive), else the value unchanged."""
    if value is None:
        return None
    text = str(value).strip()
    key = text.lower()
    if choice_map:
        lowered = {str(k).strip().lower(): str(v).strip().lower() for k, v in choice_map.items()}
        if key in lowered:
            return lowered[key]
    if key in ("a", "b"):
        return key
    return text


def _to_bool(value) -> bool | None:
    return parse_bool(value, blank=False)


def _to_float(value) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"response_ms {value!r} is not a number") from None
    if math.isnan(out) or out < 0:
        raise ValueError(f"response_ms {value!r} is not a non-negative number")
    return out


def _record_from_mapping(row: Mapping, names: Mapping[str, str], choice_map, file: str, location: str,
                         raw) -> RawRecord:
    rec = RawRecord(file=file, location=location, raw=raw, source="generic")
    missing = [c for c in REQUIRED if names[c] not in row or row[names[c]] is None
               or (isinstance(row[names[c]], str) and not row[names[c]].strip())]
    for c in REQUIRED:
        if names[c] in row:
            setattr(rec, c, row[names[c]])
    if missing:
        return rec.reject("malformed-row", "missing value(s) for " + ", ".join(
            c if names[c] == c else f"{c} (column {names[c]!r})" for c in missing))
    rec.anchor, rec.a, rec.b = (str(row[names[c]]) for c in ("anchor", "a", "b"))
    rec.annotator_id = str(row[names["annotator_id"]]).strip()
    rec.choice = map_choice(row[names["choice"]], choice_map)
    try:
        if names["response_ms"] in row:
            rec.response_ms = _to_float(row[names["response_ms"]])
    except ValueError as exc:
        return rec.reject("malformed-row", str(exc))
    if names["timestamp"] in row and row[names["timestamp"]] not in (None, ""):
        rec.timestamp = str(row[names["timestamp"]])
    if names["is_gold"] in row:
        gold = _to_bool(row[names["is_gold"]])
        if gold is None:
            return rec.reject("malformed-row", f"is_gold {row[names['is_gold']]!r} is not true/false")
        rec.is_gold = gold
    if names["gold_choice"] in row and row[names["gold_choice"]] not in (None, ""):
        gold_choice = map_choice(row[names["gold_choice"]], choice_map)
        if gold_choice not in ("a", "b"):
            return rec.reject("malformed-row", f"gold_choice {row[names['gold_choice']]!r} is not a or b")
        rec.gold_choice = gold_choice
    if names["split"] in row and row[names["split"]] not in (None, ""):
        rec.split = str(row[names["split"]]).strip().lower()
        if rec.split not in ("train", "val", "test"):
            return rec.reject("malformed-row", f"split {row[names['split']]!r} is not train, val or test")
    if names["source"] in row and row[names["source"]] not in (None, ""):
        rec.source = str(row[names["source"]])
    return rec


def read_generic(path: str | Path, columns: Mapping[str, str] | None = None,
                 choice_map: Mapping[str, str] | None = None, **_ignored) -> Iterator[RawRecord]:
    """Yield one :class:`RawRecord` per row of a generic CSV / TSV / JSONL / JSON export.

    Raises:
        AnnotationError: not readable, not JSON, or a required column is absent from the header (CSV) or from
            the first record (JSON); the message names the file and line and the ``--map`` fix.
    """
    path = Path(path)
    columns = dict(columns or {})
    unknown = set(columns) - set(REQUIRED) - set(OPTIONAL)
    if unknown:
        raise AnnotationError(f"column mapping names unknown field(s) {', '.join(sorted(unknown))}; canonical "
                              f"fields are {', '.join(REQUIRED + OPTIONAL)}")
    names = {c: columns.get(c, c) for c in REQUIRED + OPTIONAL}
    file = str(path)
    suffix = path.suffix.lower()

    def missing_error(line: int, present) -> AnnotationError:
        missing = [c for c in REQUIRED if names[c] not in present]
        hint = " ".join(f"{c}=COLUMN" for c in missing)
        return AnnotationError(f"{path}:{line}: missing required column(s) "
                               f"{', '.join(names[c] for c in missing)} (found: {', '.join(map(str, present))}); "
                               f"map your columns with --map {hint}")

    if suffix in (".jsonl", ".ndjson"):
        checked = False
        for line, value, error in iter_jsonl(path):
            if error:
                yield RawRecord(file=file, location=f"line {line}", raw=value).reject("malformed-row", error)
                continue
            if not isinstance(value, dict):
                yield RawRecord(file=file, location=f"line {line}", raw=value).reject(
                    "malformed-row", f"expected a JSON object, got {type(value).__name__}")
                continue
            if not checked:
                if any(names[c] not in value for c in REQUIRED):
                    raise missing_error(line, list(value))
                checked = True
            yield _record_from_mapping(value, names, choice_map, file, f"line {line}", value)
        return
    if suffix == ".json":
        data = load_json(path, "a JSON list of answer objects")
        if not isinstance(data, list):
            raise AnnotationError(f"{path}:1: expected a JSON list of answer objects, got {type(data).__name__} "
                                  "(use .jsonl for one object per line)")
        for i, value in enumerate(data):
            if not isinstance(value, dict):
                yield RawRecord(file=file, location=f"item {i}", raw=value).reject(
                    "malformed-row", f"expected a JSON object, got {type(value).__name__}")
                continue
            if i == 0 and any(names[c] not in value for c in REQUIRED):
                raise missing_error(1, list(value))
            yield _record_from_mapping(value, names, choice_map, file, f"item {i}", value)
        return
    header, rows = iter_csv_rows(path)
    if any(names[c] not in header for c in REQUIRED):
        raise missing_error(1, header)
    for line, row, fields in rows:
        if row is None:
            yield RawRecord(file=file, location=f"line {line}", raw=fields).reject(
                "malformed-row", f"{len(fields)} fields where the header has {len(header)}")
            continue
        yield _record_from_mapping(row, names, choice_map, file, f"line {line}", row)
