"""Canonical judgment / triplet files: reading, writing (CSV and Parquet) and validation errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perface.annotations.schema import (read_judgments, read_triplets, write_judgments, write_triplets)
from perface.errors import AnnotationError


def test_minimal_triplet_file_is_valid(tmp_path):
    path = tmp_path / "eval.csv"
    path.write_text("anchor,a,b,p_a\nx/1.jpg,x/2.jpg,x/3.jpg,0.75\nx/1.jpg,x/3.jpg,x/4.jpg,0\n")
    t = read_triplets(path)
    assert list(t.columns) == ["anchor", "a", "b", "p_a"]
    assert t["p_a"].tolist() == [0.75, 0.0]


def test_votes_give_p_a_and_parquet_round_trip(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("anchor,a,b,n_a,n_b,split,source\nq.jpg,r.jpg,s.jpg,3,1,train,mturk\nq.jpg,s.jpg,t.jpg,0,2,test,mturk\n")
    t = read_triplets(path)
    assert t["p_a"].tolist() == [0.75, 0.0]
    assert str(t["n_a"].dtype) == "Int64"
    for ext in ("csv", "parquet"):
        out = write_triplets(t, tmp_path / f"copy.{ext}")
        back = read_triplets(out)
        pd.testing.assert_frame_equal(back, t)


def test_judgments_round_trip(tmp_path):
    j = pd.DataFrame({"anchor": ["q.jpg", "q.jpg"], "a": ["r.jpg", "s.jpg"], "b": ["s.jpg", "r.jpg"],
                      "choice": ["A", "b"], "annotator_id": ["w1", "w2"], "response_ms": [1200.0, np.nan],
                      "is_gold": [True, False], "gold_choice": ["a", ""]})
    for ext in ("csv", "parquet"):
        out = write_judgments(j, tmp_path / f"j.{ext}")
        back = read_judgments(out)
        assert back["choice"].tolist() == ["a", "b"]
        assert back["is_gold"].tolist() == [True, False]
        assert back["response_ms"].iloc[0] == 1200.0 and np.isnan(back["response_ms"].iloc[1])


@pytest.mark.parametrize("text, where, words", [
    ("anchor,a,p_a\nx,y,0.5\n", ":1:", "missing required column(s) b"),
    ("anchor,a,b\nx,y,z\n", ":1:", "needs a p_a column"),
    ("anchor,a,b,p_a\nx,y,z,0.5\nx,y,w,1.5\n", ":3:", "not a number in [0, 1]"),
    ("anchor,a,b,p_a\nx,y,z,0.5\nx,x,w,0.5\n", ":3:", "same image appears twice"),
    ("anchor,a,b,n_a,n_b,p_a\nx,y,z,1,1,0.9\n", ":2:", "does not equal n_a/(n_a+n_b)"),
    ("anchor,a,b,n_a,n_b\nx,y,z,1,-2\n", ":2:", "not a non-negative whole number"),
    ("anchor,a,b,p_a\n,y,z,0.5\n", ":2:", "empty 'anchor' path"),
    ("", ":1:", "empty file"),
])
def test_malformed_triplet_files_name_file_and_line(tmp_path, text, where, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(AnnotationError) as err:
        read_triplets(path)
    msg = str(err.value)
    assert f"{path}{where}" in msg and words in msg
    assert "\n" not in msg


def test_malformed_judgments_and_parquet_rows(tmp_path):
    path = tmp_path / "j.csv"
    path.write_text("anchor,a,b,choice,annotator_id\nq,r,s,a,w1\nq,r,s,maybe,w2\n")
    with pytest.raises(AnnotationError, match=r"j\.csv:3: choice 'maybe' is not 'a' or 'b'"):
        read_judgments(path)
    path.write_text("anchor,a,b,choice\nq,r,s,a\n")
    with pytest.raises(AnnotationError, match=r"j\.csv:1: missing required column\(s\) annotator_id"):
        read_judgments(path)
    pq = tmp_path / "t.parquet"
    pd.DataFrame({"anchor": ["q", "q"], "a": ["r", "r"], "b": ["s", "t"], "p_a": [0.5, 2.0]}).to_parquet(pq)
    with pytest.raises(AnnotationError, match=r"t\.parquet: row 2: p_a '2.0'"):
        read_triplets(pq)
