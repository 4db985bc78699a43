"""Amazon Mechanical Turk batch results: URL inputs, rejected assignments excluded, multi-triplet HITs, radio columns."""

from __future__ import annotations

import csv

import pytest

from perface.annotations.ingest import ingest
from perface.errors import AnnotationError

BUCKET = "https://perface-hits.s3.amazonaws.com/faces-v1/"
META = ["HITId", "HITTypeId", "Title", "Reward", "CreationTime", "MaxAssignments", "AssignmentId", "WorkerId",
        "AssignmentStatus", "AcceptTime", "SubmitTime", "AutoApprovalTime", "ApprovalTime", "RejectionTime",
        "RequesterFeedback", "WorkTimeInSeconds", "LifetimeApprovalRate", "Last30DaysApprovalRate",
        "Last7DaysApprovalRate"]


def _meta(i, worker, status, seconds="42"):
    return {"HITId": f"3HIT{i // 3:05d}", "HITTypeId": "3TYPE", "Title": "Which face looks more alike?",
            "Reward": "$0.05", "CreationTime": "Mon May 06 10:00:00 PDT 2024", "MaxAssignments": "3",
            "AssignmentId": f"3ASG{i:05d}", "WorkerId": worker, "AssignmentStatus": status,
            "AcceptTime": "Mon May 06 10:05:00 PDT 2024", "SubmitTime": "Mon May 06 10:05:42 PDT 2024",
            "AutoApprovalTime": "Thu May 09 10:05:42 PDT 2024",
            "ApprovalTime": "Tue May 07 09:00:00 PDT 2024" if status == "Approved" else "",
            "RejectionTime": "Tue May 07 09:00:00 PDT 2024" if status == "Rejected" else "",
            "RequesterFeedback": "failed attention checks" if status == "Rejected" else "",
            "WorkTimeInSeconds": seconds, "LifetimeApprovalRate": "100% (12/12)",
            "Last30DaysApprovalRate": "100% (12/12)", "Last7DaysApprovalRate": "100% (12/12)"}


def _write(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header, quoting=csv.QUOTE_ALL)
        w.writeheader()
        for r in rows:
            w.writerow(r)


def test_mturk_batch_results(face_root, tmp_path):
    root, f = face_root
    header = META + ["Input.anchor_url", "Input.a_url", "Input.b_url", "Input.gold", "Answer.choice",
                     "Approve", "Reject"]
    tri = {"Input.anchor_url": BUCKET + f[0], "Input.a_url": BUCKET + f[1], "Input.b_url": BUCKET + f[2],
           "Input.gold": ""}
    gold = {"Input.anchor_url": BUCKET + f[3], "Input.a_url": BUCKET + f[4], "Input.b_url": BUCKET + f[5],
            "Input.gold": "a"}
    rows = [
        {**_meta(0, "A1X", "Approved"), **tri, "Answer.choice": "a"},
        {**_meta(1, "A2Y", "Submitted"), **tri, "Answer.choice": "b"},
        {**_meta(2, "A3Z", "Rejected"), **tri, "Answer.choice": "b"},           # rejected assignment: excluded
        {**_meta(3, "A1X", "Approved"), **gold, "Answer.choice": "a"},
        {**_meta(4, "A2Y", "Approved"), **gold, "Answer.choice": "b"},
        {**_meta(5, "", "Submitted"), **gold, "Answer.choice": "a"},              # no worker id
        {**_meta(6, "A4W", "Approved"), **gold, "Answer.choice": ""},             # no answer
        {**_meta(7, "A4W", "Approved", seconds="soon"), **tri, "Answer.choice": "a"},
        {**_meta(8, "A5V", "Approved"), **tri, "Input.b_url": "https://elsewhere.org/x.jpg",
         "Answer.choice": "a"},
    ]
    path = tmp_path / "Batch_5012345_batch_results.csv"
    _write(path, header, rows)
    result = ingest([path], "mturk", root, url_prefixes=[BUCKET])
    assert result.read == 9 == result.accepted + result.rejected
    assert result.by_reason == {"malformed-row": 3, "assignment-rejected": 1, "unresolved-url": 1}
    j = result.judgments
    assert j["annotator_id"].tolist() == ["A1X", "A2Y", "A1X", "A2Y"]
    assert j["anchor"].tolist() == [f[0], f[0], f[3], f[3]]
    assert j["response_ms"].tolist() == [42000.0] * 4
    assert j["is_gold"].tolist() == [False, False, True, True] and j["gold_choice"].tolist()[2:] == ["a", "a"]
    assert "3ASG00002" in result.rejects.set_index("reason").loc["assignment-rejected", "detail"]


def test_mturk_several_triplets_per_hit_with_radio_columns(face_root, tmp_path):
    root, f = face_root
    header = META + ["Input.anchor_1", "Input.a_1", "Input.b_1", "Input.anchor_2", "Input.a_2", "Input.b_2",
                     "Answer.choice_1.a", "Answer.choice_1.b", "Answer.choice_2.a", "Answer.choice_2.b"]
    items = {"Input.anchor_1": f[0], "Input.a_1": f[1], "Input.b_1": f[2],
             "Input.anchor_2": f[3], "Input.a_2": f[4], "Input.b_2": f[5]}
    rows = [
        {**_meta(0, "W1", "Approved", "30"), **items, "Answer.choice_1.a": "true", "Answer.choice_1.b": "false",
         "Answer.choice_2.a": "false", "Answer.choice_2.b": "true"},
        {**_meta(1, "W2", "Approved", "30"), **items, "Answer.choice_1.a": "true", "Answer.choice_1.b": "true",
         "Answer.choice_2.a": "false", "Answer.choice_2.b": "true"},
    ]
    path = tmp_path / "batch.csv"
    _write(path, header, rows)
    with open(path, "a") as fh:                      # a truncated row: both of its triplets are rejected
        fh.write('"3HIT9","3TYPE","Which face"\n')
    result = ingest([path], "mturk", root)
    assert result.read == 6 == result.accepted + result.rejected
    assert result.accepted == 3
    assert result.by_reason == {"malformed-row": 2, "unknown-choice": 1}
    assert result.judgments["choice"].tolist() == ["a", "b", "b"]
    assert result.judgments["response_ms"].tolist() == [15000.0] * 3


def test_mturk_missing_columns(face_root, tmp_path):
    root, f = face_root
    path = tmp_path / "batch.csv"
    _write(path, META + ["Input.anchor", "Input.a", "Input.b"], [{**_meta(0, "W1", "Approved"),
                                                                  "Input.anchor": f[0], "Input.a": f[1],
                                                                  "Input.b": f[2]}])
    with pytest.raises(AnnotationError, match=rf"{path}:1: missing column\(s\) Answer.choice"):
        ingest([path], "mturk", root)
    _write(path, ["HITId", "Input.anchor"], [{"HITId": "1", "Input.anchor": "x"}])
    with pytest.raises(AnnotationError, match=rf"{path}:1: missing column\(s\) WorkerId, AssignmentStatus"):
        ingest([path], "mturk", root)
