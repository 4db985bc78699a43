"""Selection on LFW: band, threshold and attribute constraints hold for every candidate, the target's own identity
is never chosen, ranking and results are deterministic."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from perface.errors import SelectionError, SettingsError, UsageError
from perface.selection import (EXCLUSION_REASONS, Band, Gallery, Target, embed_targets, select, select_files,
                               select_many, selection_report)


def _check(sel, gallery):
    """Every documented rule, recomputed from the gallery arrays (not from the candidates' own fields)."""
    tg, b, t = sel.target, sel.band, sel.threshold.value
    assert sum(sel.excluded.values()) + sel.qualified == len(gallery)
    assert set(sel.excluded) == set(EXCLUSION_REASONS)
    assert len(sel.candidates) == min(sel.top, sel.qualified)
    for c in sel.candidates:
        row = gallery.row_of(c.identity)
        p = float(gallery.perceptual[row].astype(np.float64) @ tg.perceptual.astype(np.float64))
        s = float(gallery.identity[row].astype(np.float64) @ tg.identity_embedding.astype(np.float64))
        assert c.perceptual_similarity == pytest.approx(p, abs=1e-9)
        assert c.identity_similarity == pytest.approx(s, abs=1e-9)
        assert b.lo <= p <= b.hi
        assert s < t
        assert c.identity != tg.identity
        for a in sel.same:
            assert c.attributes[a] == sel.target_attributes[a] == (tg.attributes.get(a) or
                                                                   gallery.attributes_of(gallery.row_of(tg.identity))[a])
    keys = [(abs(c.perceptual_similarity - b.centre), c.identity) for c in sel.candidates]
    assert keys == sorted(keys)
    assert [c.rank for c in sel.candidates] == list(range(1, len(sel.candidates) + 1))


@pytest.mark.parametrize("which", ["base", "head"])
def test_constraints_hold_for_every_candidate(which, request):
    gallery = request.getfixturevalue(f"gallery_{which}")
    targets = request.getfixturevalue(f"targets_{which}")
    sels = select_many(targets, gallery, top=5)
    assert sum(len(s.candidates) for s in sels) > 100  # the test has something to check
    for sel in sels:
        _check(sel, gallery)
        if gallery.row_of(sel.target.identity) is not None:
            assert sel.excluded["same_identity"] == 1
    gendered = select_many(targets, gallery, top=5, same=["gender"])
    assert sum(len(s.candidates) for s in gendered) > 50
    for sel in gendered:
        _check(sel, gallery)
    females = [s for s in gendered if s.target.attributes["gender"] == "female"]
    assert females and all(c.attributes["gender"] == "female" for s in females for c in s.candidates)


def test_perceptual_and_identity_embeddings_play_their_roles(gallery_head, targets_head):
    """With a perceptual model different from the identity model, the band applies to perceptual similarity
    and the threshold to identity similarity."""
    sels = select_many(targets_head, gallery_head, top=3, band=(-1, 1), max_identity_sim=1.0)
    diffs = [abs(c.perceptual_similarity - c.identity_similarity) for s in sels for c in s.candidates]
    assert np.median(diffs) > 0.03
    band = gallery_head.default_band
    sels = select_many(targets_head, gallery_head, top=50)
    for sel in sels:
        _check(sel, gallery_head)
    identity_sims = [c.identity_similarity for s in sels for c in s.candidates]
    assert min(identity_sims) < band.lo or max(identity_sims) > band.hi  # the band is not on identity similarity


def test_own_identity_never_selected(gallery_base, targets_base):
    own = [t for t in targets_base if gallery_base.row_of(t.identity) is not None]
    assert len(own) >= 35
    # no band, no threshold: only the name keeps a target's own identity out
    for sel in select_many(own, gallery_base, band=(-1, 1), max_identity_sim=1.0, top=len(gallery_base)):
        assert sel.qualified == len(gallery_base) - 1 and sel.excluded["same_identity"] == 1
        assert sel.target.identity not in {c.identity for c in sel.candidates}
    # ... and without the name, the identity threshold alone excludes (nearly) every own identity
    anonymous = [dataclasses.replace(t, identity=None) for t in own]
    sels = select_many(anonymous, gallery_base, band=(-1, 1), top=len(gallery_base))
    leaked = sum(t.identity in {c.identity for c in s.candidates} for t, s in zip(own, sels))
    assert leaked <= 0.1 * len(own)
    unprotected = select_many(anonymous, gallery_base, band=(-1, 1), max_identity_sim=1.0, top=len(gallery_base))
    assert all(t.identity in {c.identity for c in s.candidates} for t, s in zip(own, unprotected))


def test_stricter_threshold_only_removes_candidates(gallery_base, targets_base):
    t = gallery_base.threshold.value
    loose = select_many(targets_base, gallery_base, band=(0.8, 1.0), top=1000)
    strict = select_many(targets_base, gallery_base, band=(0.8, 1.0), top=1000, max_identity_sim=t - 0.02)
    def excluded(sels):
        return sum(s.excluded["identity_similarity"] for s in sels)

    assert excluded(strict) > excluded(loose)
    for a, b in zip(loose, strict):
        _check(b, gallery_base)
        assert {c.identity for c in b.candidates} <= {c.identity for c in a.candidates}


def test_deterministic(gallery_base, targets_base, tmp_path):
    first = [s.to_dict() for s in select_many(targets_base, gallery_base, top=7, same="gender")]
    again = [s.to_dict() for s in select_many(targets_base, gallery_base, top=7, same="gender")]
    assert first == again
    one = [select(t, gallery_base, top=7, same="gender").to_dict() for t in targets_base[:10]]
    assert one == first[:10]  # batched == one at a time
    # the gallery's row order does not matter (ties are broken by identity name)
    perm = np.random.default_rng(0).permutation(len(gallery_base))
    shuffled = Gallery(gallery_base.identities[perm], gallery_base.n_images[perm], gallery_base.perceptual[perm],
                       gallery_base.identity[perm], gallery_base.attributes.iloc[perm],
                       [gallery_base.images[i] for i in perm], gallery_base.info)
    assert [s.to_dict() for s in select_many(targets_base, shuffled, top=7, same="gender")] == first
    # and reading it back from disk changes nothing
    loaded = Gallery.load(gallery_base.save(tmp_path / "g.parquet"))
    assert [s.to_dict() for s in select_many(targets_base, loaded, top=7, same="gender")] == first


def test_ties_broken_by_identity_name():
    g = Gallery(["c", "a", "b", "d"], [1] * 4, np.tile([[1.0, 0.0]], (4, 1)), np.tile([[0.0, 1.0]], (4, 1)),
                info={"band": Band(0.5, 1.0).to_dict()})
    t = Target("t.jpg", np.array([1.0, 0.0], np.float32), np.array([1.0, 0.0], np.float32), identity="d")
    sel = select(t, g, max_identity_sim=0.5, top=10)
    assert [c.identity for c in sel.candidates] == ["a", "b", "c"]


def test_select_from_an_image_loads_the_gallery_models(gallery_head, targets_head, lfw_split):
    image = lfw_split["own_targets"][0]
    sel = select(image, gallery_head, top=4, labels=lfw_split["labels"])  # models: recorded in the gallery
    expected = select(targets_head[0], gallery_head, top=4)
    assert sel.to_dict() == expected.to_dict()


def test_selection_errors(gallery_base, targets_base):
    t = targets_base[0]
    with pytest.raises(SettingsError, match="--same age: not an attribute of gallery .*its attributes: gender"):
        select(t, gallery_base, same=["age"])
    with pytest.raises(SelectionError, match="unknown"):
        select(dataclasses.replace(t, identity=None, attributes={}), gallery_base, same=["gender"])
    with pytest.raises(SelectionError, match="band"):
        select(t, gallery_base, band=(0.9, 0.8))
    with pytest.raises(SettingsError, match="--top 0: must be at least 1"):
        select(t, gallery_base, top=0)
    with pytest.raises(SelectionError, match="embedding sizes"):
        select(dataclasses.replace(t, perceptual=t.perceptual[:64]), gallery_base)
    no_t = Gallery(gallery_base.identities, gallery_base.n_images, gallery_base.perceptual, gallery_base.identity,
                   info={**gallery_base.info, "reid_threshold": None})
    with pytest.raises(SelectionError, match="--max-identity-sim"):
        select(t, no_t)
    assert select(t, no_t, max_identity_sim=0.9).threshold.value == 0.9


def test_select_files_one_target_or_a_summary(gallery_head, head_model, base_model, lfw_split, tmp_path):
    """select_files (what `perface select` calls) gives select()'s answer for one target and selection_report's
    for many; it refuses several targets without summary mode."""
    images = lfw_split["own_targets"][:5]
    models = {"model": head_model, "identity_model": base_model, "labels": lfw_split["labels"]}
    one = select_files(images[:1], gallery_head, top=4, **models)
    assert not one.summary and one.report is None
    assert one.to_dict() == select(images[0], gallery_head, head_model, identity_model=base_model, top=4,
                                   labels=lfw_split["labels"]).to_dict()
    assert one.lines()[0] == f"target    {images[0]} (identity: {lfw_split['gallery_ids'][0]})"
    many = select_files(images, gallery_head, top=3, summary=True, **models)
    targets, failures = embed_targets(images, head_model, base_model, labels=lfw_split["labels"])
    expected = selection_report(select_many(targets, gallery_head, top=3), gallery_head, failures)
    assert many.to_dict() == expected and many.report["n_targets"] == 5
    assert many.lines()[0].startswith("targets                 5 (5 used")
    md = many.write_report(tmp_path / "report")
    assert json.loads((tmp_path / "report" / "metrics.json").read_text()) == expected and md.name == "report.md"
    with pytest.raises(UsageError, match="2 targets given.*--summary"):
        select_files(images[:2], gallery_head, **models)
    with pytest.raises(SettingsError, match="--band '0.9': expected LO:HI"):
        select_files(images[:1], gallery_head, band="0.9", **models)
    with pytest.raises(SettingsError, match=r"--max-identity-sim 2: a cosine similarity in \[-1, 1\]"):
        select_files(images[:1], gallery_head, max_identity_sim=2.0, **models)
