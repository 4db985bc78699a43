"""selection_report over many targets: confusion share, selected-similarity distribution, no-candidate rate."""

from __future__ import annotations

import dataclasses

import numpy as np

from perface.selection import ReidThreshold, select_many, selection_report


def test_report_over_lfw_targets(gallery_head, targets_head):
    sels = select_many(targets_head, gallery_head, top=3)
    failures = [{"path": "wall.png", "status": "no_face", "error": "no face"}]
    r = selection_report(sels, gallery_head, failures)
    assert r["n_targets"] == len(targets_head) + 1 and r["n_usable"] == len(targets_head)
    assert r["unusable"] == {"count": 1, "by_status": {"no_face": 1}, "files": ["wall.png"]}
    assert r["n_selections"] == sum(len(s.candidates) for s in sels) > 50
    assert r["confusion"] == {"threshold": gallery_head.threshold.value, "confused": 0, "share": 0.0}
    assert r["own_identity_selected"] == 0
    empty = sum(not s.candidates for s in sels)
    assert r["no_candidate"] == {"count": empty, "rate": empty / len(sels)}
    sp = r["selected_perceptual_similarity"]
    band = gallery_head.default_band
    assert band.lo <= sp["min"] <= sp["median"] <= sp["max"] <= band.hi
    assert sum(sp["histogram"]["counts"]) == r["n_selections"]
    assert sp["histogram"]["edges"][0] == band.lo and sp["histogram"]["edges"][-1] == band.hi
    assert r["selected_identity_similarity"]["max"] < gallery_head.threshold.value
    for reason, n in r["excluded"].items():
        assert n == sum(s.excluded[reason] for s in sels)
    assert len(r["per_target"]) == len(sels)


def test_report_detects_confusion(gallery_base, targets_base):
    """The confusion share is recomputed from embeddings: selections made without the identity threshold, judged
    at the real threshold, show confusions (so a selection bug would show up)."""
    real = gallery_base.threshold
    unsafe = select_many(targets_base, gallery_base, band=(0.85, 1.0), max_identity_sim=1.0, top=5)
    judged = [dataclasses.replace(s, threshold=real) for s in unsafe]
    r = selection_report(judged, gallery_base)
    assert r["confusion"]["confused"] > 0 and 0 < r["confusion"]["share"] <= 1
    safe = selection_report(select_many(targets_base, gallery_base, band=(0.85, 1.0), top=5), gallery_base)
    assert safe["confusion"]["confused"] == 0 and safe["n_selections"] > 0


def test_report_counts_targets_without_candidates(gallery_base, targets_base):
    sels = select_many(targets_base, gallery_base, band=(0.99, 1.0), top=5,
                       max_identity_sim=ReidThreshold.given(0.5))
    r = selection_report(sels, gallery_base, per_target=False)
    assert r["no_candidate"] == {"count": len(sels), "rate": 1.0}
    assert r["n_selections"] == 0 and r["selected_perceptual_similarity"] == {"n": 0}
    assert "per_target" not in r
    assert np.isfinite(r["band"]["lo"])
