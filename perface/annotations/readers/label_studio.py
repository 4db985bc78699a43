"""Reader for Label Studio exports of the triplet task this project ships (``perface triplets labeling-config``).

Supported export types (Label Studio "Export" dialog):

* **JSON** - a list of tasks, each ``{"id", "data": {"anchor", "a", "b", ...}, "annotations": [...]}``; each
  annotation has ``completed_by`` (user id, or an object with ``id``/``email``), ``result`` (the ``choices``
  result whose ``from_name`` is ``choice``: ``{"value": {"choices": ["a"]}}``), ``was_cancelled``,
  ``ground_truth``, ``lead_time`` (seconds) and ``created_at``. One record per annotation; drafts and
  predictions (model output) are not human answers and are ignored; tasks nobody answered yield nothing.
* **JSON-MIN** - a flat list, one object per annotation: ``{"anchor", "a", "b", "choice", "annotator",
  "lead_time", "created_at", ...}``.

Image references are ``data.anchor`` / ``data.a`` / ``data.b`` (URLs such as
``/data/local-files/?d=utkface/images/x.jpg``, mapped back to paths by ingest's URL prefixes); tasks written
by ``perface triplets sample`` also carry ``anchor_path`` / ``a_path`` / ``b_path``, which win.

Gold: an annotation marked *ground truth* gives the task's known answer; the other annotations on that task
become ``is_gold`` with that ``gold_choice`` (the ground-truth annotation itself is kept as an ordinary
judgment). A task field ``gold`` (``a``/``b``) does the same. Cancelled (skipped) annotations are rejected
with reason ``cancelled``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from perface.annotations.readers.generic import map_choice
from perface.annotations.readers.record import RawRecord
from perface.annotations.readers.textfile import load_json
from perface.errors import AnnotationError

__all__ = ["read_label_studio"]


def _annotator(value) -> str | None:
    if isinstance(value, dict):
        value = value.get("id", value.get("email"))
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value).strip()


def _images(data: dict, fields: tuple[str, str, str]) -> tuple[list, list[str]]:
    out, missing = [], []
    for name in fields:
        value = data.get(f"{name}_path", data.get(name))
        if value is None or (isinstance(value, str) and not value.strip()):
            missing.append(name)
        out.append(value)
    return out, missing


def _choice_of(result, from_name: str):
    """The chosen value of the ``choices`` result named ``from_name``; ``(value, error)``."""
    if not isinstance(result, list):
        return None, "annotation result is not a list"
    picks = [r for r in result if isinstance(r, dict) and r.get("type", "choices") == "choices"
             and r.get("from_name", from_name) == from_name]
    if not picks:
        return None, f"no '{from_name}' choice in the annotation result"
    choices = (picks[0].get("value") or {}).get("choices")
    if not isinstance(choices, list) or len(choices) != 1:
        return None, f"'{from_name}' result has {choices!r}, expected exactly one choice"
    return choices[0], None


def _seconds_to_ms(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value) * 1000.0
    except (TypeError, ValueError):
        return None
    return out if out >= 0 else None


def read_label_studio(path: str | Path, from_name: str = "choice", fields: tuple[str, str, str] = ("anchor", "a", "b"),
                      choice_map=None, **_ignored) -> Iterator[RawRecord]:
    """Yield one :class:`RawRecord` per annotation in a Label Studio JSON or JSON-MIN export.

    Raises:
        AnnotationError: not JSON, or not a list of tasks (names the file and line).
    """
    path = Path(path)
    file = str(path)
    data = load_json(path, "a Label Studio JSON export (a list of tasks)")
    if isinstance(data, dict) and "annotations" in data:  # a single task
        data = [data]
    if not isinstance(data, list):
        raise AnnotationError(f"{path}:1: expected a list of tasks (Label Studio 'JSON' or 'JSON-MIN' export), got "
                              f"{type(data).__name__}")
    for t, task in enumerate(data):
        if not isinstance(task, dict):
            yield RawRecord(file=file, location=f"task #{t}", raw=task, source="label-studio").reject(
                "malformed-row", f"task is a {type(task).__name__}, not an object")
            continue
        if "annotations" not in task:
            yield _json_min_record(task, t, file, from_name, fields, choice_map)
            continue
        task_id = task.get("id", f"#{t}")
        task_data = task.get("data") if isinstance(task.get("data"), dict) else {}
        images, missing = _images(task_data, fields)
        annotations = task.get("annotations")
        if not isinstance(annotations, list):
            yield RawRecord(file=file, location=f"task {task_id}", raw=task, source="label-studio").reject(
                "malformed-row", "'annotations' is not a list")
            continue
        gold = map_choice(task_data.get("gold")) if task_data.get("gold") not in (None, "") else None
        gt_choices = set()
        for ann in annotations:
            if isinstance(ann, dict) and ann.get("ground_truth") and not ann.get("was_cancelled"):
                value, err = _choice_of(ann.get("result"), from_name)
                if not err:
                    gt_choices.add(map_choice(value, choice_map))
        if gold is None and len(gt_choices) == 1:
            gold = next(iter(gt_choices))
        if gold not in ("a", "b"):
            gold = None
        for k, ann in enumerate(annotations):
            ann_id = ann.get("id", f"#{k}") if isinstance(ann, dict) else f"#{k}"
            rec = RawRecord(file=file, location=f"task {task_id} annotation {ann_id}", source="label-studio",
                            raw={"task": task_id, "data": task_data, "annotation": ann})
            rec.anchor, rec.a, rec.b = images
            if not isinstance(ann, dict):
                yield rec.reject("malformed-row", f"annotation is a {type(ann).__name__}, not an object")
                continue
            rec.annotator_id = _annotator(ann.get("completed_by"))
            if ann.get("was_cancelled"):
                yield rec.reject("cancelled", "annotation was cancelled (skipped) in Label Studio")
                continue
            if missing:
                yield rec.reject("malformed-row", f"task data lacks {', '.join(missing)}")
                continue
            if rec.annotator_id is None:
                yield rec.reject("malformed-row", "annotation has no completed_by (annotator)")
                continue
            value, err = _choice_of(ann.get("result"), from_name)
            if err:
                yield rec.reject("malformed-row", err)
                continue
            rec.choice = map_choice(value, choice_map)
            rec.response_ms = _seconds_to_ms(ann.get("lead_time"))
            rec.timestamp = ann.get("created_at")
            if gold is not None and not ann.get("ground_truth"):
                rec.is_gold, rec.gold_choice = True, gold
            yield rec


def _json_min_record(item: dict, t: int, file: str, from_name: str, fields, choice_map=None) -> RawRecord:
    loc = f"item {item.get('annotation_id', item.get('id', f'#{t}'))}"
    rec = RawRecord(file=file, location=loc, raw=item, source="label-studio")
    images, missing = _images(item, fields)
    rec.anchor, rec.a, rec.b = images
    rec.annotator_id = _annotator(item.get("annotator", item.get("completed_by")))
    if missing:
        return rec.reject("malformed-row", f"item lacks {', '.join(missing)} (not a triplet task export?)")
    if rec.annotator_id is None:
        return rec.reject("malformed-row", "item has no annotator")
    value = item.get(from_name)
    if isinstance(value, dict) and "choices" in value:
        value = value["choices"]
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    if value is None or (isinstance(value, str) and not value.strip()):
        return rec.reject("malformed-row", f"no '{from_name}' answer")
    rec.choice = map_choice(value, choice_map)
    rec.response_ms = _seconds_to_ms(item.get("lead_time"))
    rec.timestamp = item.get("created_at")
    gold = item.get("gold")
    if gold not in (None, "") and map_choice(gold) in ("a", "b"):
        rec.is_gold, rec.gold_choice = True, map_choice(gold)
    return rec
