"""The re-identification threshold: measured with the identity model at a FAR on pairs, cached per model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from perface.errors import SelectionError
from perface.selection import ReidThreshold, reid_threshold


def test_threshold_is_far_quantile_of_different_pairs(threshold, gallery_pairs_csv, base_model):
    from perface.evaluation.embedding_cache import embed_paths

    pairs = pd.read_csv(gallery_pairs_csv)
    files = sorted(set(pairs.a) | set(pairs.b))
    emb = {f: r.embedding for f, r in zip(files, embed_paths(base_model, files)) if r.status == "ok"}
    ok = pairs.a.isin(emb) & pairs.b.isin(emb)
    sims = np.array([np.dot(emb[a].astype(np.float64), emb[b]) for a, b in zip(pairs.a[ok], pairs.b[ok])])
    diff = sims[pairs.same[ok].to_numpy() == 0]
    assert threshold.n_pairs == ok.sum() and threshold.n_different == len(diff) > 40_000
    assert threshold.far == 1e-3 and threshold.model == "base" and threshold.source == str(gallery_pairs_csv)
    allowed = int(1e-3 * len(diff))  # false accepts at FAR 1e-3: T sits just above the (allowed+1)-th impostor
    assert np.sum(diff >= threshold.value + 1e-9) <= allowed < np.sum(diff >= threshold.value - 1e-9)
    assert 0.88 < threshold.value < 0.95  # dlib base: full LFW pairs.txt gives 0.922
    assert 0.5 < threshold.tar <= 1.0


def test_threshold_is_cached_per_model(threshold, gallery_pairs_csv, base_model, monkeypatch):
    import perface.evaluation.evaluate as evaluate

    def boom(*args, **kwargs):
        raise AssertionError("the cached threshold should have been used")

    monkeypatch.setattr(evaluate, "embed_images", boom)
    again = reid_threshold(base_model, far=1e-3, pairs=gallery_pairs_csv, root="/")
    assert again == threshold
    with pytest.raises(AssertionError, match="cached"):  # another FAR is another measurement
        reid_threshold(base_model, far=1e-2, pairs=gallery_pairs_csv, root="/")


def test_threshold_errors(monkeypatch, tmp_path, base_model):
    monkeypatch.delenv("PERFACE_DATA", raising=False)
    monkeypatch.setattr("perface.io.files._checkout_data", lambda: None)  # no shared/data beside the checkout
    with pytest.raises(SelectionError, match="PERFACE_DATA"):
        reid_threshold(base_model)
    monkeypatch.setenv("PERFACE_DATA", str(tmp_path))
    with pytest.raises(SelectionError, match="pairs.txt not found"):
        reid_threshold(base_model)
    with pytest.raises(SelectionError, match="FAR"):
        reid_threshold(base_model, far=0)
    with pytest.raises(SelectionError, match=r"\[-1, 1\]"):
        ReidThreshold.given(1.5)
    t = ReidThreshold.given(0.9)
    assert ReidThreshold.from_dict(json.loads(json.dumps(t.to_dict()))) == t
