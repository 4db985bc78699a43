"""timm feature extractors (plumbing only, with random weights: no numbers from them are claimed), local
weight files, the embedding cache they share with PerFace models, and PerFace-model features."""

import numpy as np
import pytest
import torch
from PIL import Image

import perface
from perface.errors import FeatureExtractorError
from perface.evaluation.embedding_cache import EmbeddingCache
from perface.evaluation.evaluate import EmbedOptions
from perface.evaluation.features import TimmFeatures, extract_features, make_extractor
from perface.model import state_dict_digest

NAME = "resnet18"


@pytest.fixture(scope="module")
def model():
    return perface.load("base")


@pytest.fixture(scope="module")
def images(lfw, tmp_path_factory):
    d = tmp_path_factory.mktemp("feat")
    Image.fromarray(np.full((120, 120, 3), 200, np.uint8)).save(d / "blank.png")
    people = ["Colin_Powell", "Tony_Blair", "Laura_Bush", "Serena_Williams", "Hugo_Chavez", "Kofi_Annan"]
    return [str(lfw / "images" / p / f"{p}_0001.jpg") for p in people] + [str(d / "blank.png")]


@pytest.fixture(scope="module")
def timm_random(model):
    return TimmFeatures(NAME, pretrained=False, chip_model=model)


def test_timm_plumbing_on_face_chips(timm_random, images, monkeypatch):
    fs = extract_features(timm_random, images)
    assert fs.features.shape == (6, 512) and fs.features.dtype == np.float32 and np.isfinite(fs.features).all()
    assert fs.names == images[:6] and fs.unusable["files"] == [images[6]] and fs.unusable["by_status"] == {"no_face": 1}
    assert not np.allclose(np.linalg.norm(fs.features, axis=1), 1.0)  # raw pooled features, not normalised
    d = timm_random.describe()
    assert d["random_weights"] is True and d["data_config"]["crop_pct"] == 1.0 and d["input"].startswith("dlib chip 150px")
    # the transform is timm's own: a chip resized to the network input and normalised with its mean/std
    x = timm_random.transform(Image.fromarray(np.zeros((150, 150, 3), np.uint8)))
    assert tuple(x.shape) == (3, 224, 224)
    assert x[0, 0, 0].item() == pytest.approx(-0.485 / 0.229, rel=1e-4)
    # the features are the network's output on timm's transform of the base model's chips
    chips = np.stack([a.chip for f in images[:2] for a in timm_random.chip_model.faces(f)])
    with torch.inference_mode():
        ref = timm_random.net(torch.stack([timm_random.transform(Image.fromarray(c)) for c in chips])).numpy()
    assert np.allclose(fs.features[:2], ref, atol=1e-5)
    # cached in the one embedding cache, keyed like any model: the second call does not run the network
    cache = EmbeddingCache(timm_random)
    assert cache.path.is_file() and cache.description["model"] == f"timm:{NAME}"
    assert cache.key != EmbeddingCache(timm_random.chip_model).key
    monkeypatch.setattr(timm_random, "_embed_normalized", lambda batch: pytest.fail("cache miss"))
    again = extract_features(timm_random, images)
    assert np.array_equal(again.features, fs.features) and again.unusable == fs.unusable


def test_seeded_random_init_and_local_weights(timm_random, model, images, tmp_path):
    other = TimmFeatures(NAME, pretrained=False, chip_model=model)
    assert other.identity() == timm_random.identity()  # seeded random initialisation repeats
    torch.manual_seed(123)
    for p in other.net.parameters():
        p.data.normal_(0, 0.05)
    assert other.identity() != timm_random.identity()  # the cache key follows the weights
    path = tmp_path / "w.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in other.net.state_dict().items()},
                "fc.weight": torch.zeros(1000, 512)}, path)
    loaded = TimmFeatures(NAME, weights=path, chip_model=model)
    assert loaded.random_weights is False and loaded.weights_digest() == state_dict_digest(other.net)
    no_cache = EmbedOptions(cache=False)
    assert np.allclose(extract_features(loaded, images[:2], no_cache).features,
                       extract_features(other, images[:2], no_cache).features, atol=1e-6)
    torch.save(other.net.state_dict(), tmp_path / "w18.pt")
    with pytest.raises(FeatureExtractorError, match="does not fit timm:resnet34"):
        TimmFeatures("resnet34", weights=tmp_path / "w18.pt", chip_model=model)
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(FeatureExtractorError, match="not a readable weights file"):
        TimmFeatures(NAME, weights=tmp_path / "junk.pt", chip_model=model)


def test_bad_specs(model):
    with pytest.raises(FeatureExtractorError, match="timm:no_such_net_xyz"):
        TimmFeatures("no_such_net_xyz", pretrained=False, chip_model=model)
    with pytest.raises(FeatureExtractorError, match="needs a model name"):
        make_extractor("timm:")
    with pytest.raises(FeatureExtractorError, match="applies to timm"):
        make_extractor("base", weights="x.pt")


def test_perface_features_are_the_model_embeddings(model, images):
    fs = extract_features(model, images)
    assert fs.features.shape == (6, 128)
    assert np.allclose(fs.features, model.embed(images[:6]), atol=1e-6)
    assert fs.unusable["by_status"] == {"no_face": 1}
    assert make_extractor(model).describe() == {"kind": "perface", "model": "base", "input": "dlib chip 150px",
                                                "dim": 128}


def test_cli_timm_features_side_by_side(images, lfw, tmp_path, capsys):
    import json

    from perface.cli.main import main

    (tmp_path / "real").mkdir()
    (tmp_path / "fake").mkdir()
    for f in images + [str(lfw / "images" / "John_Ashcroft" / "John_Ashcroft_0001.jpg")]:
        (tmp_path / "real" / f.split("/")[-1]).symlink_to(f)
    for p in ["George_W_Bush", "Jacques_Chirac", "Vladimir_Putin", "Hans_Blix", "Andre_Agassi", "Bill_Clinton",
              "Tom_Ridge"]:
        (tmp_path / "fake" / f"{p}.jpg").symlink_to(lfw / "images" / p / f"{p}_0001.jpg")
    assert main(["eval", "distribution", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
                 "--features", "base", "--features", f"timm:{NAME}", "--random-weights", "--kid-subsets", "5",
                 "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert list(doc["features"]) == ["base", f"timm:{NAME}"]
    t = doc["features"][f"timm:{NAME}"]
    assert t["random_weights"] is True and t["dim"] == 512 and t["n_real"] == 7 and t["n_fake"] == 7
    assert t["unusable"]["real"]["files"] == [str(tmp_path / "real" / "blank.png")]
    assert "random weights (--random-weights): these numbers check the plumbing only" in err
    assert "1 real image(s) without a usable face left out" in err
