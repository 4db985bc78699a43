"""The default band: between-identity similarity quantiles of the gallery itself."""

from __future__ import annotations

import numpy as np
import pytest

from perface.errors import SelectionError
from perface.selection import Band, default_band_levels, gallery_band, parse_band
from perface.selection.band import pair_similarities


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_pair_similarities_exact_and_sampled():
    rng = np.random.default_rng(1)
    x = _unit(rng.standard_normal((60, 16)))
    s = x @ x.T
    np.testing.assert_allclose(np.sort(pair_similarities(x)), np.sort(s[np.triu_indices(60, 1)]), atol=1e-6)
    images = _unit(x[np.repeat(np.arange(60), 3)] + 0.1 * rng.standard_normal((180, 16)))
    owners = np.repeat(np.arange(60), 3)
    full = pair_similarities(x, images, owners)
    brute = (images @ x.T)[owners[:, None] != np.arange(60)[None, :]]
    np.testing.assert_allclose(np.sort(full), np.sort(brute), atol=1e-6)
    sampled = pair_similarities(x, images, owners, max_pairs=5000)
    assert len(sampled) == 5000
    np.testing.assert_array_equal(sampled, pair_similarities(x, images, owners, max_pairs=5000))  # seeded
    assert abs(np.quantile(sampled, 0.9) - np.quantile(full, 0.9)) < 0.03


def test_default_band_levels_scale_with_gallery_size():
    assert default_band_levels(150) == pytest.approx((0.90, 0.99))
    assert default_band_levels(10_000) == pytest.approx((0.90, 0.99))
    assert default_band_levels(1_000_000) == pytest.approx((0.999, 0.9999))


def test_gallery_band_is_the_documented_quantiles(gallery_base, lfw_split, base_model):
    from perface.evaluation.embedding_cache import embed_paths

    band = gallery_base.default_band
    assert band.levels == pytest.approx((0.9, 0.99)) and "quantiles 0.9 to 0.99" in band.source
    imgs = np.stack([r.embedding for r in embed_paths(base_model, lfw_split["gallery_images"])])
    owners = np.array([gallery_base.row_of(p.rsplit("/", 2)[-2]) for p in lfw_split["gallery_images"]])
    s = (imgs @ gallery_base.perceptual.T)[owners[:, None] != np.arange(len(gallery_base))[None, :]]
    assert band.lo == pytest.approx(np.quantile(s, 0.9), abs=1e-6)
    assert band.hi == pytest.approx(np.quantile(s, 0.99), abs=1e-6)
    assert 0.085 < np.mean((s >= band.lo) & (s <= band.hi)) < 0.095
    q = gallery_base.info["between_identity_similarity"]
    assert q["pairs"] == "image-to-other-identity" and q["n_pairs"] == len(s) and not q["sampled"]


def test_band_validation():
    assert parse_band("0.5:0.75") == Band(0.5, 0.75)
    assert Band(0.5, 0.7).centre == pytest.approx(0.6)
    for bad in ("0.7", "a:b", "0.8:0.6", "0.5:1.5", "1:2:3"):
        with pytest.raises(SelectionError):
            parse_band(bad)
    two, band = gallery_band(_unit(np.eye(3, 8)[:1]))
    assert two is None and band["n_pairs"] == 0
