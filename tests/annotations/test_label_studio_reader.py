"""Label Studio JSON / JSON-MIN exports of the shipped triplet config: answers, skips, ground truth, bad rows."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from perface.annotations.ingest import ingest
from perface.annotations.labeling_config import labeling_config
from perface.annotations.readers.label_studio import read_label_studio
from perface.annotations.sample import to_label_studio_tasks
from perface.errors import AnnotationError

URL = "/data/local-files/?d="


def _ann(ann_id, user, choice=None, cancelled=False, ground_truth=False, lead=3.25, from_name="choice"):
    result = [] if choice is None else [{
        "value": {"choices": [choice] if not isinstance(choice, list) else choice}, "id": f"r{ann_id}",
        "from_name": from_name, "to_name": "anchor", "type": "choices", "origin": "manual"}]
    return {"id": ann_id, "completed_by": user, "result": result, "was_cancelled": cancelled,
            "ground_truth": ground_truth, "created_at": "2024-06-01T12:00:00.000000Z",
            "updated_at": "2024-06-01T12:00:00.000000Z", "lead_time": lead, "task": None, "project": 3,
            "prediction": {}, "result_count": 0, "last_action": None}


def _task(task_id, f, anns, data_extra=None):
    data = {"anchor": URL + f[0], "a": URL + f[1], "b": URL + f[2]}
    data.update(data_extra or {})
    return {"id": task_id, "annotations": anns, "drafts": [], "predictions": [], "data": data, "meta": {},
            "created_at": "2024-06-01T11:00:00.000000Z", "updated_at": "2024-06-01T12:00:00.000000Z",
            "inner_id": task_id, "total_annotations": len(anns), "cancelled_annotations": 0,
            "total_predictions": 0, "comment_count": 0, "project": 3, "updated_by": 1}


def test_label_studio_json_export(face_root, tmp_path):
    root, f = face_root
    tasks = [
        _task(1, f[0:3], [_ann(11, 1, "a"), _ann(12, {"id": 2, "email": "b@lab.org"}, "b"),
                          _ann(13, 3, cancelled=True)]),
        _task(2, f[3:6], [_ann(21, 9, "b", ground_truth=True), _ann(22, 1, "b"), _ann(23, 2, "a")]),
        _task(3, [f[6], f[6], f[7]], [_ann(31, 1, "a")]),                          # anchor == a
        _task(4, f[6:9], [_ann(41, 1, "maybe"), _ann(42, 2), _ann(43, None, "a"), _ann(44, 3, ["a", "b"])]),
        _task(5, f[9:12], []),                                                     # nobody answered: no record
        _task(6, [f[9], f[10], "faces/gone.jpg"], [_ann(61, 1, "A")]),
        {"id": 7, "annotations": [_ann(71, 1, "a")], "data": {"anchor": URL + f[0]}},  # data lacks a, b
        _task(8, f[0:3], [_ann(81, 1, "b")]),                                      # user 1 answers task-1 triplet again
    ]
    path = tmp_path / "project-3-at-2024-06-01.json"
    path.write_text(json.dumps(tasks, indent=1))
    result = ingest([path], "label-studio", root)
    assert result.read == 14 == result.accepted + result.rejected
    assert result.by_reason == {"malformed-row": 4, "cancelled": 1, "same-image": 1, "unknown-choice": 1,
                                "missing-image": 1, "duplicate": 1}
    j = result.judgments
    assert j["annotator_id"].tolist() == ["1", "2", "9", "1", "2"]
    assert j["choice"].tolist() == ["a", "b", "b", "b", "a"]
    assert j.loc[0, "anchor"] == f[0] and j.loc[0, "response_ms"] == 3250.0
    # ground truth of task 2 makes the other two answers gold, with the known answer b
    assert j["is_gold"].tolist() == [False, False, False, True, True]
    assert j.loc[3, "gold_choice"] == "b"
    assert result.rejects.set_index("location").loc["task 1 annotation 13", "reason"] == "cancelled"


def test_label_studio_json_min_and_file_errors(face_root, tmp_path):
    root, f = face_root
    items = [
        {"anchor": URL + f[0], "a": URL + f[1], "b": URL + f[2], "choice": "a", "id": 1, "annotator": 4,
         "annotation_id": 100, "created_at": "2024-06-01T12:00:00Z", "updated_at": "2024-06-01T12:00:00Z",
         "lead_time": 2.5},
        {"anchor": URL + f[0], "a": URL + f[1], "b": URL + f[2], "choice": "", "id": 1, "annotator": 5,
         "annotation_id": 101},
        {"anchor": URL + f[3], "a": URL + f[4], "b": URL + f[5], "choice": "b", "id": 2, "annotator": 5,
         "annotation_id": 102},
    ]
    path = tmp_path / "min.json"
    path.write_text(json.dumps(items))
    result = ingest([path], "label-studio", root)
    assert (result.read, result.accepted, result.by_reason) == (3, 2, {"malformed-row": 1})
    path.write_text('[{"id": 1,\n "annotations": [\n oops]}]')
    with pytest.raises(AnnotationError, match=rf"{path}:3: not valid JSON"):
        list(read_label_studio(path))
    path.write_text('{"tasks": []}')
    with pytest.raises(AnnotationError, match=rf"{path}:1: expected a list of tasks"):
        list(read_label_studio(path))


def test_labeling_config_matches_reader_and_sampled_tasks(face_root, tmp_path):
    root, f = face_root
    xml = ET.fromstring(labeling_config())
    images = {e.get("name"): e.get("value") for e in xml.iter("Image")}
    assert images == {"anchor": "$anchor", "a": "$a", "b": "$b"}
    choices = next(xml.iter("Choices"))
    assert choices.get("name") == "choice" and choices.get("toName") == "anchor"
    assert [c.get("alias") for c in choices.iter("Choice")] == ["a", "b"]
    # tasks written by `perface triplets sample`, answered in Label Studio, read back
    tri = pd.DataFrame({"anchor": [f[0], f[3]], "a": [f[1], f[4]], "b": [f[2], f[5]], "stratum": ["", ""]})
    tasks = to_label_studio_tasks(tri, url_prefix="http://localhost:8080/data/local-files/?d=")
    for i, task in enumerate(tasks):
        task.update({"id": i + 1, "annotations": [_ann(i + 1, 7, "b")]})
    path = tmp_path / "answered.json"
    path.write_text(json.dumps(tasks))
    result = ingest([path], "label-studio", root)   # *_path fields win over the URL
    assert result.accepted == 2 and result.judgments["anchor"].tolist() == [f[0], f[3]]
