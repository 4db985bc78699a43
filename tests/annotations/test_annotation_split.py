"""Leak-free splits: disjoint by image and by identity on real LFW people, seeded determinism, drop counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perface.annotations.labels import labels_frame
from perface.annotations.proxy import identity_triplets
from perface.annotations.split import assign_units, check_disjoint, parse_fractions, split_triplets


@pytest.fixture(scope="module")
def lfw_labels(data_root) -> pd.DataFrame:
    return labels_frame(data_root / "lfw" / "gender.csv", data_root)


@pytest.fixture(scope="module")
def lfw_triplets(lfw_labels, data_root) -> pd.DataFrame:
    """Identity triplets over real LFW people (no split yet): anchors and positives share a person."""
    tri, _ = identity_triplets(lfw_labels, 1500, seed=1, root=data_root)
    return tri


def _persons_by_split(tri, identities):
    out = {}
    for s in ("train", "val", "test"):
        part = tri[tri["split"] == s]
        out[s] = {identities[p] for col in ("anchor", "a", "b") for p in part[col]}
    return out


def test_split_is_disjoint_by_identity_on_lfw(lfw_triplets, lfw_labels):
    identities = dict(zip(lfw_labels["path"], lfw_labels["identity"]))
    res = split_triplets(lfw_triplets, (0.8, 0.1, 0.1), seed=0, identities=identities)
    c = res.counts
    assert c["train"] + c["val"] + c["test"] + c["dropped"] == len(lfw_triplets) == c["total"]
    assert len(res.dropped) == c["dropped"] and c["val"] > 0 and c["test"] > 0
    assert c["train"] > 3 * c["val"]
    persons = _persons_by_split(res.triplets, identities)
    assert not persons["train"] & persons["val"] and not persons["train"] & persons["test"]
    assert not persons["val"] & persons["test"]
    assert check_disjoint(res.triplets, identities) == []
    # the same triplets split by image only are image-disjoint, but people leak (an identity-blind split)
    by_image = split_triplets(lfw_triplets, (0.8, 0.1, 0.1), seed=0)
    assert [p for p in check_disjoint(by_image.triplets) if p.startswith("image")] == []
    assert any(p.startswith("person") for p in check_disjoint(by_image.triplets, identities))
    # kept + dropped rows are exactly the input rows
    both = pd.concat([res.triplets.drop(columns="split"), res.dropped])
    assert sorted(map(tuple, both[["anchor", "a", "b"]].values)) == sorted(map(tuple, lfw_triplets[["anchor", "a", "b"]].values))


def test_split_is_deterministic(lfw_triplets):
    one = split_triplets(lfw_triplets, "0.8,0.1,0.1", seed=7)
    two = split_triplets(lfw_triplets, "80,10,10", seed=7)
    other = split_triplets(lfw_triplets, "0.8,0.1,0.1", seed=8)
    pd.testing.assert_frame_equal(one.triplets, two.triplets)
    assert not one.triplets["split"].equals(other.triplets["split"]) or len(one.triplets) != len(other.triplets)


def test_sparse_triplets_split_without_drops():
    # 300 triplets over 900 distinct images: every triplet is its own component, nothing needs dropping
    tri = pd.DataFrame({"anchor": [f"i{3 * k}" for k in range(300)], "a": [f"i{3 * k + 1}" for k in range(300)],
                        "b": [f"i{3 * k + 2}" for k in range(300)], "p_a": 1.0})
    res = split_triplets(tri, (0.8, 0.1, 0.1), seed=0)
    assert res.counts["dropped"] == 0
    assert (res.counts["train"], res.counts["val"], res.counts["test"]) == (240, 30, 30)
    assert check_disjoint(res.triplets) == []


def test_a_chain_of_shared_images_forces_drops():
    # every triplet shares an image with the next one: a single component that must be cut
    tri = pd.DataFrame({"anchor": [f"i{k}" for k in range(200)], "a": [f"i{k + 1}" for k in range(200)],
                        "b": [f"j{k}" for k in range(200)], "p_a": 1.0})
    res = split_triplets(tri, (0.5, 0.25, 0.25), seed=0)
    assert res.counts["dropped"] > 0 and min(res.counts["val"], res.counts["test"]) > 20
    assert check_disjoint(res.triplets) == []


def test_fractions_and_unit_assignment():
    assert parse_fractions("8,1,1") == pytest.approx((0.8, 0.1, 0.1))
    with pytest.raises(ValueError, match="three"):
        parse_fractions("0.5,0.5")
    units = [f"p{i // 3}" for i in range(300)]           # 100 people, 3 images each
    owner = assign_units(units, (0.8, 0.1, 0.1), seed=0, strata=[int(u[1:]) % 2 for u in units])
    frame = pd.DataFrame({"unit": units, "split": owner})
    assert frame.groupby("unit")["split"].nunique().max() == 1
    assert frame.drop_duplicates("unit")["split"].value_counts().to_dict() == {"train": 80, "val": 10, "test": 10}
    assert np.array_equal(owner, assign_units(units, (0.8, 0.1, 0.1), seed=0, strata=[int(u[1:]) % 2 for u in units]))


def test_dense_triplets_keep_target_shares():
    # 20 judgments per image: any image-disjoint split drops most triplets, but val/test keep their shares
    rng = np.random.default_rng(0)
    idx = np.array([rng.choice(300, 3, replace=False) for _ in range(2000)])
    tri = pd.DataFrame({c: [f"i{x}" for x in idx[:, k]] for k, c in enumerate(("anchor", "a", "b"))})
    tri["p_a"] = 1.0
    res = split_triplets(tri, (0.8, 0.1, 0.1), seed=0)
    c = res.counts
    assert c["method"] == "random-units" and c["dropped"] > 1000
    kept = c["train"] + c["val"] + c["test"]
    assert 0.06 < c["val"] / kept < 0.14 and 0.06 < c["test"] / kept < 0.14
    assert check_disjoint(res.triplets) == []
