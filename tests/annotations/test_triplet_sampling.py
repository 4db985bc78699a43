"""Sampling triplets for a new campaign: random, stratified by real UTKFace labels, and model-uncertain."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from perface.annotations.labels import read_labels
from perface.annotations.sample import list_images, sample_triplets, to_label_studio_tasks


class PixelModel:
    """A stand-in for ``perface.load("base")``: embeds real image pixels (16x16 grayscale, centred, unit length)."""

    def __init__(self):
        self.calls = 0

    def embed(self, paths, on_no_face="whole-image"):
        assert on_no_face == "whole-image"
        self.calls += 1
        rows = []
        for p in paths:
            with Image.open(p) as im:
                x = np.asarray(im.convert("L").resize((16, 16)), dtype=np.float32).ravel()
            x -= x.mean()
            rows.append(x / np.linalg.norm(x))
        return np.stack(rows)


@pytest.fixture(scope="module")
def utk(data_root):
    images = list_images(data_root / "utkface" / "images", data_root)
    labels = read_labels(data_root / "utkface" / "labels.csv", data_root)
    return images, labels


def test_random_sampling(utk):
    images, _ = utk
    assert len(images) == 4942 and images[0].startswith("utkface/images/")
    tri = sample_triplets(images, 300, "random", seed=1)
    assert len(tri) == 300 and (tri["source"] == "sample-random").all()
    assert ((tri["anchor"] != tri["a"]) & (tri["anchor"] != tri["b"]) & (tri["a"] != tri["b"])).all()
    keys = {(r.anchor, frozenset((r.a, r.b))) for r in tri.itertuples()}
    assert len(keys) == 300
    assert tri.equals(sample_triplets(images, 300, "random", seed=1))
    with pytest.raises(ValueError, match="only 3 distinct triplets"):
        sample_triplets(images[:3], 4, "random")


def test_stratified_sampling_balances_anchor_groups(utk):
    images, labels = utk
    tri = sample_triplets(images, 900, "stratified", seed=0, labels=labels, attributes=("gender", "race", "age"),
                          within_group=0.5)
    counts = tri["stratum"].value_counts()
    assert counts.max() - counts.min() <= 1            # every gender/race/age-band group equally often as anchor
    assert len(counts) > 60                            # UTKFace has ~90 such groups
    group = {p: g for p, g in zip(labels["path"], labels["gender"] + "/" + labels["race"])}
    same = np.mean([group[r.a] == group[r.anchor] == group[r.b] for r in tri.itertuples()])
    assert 0.4 < same < 0.8                             # about half drawn within the anchor's group
    with pytest.raises(ValueError, match="needs attribute labels"):
        sample_triplets(images, 10, "stratified")


def test_uncertain_sampling_picks_small_margins(utk, data_root):
    """Embeddings come from a small object embedding real pixels (see PixelModel), not from a face model."""
    images, _ = utk
    pool_images = images[::25]                          # ~200 images
    model = PixelModel()
    tri = sample_triplets(pool_images, 40, "uncertain", seed=0, model=model, root=data_root, pool_factor=20)
    assert len(tri) == 40 and model.calls >= 1
    emb = model.embed([str(data_root / p) for p in pool_images])
    index = {p: i for i, p in enumerate(pool_images)}
    sim = lambda x, y: float(emb[index[x]] @ emb[index[y]])  # noqa: E731
    for r in tri.itertuples():
        assert r.sim_a == pytest.approx(sim(r.anchor, r.a), abs=1e-5)
        assert r.sim_b == pytest.approx(sim(r.anchor, r.b), abs=1e-5)
    picked = np.abs(tri["sim_a"] - tri["sim_b"]).to_numpy()
    rand = sample_triplets(pool_images, 400, "random", seed=5)
    random_margins = np.array([abs(sim(r.anchor, r.a) - sim(r.anchor, r.b)) for r in rand.itertuples()])
    assert picked.max() < np.quantile(random_margins, 0.15)
    # precomputed embeddings give the same choice without a model
    again = sample_triplets(pool_images, 40, "uncertain", seed=0, embeddings=emb, pool_factor=20)
    assert again[["anchor", "a", "b"]].equals(tri[["anchor", "a", "b"]])
    with pytest.raises(ValueError, match="needs a model"):
        sample_triplets(pool_images, 5, "uncertain")


def test_label_studio_tasks():
    import pandas as pd

    tri = pd.DataFrame({"anchor": ["lfw/images/A B/x 1.jpg"], "a": ["b.jpg"], "b": ["c.jpg"], "stratum": ["g"]})
    task = to_label_studio_tasks(tri)[0]["data"]
    assert task["anchor"] == "/data/local-files/?d=lfw/images/A%20B/x%201.jpg"
    assert task["anchor_path"] == "lfw/images/A B/x 1.jpg" and task["stratum"] == "g"
