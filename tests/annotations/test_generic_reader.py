"""Generic CSV / JSONL reader with a column mapping, through ingest: every row accepted or rejected with a reason."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from perface.annotations.ingest import REJECT_REASONS, ingest, write_ingest
from perface.errors import AnnotationError


def _export(root, faces) -> str:
    f = faces
    rows = [
        "query,left,right,answer,worker,ms,when",
        f"{f[0]},{f[1]},{f[2]},left,w1,1500,2024-05-01T10:00:00Z",              # 2 ok
        f"{f[0]},{f[1]},{f[2]},right,w2,1800,2024-05-01T10:00:05Z",             # 3 ok
        f"{f[0]},{f[2]},{f[1]},right,w1,900,2024-05-01T10:01:00Z",              # 4 duplicate of line 2 (swapped)
        f"./{f[3]},{f[4]},{f[5]},LEFT,w3,,",                                    # 5 ok (./ collapsed, no time)
        f"{f[3]},{f[3]},{f[5]},left,w3,700,",                                   # 6 same image
        f"{f[3]},{f[4]},faces/nope.jpg,left,w3,700,",                           # 7 missing image
        f"{f[3]},{f[4]},{f[5]},dunno,w4,700,",                                  # 8 unknown choice
        f"../outside.jpg,{f[4]},{f[5]},left,w4,700,",                           # 9 escapes root
        f"/etc/hostname,{f[4]},{f[5]},left,w4,700,",                            # 10 absolute outside root
        f"{root}/{f[6]},{f[7]},{f[8]},{f[8]},w5,650,",                          # 11 ok: absolute inside, choice = b's path
        f"{f[6]},{f[7]},{f[8]},left,,650,",                                     # 12 no annotator
        f"{f[6]},{f[7]},left,w6",                                               # 13 ragged row
        f"https://cdn.example.com/{f[6]},{f[7]},{f[8]},left,w6,1,",             # 14 URL nobody maps
        f"{f[6]},{f[7]},{f[8]},right,w6,-5,",                                   # 15 negative time
    ]
    return "\n".join(rows) + "\n"


MAPPING = {"anchor": "query", "a": "left", "b": "right", "choice": "answer", "annotator_id": "worker",
           "response_ms": "ms", "timestamp": "when"}
CHOICES = {"left": "a", "right": "b"}


def test_generic_csv_every_row_accounted_for(face_root, tmp_path):
    root, faces = face_root
    path = tmp_path / "export.csv"
    path.write_text(_export(root, faces))
    result = ingest([path], "generic", root, reader_options={"columns": MAPPING, "choice_map": CHOICES})
    assert result.read == 14 == result.accepted + result.rejected
    assert result.accepted == 4
    assert result.by_reason == {"malformed-row": 3, "path-escapes-root": 2, "duplicate": 1, "missing-image": 1,
                                "same-image": 1, "unknown-choice": 1, "unresolved-url": 1}
    assert set(result.by_reason) <= set(REJECT_REASONS)
    j = result.judgments
    assert j["choice"].tolist() == ["a", "b", "a", "b"]
    assert j.loc[2, "anchor"] == faces[3]                       # "./" removed
    assert j.loc[3, "anchor"] == faces[6]                       # absolute path inside the root made relative
    assert j["response_ms"].tolist()[:2] == [1500.0, 1800.0]
    rej = result.rejects.set_index("location")
    assert rej.loc["line 4", "reason"] == "duplicate"
    assert rej.loc["line 7", "reason"] == "missing-image" and "faces/nope.jpg" in rej.loc["line 7", "detail"]
    assert rej.loc["line 13", "reason"] == "malformed-row"
    assert rej.loc["line 15", "reason"] == "malformed-row" and "response_ms" in rej.loc["line 15", "detail"]

    paths = write_ingest(result, tmp_path / "out")
    rejects = pd.read_csv(paths["rejects"], keep_default_na=False)
    assert len(rejects) == result.rejected and rejects["reason"].ne("").all() and rejects["detail"].ne("").all()
    assert json.loads(paths["summary"].read_text())["read"] == 14


def test_generic_jsonl_with_broken_lines(face_root, tmp_path):
    root, f = face_root
    lines = [
        json.dumps({"anchor": f[0], "a": f[1], "b": f[2], "choice": "a", "annotator_id": "u1", "is_gold": True,
                    "gold_choice": "a"}),
        "{not json",
        json.dumps([f[0], f[1], f[2]]),
        json.dumps({"anchor": f[0], "a": f[1], "choice": "b", "annotator_id": "u2"}),        # no b
        json.dumps({"anchor": f[0], "a": f[1], "b": f[2], "choice": "b", "annotator_id": "u2", "is_gold": "perhaps"}),
        "",
        json.dumps({"anchor": f[0], "a": f[1], "b": f[2], "choice": "b", "annotator_id": "u3"}),
    ]
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = ingest([path], "generic", root)
    assert result.read == 6 == result.accepted + result.rejected
    assert result.accepted == 2 and result.by_reason == {"malformed-row": 4}
    assert result.rejects["location"].tolist() == ["line 2", "line 3", "line 4", "line 5"]
    assert bool(result.judgments.loc[0, "is_gold"]) and result.judgments.loc[0, "gold_choice"] == "a"


def test_generic_missing_columns_is_a_file_error(face_root, tmp_path):
    root, f = face_root
    path = tmp_path / "bad.csv"
    path.write_text(f"anchor,a,b,answer\n{f[0]},{f[1]},{f[2]},a\n")
    with pytest.raises(AnnotationError) as err:
        ingest([path], "generic", root)
    msg = str(err.value)
    assert f"{path}:1:" in msg and "choice" in msg and "annotator_id" in msg and "--map" in msg
    jl = tmp_path / "bad.jsonl"
    jl.write_text("\n" + json.dumps({"query": f[0]}) + "\n")
    with pytest.raises(AnnotationError, match=rf"{jl}:2: missing required column"):
        ingest([jl], "generic", root)
