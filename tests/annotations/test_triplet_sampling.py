"""Sampling triplets for a new campaign: random, stratified by real UTKFace labels, and model-uncertain (pixel
embeddings for the selection rule, the real base model for the embedding path)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from perface.annotations.labels import labels_frame
from perface.annotations.sample import embed_pool, folder_images, sample_file, sample_triplets, to_label_studio_tasks
from perface.errors import SettingsError


def pixel_embeddings(paths) -> np.ndarray:
    """Real image pixels as embeddings (16x16 grayscale, centred, unit length): a cheap, deterministic stand-in
    for a face model, to test the selection rule on thousands of triplets."""
    rows = []
    for p in paths:
        with Image.open(p) as im:
            x = np.asarray(im.convert("L").resize((16, 16)), dtype=np.float32).ravel()
        x -= x.mean()
        rows.append(x / np.linalg.norm(x))
    return np.stack(rows)


@pytest.fixture(scope="module")
def utk(data_root):
    images, notes = folder_images(data_root / "utkface" / "images", data_root)
    assert notes == []
    labels = labels_frame(data_root / "utkface" / "labels.csv", data_root)
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
    with pytest.raises(SettingsError, match="only 3 distinct triplets"):
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
    with pytest.raises(SettingsError, match="needs attribute labels"):
        sample_triplets(images, 10, "stratified")


def test_uncertain_sampling_picks_small_margins(utk, data_root):
    """Embeddings are real pixels (see pixel_embeddings), not a face model: this tests the selection rule."""
    images, _ = utk
    pool_images = images[::25]                          # ~200 images
    emb = pixel_embeddings([str(data_root / p) for p in pool_images])
    tri = sample_triplets(pool_images, 40, "uncertain", seed=0, embeddings=emb, pool_factor=20)
    assert len(tri) == 40
    index = {p: i for i, p in enumerate(pool_images)}
    sim = lambda x, y: float(emb[index[x]] @ emb[index[y]])  # noqa: E731
    for r in tri.itertuples():
        assert r.sim_a == pytest.approx(sim(r.anchor, r.a), abs=1e-5)
        assert r.sim_b == pytest.approx(sim(r.anchor, r.b), abs=1e-5)
    picked = np.abs(tri["sim_a"] - tri["sim_b"]).to_numpy()
    rand = sample_triplets(pool_images, 400, "random", seed=5)
    random_margins = np.array([abs(sim(r.anchor, r.a) - sim(r.anchor, r.b)) for r in rand.itertuples()])
    assert picked.max() < np.quantile(random_margins, 0.15)
    again = sample_triplets(pool_images, 40, "uncertain", seed=0, embeddings=emb, pool_factor=20)
    assert again.equals(tri)
    with pytest.raises(SettingsError, match="needs a model"):
        sample_triplets(pool_images, 5, "uncertain")


def test_uncertain_sampling_with_the_base_model(utk, data_root, base_model, tmp_path):
    """The model path: embed_paths with whole-image fallback (UTKFace crops), similarities as the model gives
    them, and an unreadable image listed instead of dropped silently."""
    images, _ = utk
    root = tmp_path / "root"
    (root / "faces").mkdir(parents=True)
    names = []
    for i, rel in enumerate(images[::400][:12]):
        (root / "faces" / f"f{i:02d}.jpg").symlink_to(data_root / rel)
        names.append(f"faces/f{i:02d}.jpg")
    (root / "faces" / "broken.jpg").write_bytes(b"not an image")
    kept, emb, unusable = embed_pool(base_model, names + ["faces/broken.jpg"], root, workers=0)
    assert kept == names and emb.shape == (12, 128)
    assert [u["path"] for u in unusable] == ["faces/broken.jpg"] and unusable[0]["status"] == "error"
    direct = base_model.embed([str(root / p) for p in names], on_no_face="whole-image")
    np.testing.assert_allclose(emb, direct, atol=1e-5)

    run = sample_file(root / "faces", 10, tmp_path / "u.csv", strategy="uncertain", root=root,
                      model=lambda: base_model, pool_factor=5, workers=0)
    assert len(run.triplets) == 10 and run.n_images == 13 and [u["path"] for u in run.unusable] == ["faces/broken.jpg"]
    assert any("without a usable embedding" in line for line in run.lines())
    index = {p: i for i, p in enumerate(names)}
    for r in run.triplets.itertuples():
        assert r.sim_a == pytest.approx(float(direct[index[r.anchor]] @ direct[index[r.a]]), abs=1e-5)
        assert r.sim_b == pytest.approx(float(direct[index[r.anchor]] @ direct[index[r.b]]), abs=1e-5)
    assert pd.read_csv(tmp_path / "u.csv")[["anchor", "a", "b"]].equals(run.triplets[["anchor", "a", "b"]])


def test_label_studio_tasks():
    tri = pd.DataFrame({"anchor": ["lfw/images/A B/x 1.jpg"], "a": ["b.jpg"], "b": ["c.jpg"], "stratum": ["g"]})
    task = to_label_studio_tasks(tri)[0]["data"]
    assert task["anchor"] == "/data/local-files/?d=lfw/images/A%20B/x%201.jpg"
    assert task["anchor_path"] == "lfw/images/A B/x 1.jpg" and task["stratum"] == "g"
