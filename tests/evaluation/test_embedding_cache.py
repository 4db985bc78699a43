"""Embedding cache: a second run does not call the network; keys follow model, image content and options."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import perface
from perface.evaluation.embedding_cache import EmbeddingCache, embed_paths


@pytest.fixture(scope="module")
def base():
    return perface.load("base", engine="torch")


@pytest.fixture()
def counted(base):
    calls = {"batches": 0, "chips": 0}
    original = base._embed_normalized

    def counting(batch):
        calls["batches"] += 1
        calls["chips"] += len(batch)
        return original(batch)

    base._embed_normalized = counting
    yield calls
    del base._embed_normalized


@pytest.fixture()
def images(lfw, tmp_path):
    files = [str(p) for p in sorted((lfw / "images" / "George_W_Bush").iterdir())[:6]]
    blank = tmp_path / "wall.png"
    Image.new("RGB", (200, 200), (200, 190, 180)).save(blank)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return files + [str(blank), str(broken)]


def test_second_run_does_not_call_the_network(base, counted, images, tmp_path):
    root = tmp_path / "cache"
    first = embed_paths(base, images, on_no_face="skip", cache=EmbeddingCache(base, root=root))
    assert [r.status for r in first] == ["ok"] * 6 + ["no_face", "error"]
    assert counted["chips"] == 6
    counted["chips"] = counted["batches"] = 0
    second = embed_paths(base, images, on_no_face="skip", cache=EmbeddingCache(base, root=root))
    assert counted["batches"] == 0
    assert [r.status for r in second] == ["ok"] * 6 + ["no_face", "error"]
    for a, b in zip(first[:6], second[:6]):
        np.testing.assert_array_equal(a.embedding, b.embedding)
        assert a.box == pytest.approx(b.box) and b.detector == "hog"
    # the whole-image fallback only embeds the image without a face, then is cached too
    whole = embed_paths(base, images, on_no_face="whole-image", cache=EmbeddingCache(base, root=root))
    assert counted["chips"] == 1 and whole[6].status == "ok" and whole[6].detector == "whole-image"
    counted["chips"] = 0
    again = embed_paths(base, images, on_no_face="whole-image", cache=EmbeddingCache(base, root=root))
    assert counted["chips"] == 0
    np.testing.assert_array_equal(again[6].embedding, whole[6].embedding)
    # skip still reports the no-face image after the whole-image run
    assert embed_paths(base, images, on_no_face="skip", cache=EmbeddingCache(base, root=root))[6].status == "no_face"


def test_keyed_by_content_not_name(base, counted, images, tmp_path):
    root = tmp_path / "cache"
    embed_paths(base, images[:2], cache=EmbeddingCache(base, root=root))
    renamed = tmp_path / "renamed.jpg"
    shutil.copy(images[0], renamed)
    counted["chips"] = 0
    (res,) = embed_paths(base, [renamed], cache=EmbeddingCache(base, root=root))
    assert counted["chips"] == 0 and res.path == str(renamed) and res.status == "ok"
    # the same name with other (not yet cached) content is a miss
    shutil.copy(images[2], renamed)
    (res2,) = embed_paths(base, [renamed], cache=EmbeddingCache(base, root=root))
    assert counted["chips"] == 1 and not np.array_equal(res.embedding, res2.embedding)


def test_no_cache_always_computes(base, counted, images):
    embed_paths(base, images[:2], cache=False)
    embed_paths(base, images[:2], cache=False)
    assert counted["chips"] == 4


def test_key_follows_weights_face_and_detector(base, tmp_path):
    key = EmbeddingCache(base, root=tmp_path).key
    assert EmbeddingCache(base, root=tmp_path).key == key
    assert EmbeddingCache(base, face=1, root=tmp_path).key != key
    ident = base.identity()
    param = next(base.parameters())
    saved = param.detach().clone()
    with torch.no_grad():
        param.view(-1)[0] += 1.0
    try:
        assert base.identity() != ident and EmbeddingCache(base, root=tmp_path).key != key
    finally:
        with torch.no_grad():
            param.copy_(saved)
    assert base.identity() == ident
    before = base.face_options
    base.configure_faces(upsample=1)
    try:
        assert EmbeddingCache(base, root=tmp_path).key != key
        base.configure_faces(upsample="auto", detector="hog")
        assert EmbeddingCache(base, root=tmp_path).key != key
    finally:
        base.face_options = before
    assert EmbeddingCache(base, root=tmp_path).key == key
    base.flip_tta = True  # same weights, mirrored test-time augmentation: other embeddings
    try:
        assert EmbeddingCache(base, root=tmp_path).key != key
    finally:
        base.flip_tta = False
    assert EmbeddingCache(base, root=tmp_path).key == key


def test_an_interrupted_run_keeps_its_work(base, lfw, tmp_path, monkeypatch):
    """Ctrl-C half way (here: raised from the progress callback) keeps every embedding computed so far in the
    cache: the next run (a gallery build, an evaluation) embeds only the rest, and gives the same result."""
    files = [str(p) for p in sorted((lfw / "images" / "Tony_Blair").iterdir())[:12]]
    cache = EmbeddingCache(base, root=tmp_path)
    seen = []

    def stop_after_5(n):
        seen.append(n)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_paths(base, files, cache=cache, progress=stop_after_5, batch_size=2)
    computed = []
    real = type(base).embed_chips
    monkeypatch.setattr(type(base), "embed_chips", lambda self, chips, **kw: (computed.append(len(chips)),
                                                                               real(self, chips, **kw))[1])
    again = embed_paths(base, files, cache=cache)
    # the images whose batch was embedded before the interrupt (4 of the 5 started) are not embedded again
    assert 4 <= len(files) - sum(computed) < len(files)
    fresh = embed_paths(base, files, cache=False)
    np.testing.assert_allclose(np.stack([r.embedding for r in again]), np.stack([r.embedding for r in fresh]),
                               atol=1e-6)
