"""Gallery building: identities, per-identity means, attributes, bad images, the file format."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perface.errors import GalleryError, LabelFileError
from perface.selection import Gallery


def test_rows_are_renormalised_identity_means(gallery_base, gallery_head, lfw_split, base_model, head_model):
    from perface.evaluation.embedding_cache import embed_paths

    ids = lfw_split["gallery_ids"]
    assert list(gallery_base.identities) == sorted(ids)  # folder name = identity, rows sorted by name
    assert (gallery_base.n_images == 2).all()
    for g in (gallery_base, gallery_head):
        np.testing.assert_allclose(np.linalg.norm(g.perceptual, axis=1), 1, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(g.identity, axis=1), 1, atol=1e-5)
    assert gallery_head.perceptual.shape == (len(ids), 64) and gallery_head.identity.shape == (len(ids), 128)
    for name in (ids[0], ids[77], ids[-1]):
        row = gallery_base.row_of(name)
        files = gallery_base.images[row]
        assert [f.rsplit("/", 1)[-1] for f in files] == [f"{name}_0001.jpg", f"{name}_0002.jpg"]
        for model, g, col in ((base_model, gallery_base, "identity"), (head_model, gallery_head, "perceptual")):
            e = np.stack([r.embedding for r in embed_paths(model, files)])
            mean = e.mean(0) / np.linalg.norm(e.mean(0))
            np.testing.assert_allclose(getattr(g, col)[g.row_of(name)], mean, atol=1e-5)
    # same identity model in both galleries, different perceptual models
    np.testing.assert_allclose(gallery_head.identity, gallery_base.identity, atol=1e-6)
    assert gallery_base.info["perceptual_model"]["identity"] == gallery_base.info["identity_model"]["identity"]
    assert gallery_head.info["perceptual_model"]["identity"] != gallery_head.info["identity_model"]["identity"]


def test_attributes_from_label_file(gallery_base, lfw):
    labels = pd.read_csv(lfw / "gender.csv")
    truth = labels.groupby("identity")["gender"].agg(lambda v: v.mode().min())
    assert gallery_base.attribute_names == ["gender"]
    for name in gallery_base.identities[:60]:
        assert gallery_base.attributes_of(gallery_base.row_of(name))["gender"] == truth[name]
    assert set(gallery_base.attributes["gender"]) == {"male", "female"}


def test_save_load_roundtrip(gallery_head, tmp_path):
    path = gallery_head.save(tmp_path / "g.parquet")
    g = Gallery.load(path)
    assert list(g.identities) == list(gallery_head.identities)
    np.testing.assert_array_equal(g.perceptual, gallery_head.perceptual)
    np.testing.assert_array_equal(g.identity, gallery_head.identity)
    assert g.images == gallery_head.images and list(g.n_images) == list(gallery_head.n_images)
    assert g.attributes.equals(gallery_head.attributes)
    assert g.threshold == gallery_head.threshold and g.default_band == gallery_head.default_band
    assert g.info["perceptual_model"]["source"].endswith("random_head.pt")
    cols = pd.read_parquet(path).columns.tolist()
    assert cols == ["identity", "n_images", "perceptual", "identity_embedding", "images", "gender"]


def test_bad_images_are_recorded_and_skipped(tmp_path, lfw, photos, base_model):
    from PIL import Image

    a = tmp_path / "Alice"
    b = tmp_path / "Bob"
    a.mkdir(), b.mkdir()
    for k in (1, 2):
        (a / f"{k}.jpg").write_bytes((lfw / "images" / "Aaron_Peirsol" / f"Aaron_Peirsol_000{k}.jpg").read_bytes())
    (a / "truncated.jpg").write_bytes((photos / "img10.jpg").read_bytes()[:3000])
    Image.new("RGB", (250, 250), "white").save(b / "wall.png")  # Bob: only a face-less image
    files = [str(p) for p in sorted(a.iterdir())] + [str(b / "wall.png"), str(tmp_path / "missing.jpg")]
    g = Gallery.build(files, base_model, base_model, max_identity_sim=0.9)
    assert list(g.identities) == ["Alice"] and list(g.n_images) == [2]
    status = {f["path"].rsplit("/", 1)[-1]: f["status"] for f in g.failures}
    assert status == {"truncated.jpg": "error", "wall.png": "no_face", "missing.jpg": "error"}
    assert g.default_band is None  # one identity: no between-identity distribution
    with pytest.raises(GalleryError, match="none of the 2 images"):
        Gallery.build(files[3:], base_model, base_model, max_identity_sim=0.9)


def test_label_file_identities_override_folders(tmp_path, lfw, base_model):
    files = [lfw / "images" / n / f"{n}_000{k}.jpg" for n in ("Aaron_Peirsol", "Abdullah_Gul") for k in (1, 2)]
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"path": [str(f) for f in files], "identity": ["p1", "p1", "p2", ""],
                  "age_group": ["20-29", "30-39", "40-49", "40-49"]}).to_csv(labels, index=False)
    g = Gallery.build([str(f) for f in files], base_model, base_model, labels=labels, max_identity_sim=0.9)
    # an empty identity falls back to the folder name; ties in attributes go to the smallest value
    assert list(g.identities) == ["Abdullah_Gul", "p1", "p2"]
    assert [g.attributes_of(i)["age_group"] for i in range(3)] == ["40-49", "20-29", "40-49"]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,identity\nx.jpg,a\n")
    with pytest.raises(LabelFileError, match="no 'path' column"):
        Gallery.build([str(f) for f in files], base_model, base_model, labels=bad, max_identity_sim=0.9)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        Gallery.load(tmp_path / "missing.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(GalleryError, match="not a readable Parquet"):
        Gallery.load(junk)
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"identity": ["a"]}).to_parquet(plain)
    with pytest.raises(GalleryError, match="not a PerFace gallery"):
        Gallery.load(plain)


def test_model_mismatch_is_refused(gallery_head, head_model, base_model):
    gallery_head.check_models(head_model, base_model)
    with pytest.raises(GalleryError, match="built with perceptual model 'random-head'"):
        gallery_head.check_models(base_model, base_model)


def test_label_lookup_through_symlinks(tmp_path, lfw):
    from perface.io.labels import read_labels

    (tmp_path / "link").symlink_to(lfw)
    labels = read_labels(tmp_path / "link" / "gender.csv")
    for path in (tmp_path / "link" / "images" / "AJ_Cook" / "AJ_Cook_0001.jpg",
                 lfw / "images" / "AJ_Cook" / "AJ_Cook_0001.jpg", "nonexistent/AJ_Cook_0001.jpg"):
        known = "nonexistent" not in str(path)
        assert (path in labels) == known
        assert labels.attributes_of(path) == ({"gender": "female"} if known else {})
    assert labels.identity("elsewhere/Somebody/x.jpg") == "Somebody"
