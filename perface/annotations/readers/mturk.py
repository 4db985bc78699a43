"""Reader for Amazon Mechanical Turk batch results CSV (``Batch_NNN_batch_results.csv``).

Columns used (the rest, e.g. ``HITId``, ``AcceptTime``, ``LifetimeApprovalRate``, are kept only in rejects):

* ``WorkerId`` -> ``annotator_id``; ``AssignmentStatus`` (``Submitted`` / ``Approved`` / ``Rejected``);
  ``WorkTimeInSeconds`` -> ``response_ms`` (divided evenly over the triplets of a HIT); ``SubmitTime`` ->
  ``timestamp``.
* ``Input.anchor``, ``Input.a``, ``Input.b``: image URL or path of each triplet (the input CSV's columns; the
  ``_url`` variants ``Input.anchor_url`` ... are found too). Several triplets per HIT are numbered
  ``Input.anchor_1``, ``Input.a_1``, ... with matching ``Answer.choice_1``.
* the answer: ``Answer.choice`` holding ``a`` / ``b`` (an HTML radio group named ``choice``), or one boolean
  column per option, ``Answer.choice.a`` / ``Answer.choice.b`` (crowd-radio-group style, ``true`` / ``false``).
* optional ``Input.gold`` (``a`` / ``b``): a gold (known-answer) triplet.

Answers of **rejected assignments are excluded**: each becomes a reject with reason ``assignment-rejected``.
Image URLs are mapped to root-relative paths by ingest's ``--url-prefix``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Mapping

from perface.annotations.readers.generic import map_choice
from perface.annotations.readers.record import RawRecord
from perface.annotations.readers.textfile import iter_csv_rows
from perface.errors import AnnotationError
from perface.io.tables import parse_bool

__all__ = ["read_mturk"]



def _items(header: list[str], fields: tuple[str, str, str], answer: str, path) -> list[dict]:
    """The triplet slots of a HIT: for each suffix the input column names and the answer columns."""
    cols = set(header)
    anchor = fields[0]
    if f"Input.{anchor}" not in cols and not any(re.fullmatch(rf"Input\.{re.escape(anchor)}_?\d+", c) for c in cols):
        if f"Input.{anchor}_url" in cols or any(re.fullmatch(rf"Input\.{re.escape(anchor)}_url_?\d+", c) for c in cols):
            fields = tuple(f"{f}_url" for f in fields)
            anchor = fields[0]
    pattern = re.compile(rf"Input\.{re.escape(anchor)}(_?\d+)?")
    suffixes = sorted({(m.group(1) or "") for c in header if (m := pattern.fullmatch(c))},
                      key=lambda s: (len(s), s))
    if not suffixes:
        raise AnnotationError(f"{path}:1: no Input.{fields[0]} column (found: {', '.join(header)}); an MTurk batch "
                              f"results file needs Input.{fields[0]}, Input.{fields[1]}, Input.{fields[2]} and "
                              f"Answer.{answer} (rename with --map anchor=NAME,a=NAME,b=NAME,choice=NAME)")
    items = []
    for s in suffixes:
        names = [f"Input.{f}{s}" for f in fields]
        missing = [n for n in names if n not in cols]
        answer_base = answer + s
        single = f"Answer.{answer_base}"
        pair = (f"Answer.{answer_base}.a", f"Answer.{answer_base}.b")
        if single not in cols and not all(p in cols for p in pair):
            missing.append(f"{single} (or {pair[0]} and {pair[1]})")
        if missing:
            raise AnnotationError(f"{path}:1: missing column(s) {', '.join(missing)} for the triplet "
                                  f"Input.{fields[0]}{s}; every triplet of a HIT needs its three Input columns and "
                                  "an Answer column")
        items.append({"suffix": s, "inputs": names, "single": single if single in cols else None, "pair": pair,
                      "gold": f"Input.gold{s}" if f"Input.gold{s}" in cols else None})
    return items


def _answer(row: Mapping, item: dict, choice_map):
    if item["single"]:
        value = row[item["single"]]
        return map_choice(value, choice_map) if value.strip() else None
    flags = [parse_bool(row[c]) is True for c in item["pair"]]
    if flags == [True, False]:
        return "a"
    if flags == [False, True]:
        return "b"
    return f"<{'both' if all(flags) else 'neither'} option selected>"


def read_mturk(path: str | Path, fields: tuple[str, str, str] = ("anchor", "a", "b"), answer: str = "choice",
               choice_map=None, columns: Mapping[str, str] | None = None, **_ignored) -> Iterator[RawRecord]:
    """Yield one :class:`RawRecord` per triplet answer in an MTurk batch results CSV.

    ``columns`` may rename the slots: ``{"anchor": "face0", "a": "face1", "b": "face2", "choice": "pick"}``
    (without the ``Input.`` / ``Answer.`` prefixes).

    Raises:
        AnnotationError: required columns missing (names the file and line 1 and the columns).
    """
    path = Path(path)
    file = str(path)
    if columns:
        fields = tuple(columns.get(k, d) for k, d in zip(("anchor", "a", "b"), fields))
        answer = columns.get("choice", answer)
    header, rows = iter_csv_rows(path)
    missing = [c for c in ("WorkerId", "AssignmentStatus") if c not in header]
    if missing:
        raise AnnotationError(f"{path}:1: missing column(s) {', '.join(missing)} (found: {', '.join(header)}); "
                              "expected an MTurk batch results CSV (Manage > Results > Download CSV)")
    items = _items(header, fields, answer, path)
    n_items = len(items)
    for line, row, raw_fields in rows:
        for item in items:
            loc = f"line {line}" + (f" triplet {item['suffix'].lstrip('_')}" if item["suffix"] else "")
            rec = RawRecord(file=file, location=loc, source="mturk", raw=row if row is not None else raw_fields)
            if row is None:
                yield rec.reject("malformed-row", f"{len(raw_fields)} fields where the header has {len(header)}")
                continue
            rec.anchor, rec.a, rec.b = (row[c] for c in item["inputs"])
            rec.annotator_id = row["WorkerId"].strip() or None
            status = row["AssignmentStatus"].strip()
            if status.lower() == "rejected":
                yield rec.reject("assignment-rejected", f"assignment {row.get('AssignmentId', '?')} was rejected "
                                                        "by the requester")
                continue
            if rec.annotator_id is None:
                yield rec.reject("malformed-row", "empty WorkerId")
                continue
            rec.choice = _answer(row, item, choice_map)
            if rec.choice is None:
                yield rec.reject("malformed-row", "no answer given")
                continue
            seconds = row.get("WorkTimeInSeconds", "").strip()
            if seconds:
                try:
                    rec.response_ms = float(seconds) * 1000.0 / n_items
                except ValueError:
                    yield rec.reject("malformed-row", f"WorkTimeInSeconds {seconds!r} is not a number")
                    continue
            rec.timestamp = row.get("SubmitTime") or None
            if item["gold"] and row[item["gold"]].strip():
                gold = map_choice(row[item["gold"]], choice_map)
                if gold not in ("a", "b"):
                    yield rec.reject("malformed-row", f"Input.gold {row[item['gold']]!r} is not a or b")
                    continue
                rec.is_gold, rec.gold_choice = True, gold
            yield rec
