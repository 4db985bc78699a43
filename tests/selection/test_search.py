"""Exact numpy search and the FAISS index (recall@K against exact search).

The recall test uses a synthetic gallery, since it is about the index, not about faces: unit vectors with a
low intrinsic dimension (8-d latent factors mapped into 64-d, plus noise), as face embeddings are. On i.i.d.
uniform vectors in 64-d every point is nearly orthogonal to every other and no index beats a full scan; the
calibration would then simply visit every list.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from perface.errors import GalleryError
from perface.selection import EXACT_LIMIT, ExactSearch, Gallery, Target, make_search, select_many
from perface.selection.band import gallery_band


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _structured(rng, n, latent, dim=64, noise=0.08):
    mixing = np.random.default_rng(123).standard_normal((latent, dim))  # the same for gallery and queries
    return _unit(rng.standard_normal((n, latent)) @ mixing + noise * rng.standard_normal((n, dim)))


def _gallery(x):
    band, _ = gallery_band(x)
    n = len(x)
    return Gallery([f"id{i:06d}" for i in range(n)], np.ones(n), x, x, info={"band": band.to_dict()})


def test_exact_search_finds_every_row_at_or_above_lo():
    rng = np.random.default_rng(0)
    x = _unit(rng.standard_normal((3000, 32)))
    q = _unit(rng.standard_normal((5, 32)))
    for qi, ids in zip(q, ExactSearch(x).at_least(q, 0.2)):
        s = x @ qi
        assert set(np.flatnonzero(s >= 0.2)) <= set(ids) <= set(np.flatnonzero(s >= 0.2 - 1e-3))


def test_auto_is_exact_below_the_limit():
    x = _unit(np.random.default_rng(0).standard_normal((100, 8)))
    assert make_search(x, "auto").kind == "exact" and EXACT_LIMIT == 100_000
    with pytest.raises(GalleryError, match="expected auto"):
        make_search(x, "annoy")


def test_faiss_missing_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    x = _unit(np.random.default_rng(0).standard_normal((100, 8)))
    with pytest.raises(GalleryError, match="pip install faiss-cpu"):
        make_search(x, "faiss")
    assert make_search(x, "auto").kind == "exact"


def test_faiss_recall_at_k_against_exact():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    gallery = _gallery(_structured(rng, 20_000, latent=8))
    queries = _structured(rng, 300, latent=8)  # held out: not the gallery rows used for calibration
    targets = [Target(f"q{i}", q, q) for i, q in enumerate(queries)]
    k = 10
    exact = select_many(targets, gallery, top=k, max_identity_sim=1.0, index="exact")
    approx = select_many(targets, gallery, top=k, max_identity_sim=1.0, index="faiss")
    info = approx[0].search
    assert info["kind"] == "faiss" and info["calibrated_recall"] >= 0.99
    assert info["nprobe"] <= info["nlist"] // 2  # the index really skips lists
    hits = total = 0
    for e, a in zip(exact, approx):
        want = [c.identity for c in e.candidates]
        got = [c.identity for c in a.candidates]
        hits += len(set(want) & set(got))
        total += len(want)
        # whatever the index finds is scored exactly: same values, same rules
        found = {c.identity: c.perceptual_similarity for c in e.candidates}
        for c in a.candidates:
            if c.identity in found:
                assert c.perceptual_similarity == found[c.identity]
    assert total > 200 * k * 0.9
    assert hits / total >= 0.99, f"recall@{k} = {hits / total:.4f}"


def test_faiss_index_is_kept_beside_the_gallery(tmp_path, monkeypatch):
    pytest.importorskip("faiss")
    from perface.selection.search import FaissSearch

    rng = np.random.default_rng(1)
    g = _gallery(_structured(rng, 4000, latent=8))
    g.info["content_sha256"] = g._content_hash()
    g.save(tmp_path / "g.parquet")
    targets = [Target(f"q{i}", q, q) for i, q in enumerate(_structured(rng, 20, latent=8))]
    first = [s.to_dict() for s in select_many(targets, g, top=5, max_identity_sim=1.0, index="faiss")]
    assert (tmp_path / "g.parquet.faiss").is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("the saved index should have been used")

    monkeypatch.setattr(FaissSearch, "__init__", no_training)
    again = Gallery.load(tmp_path / "g.parquet")
    assert [s.to_dict() for s in select_many(targets, again, top=5, max_identity_sim=1.0, index="faiss")] == first
    # a different gallery under the same name does not reuse it
    other = Gallery(g.identities, g.n_images, g.perceptual[::-1].copy(), g.identity, info=dict(g.info))
    other.info["content_sha256"] = other._content_hash()
    other.save(tmp_path / "g.parquet")
    with pytest.raises(AssertionError, match="saved index"):
        select_many(targets, Gallery.load(tmp_path / "g.parquet"), top=5, max_identity_sim=1.0, index="faiss")
