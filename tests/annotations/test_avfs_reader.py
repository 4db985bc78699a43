"""AVFS (A View From Somewhere) odd-one-out reader: 2AFC conversion, malformed sets and questions, file errors."""

from __future__ import annotations

import json
import os

import pytest

from perface.annotations.ingest import ingest
from perface.annotations.readers.avfs import avfs_image_path, read_avfs
from perface.errors import AnnotationError


@pytest.fixture()
def ffhq_root(tmp_path, data_root, utk_labels):
    """Root with ffhq160x160/NNN00/NNNNN.png for ids 1..5 and 12345 (links to real face images)."""
    root = tmp_path / "avfs_root"
    for k, image_id in enumerate([1, 2, 3, 4, 5, 12345]):
        rel = avfs_image_path(image_id)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(data_root / "utkface" / utk_labels["path"].iloc[k * 300], root / rel)
    return root


def test_image_path_layout():
    assert avfs_image_path(12345) == "ffhq160x160/12000/12345.png"
    assert avfs_image_path(7) == "ffhq160x160/00000/00007.png"
    assert avfs_image_path(999, "imgs") == "imgs/00000/00999.png"


def test_odd_one_out_becomes_two_judgments(tmp_path):
    path = tmp_path / "ooo.json"
    path.write_text(json.dumps({"0": {"triplet_questions": [[1, 2, 3], [1, 2, 3]], "odd_one_out_positions": [2, 0],
                                      "split": [1, 0], "annotator_id": "ann-a"}}))
    recs = list(read_avfs(path))
    p = {i: avfs_image_path(i) for i in (1, 2, 3)}
    got = [(r.anchor, r.a, r.b, r.choice, r.split) for r in recs]
    # odd = image 3: with anchor 1, image 2 (candidate a) is closer; with anchor 2, image 1 (candidate a)
    # odd = image 1: with anchor 2, candidates (1, 3) -> 3 (b) closer; with anchor 3, candidates (1, 2) -> 2 (b)
    assert got == [(p[1], p[2], p[3], "a", "train"), (p[2], p[1], p[3], "a", "train"),
                   (p[2], p[1], p[3], "b", "val"), (p[3], p[1], p[2], "b", "val")]
    assert all(r.annotator_id == "ann-a" and r.source == "avfs" for r in recs)


def test_avfs_export_with_malformed_entries(ffhq_root, tmp_path):
    data = {
        "0": {"triplet_questions": [[1, 2, 3], [3, 4, 5], [1, 2, 99], [1, 2], [1, "x", 3], [2, 3, 4], [4, 5, 1]],
              "odd_one_out_positions": [0, 2, 1, 0, 0, 3],
              "split": [1, 1, 1, 1, 1, 1, 1], "annotator_id": "A1"},
        "1": {"triplet_questions": [[1, 2, 3], [3, 2, 1], [1, 2, 12345]], "odd_one_out_positions": [0, 1, 2],
              "split": [0, 0, 7], "annotator_id": "A2"},
        "2": {"annotator_id": "A3", "odd_one_out_positions": [1]},
        "3": "garbage",
        "4": {"triplet_questions": [[1, 2, 3]], "odd_one_out_positions": [1], "annotator_id": ""},
    }
    path = tmp_path / "ooo_train_val.json"
    path.write_text(json.dumps(data, indent=2))
    result = ingest([path], "avfs", ffhq_root)
    assert result.read == result.accepted + result.rejected
    # set 0: q0, q1 ok (2 judgments each); q2 image 99 missing (2 rejects); q3 two ids; q4 id "x";
    #        q5 position 3; q6 no position (1 malformed each)
    # set 1: q0 [1,2,3] odd 1 -> (2; 1,3 -> b), (3; 1,2 -> b); q1 [3,2,1] odd 2 -> (3; 2,1 -> b) repeats A2's
    #        answer on anchor 3 / {1,2}: duplicate, (1; 3,2 -> a) ok; q2 split 7: malformed
    # set 2 no questions, set 3 not an object, set 4 no annotator: 1 malformed each
    assert result.by_reason == {"malformed-row": 8, "missing-image": 2, "duplicate": 1}
    assert result.accepted == 4 + 2 + 1
    assert result.read == 18
    j = result.judgments
    assert set(j["split"]) == {"train", "val"}
    assert (j["source"] == "avfs").all()
    locs = set(result.rejects["location"])
    assert "set '0' question 5" in locs and "set '3'" in locs and "set '2'" in locs


def test_not_json_names_file_and_line(tmp_path):
    path = tmp_path / "ooo.json"
    path.write_text('{\n  "0": {"triplet_questions": [[1, 2, 3]],\n  "odd_one_out_positions": [0,, ]}\n}\n')
    with pytest.raises(AnnotationError, match=rf"{path}:3: not valid JSON"):
        list(read_avfs(path))
    path.write_text(json.dumps({"0": {"questions": []}}))
    with pytest.raises(AnnotationError, match=rf"{path}:1: no set has 'triplet_questions'"):
        list(read_avfs(path))
