"""ONNX export: parity with torch on real LFW chips, metadata round trip, dynamic batch, failure paths."""

from pathlib import Path

import numpy as np
import pytest

import perface
from perface import export as export_mod
from perface.errors import ExportError, SettingsError
from perface.export import export_onnx
from perface.model import PerFace
from perface.onnx_model import OnnxPerFace, read_metadata
from perface.preprocessing import DLIB


@pytest.fixture(scope="module")
def base():
    return perface.load("base", engine="torch")


@pytest.fixture(scope="module")
def faces(lfw):
    return [str(p) for p in sorted((lfw / "images").glob("A*/*_0001.jpg"))[:12]]


@pytest.fixture(scope="module")
def chips(base, faces):
    return np.stack([base.faces(f)[0].chip for f in faces])


@pytest.fixture(scope="module")
def exported(base, faces, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "base.onnx"
    return export_onnx(base, out, images=faces)


def test_parity_on_real_chips(exported, base, chips):
    assert exported.path.is_file() and exported.n_real_chips == 12 and exported.n_synthetic_chips == 4
    assert exported.max_abs_diff <= 1e-4
    onnx_model = perface.load(exported.path)
    assert isinstance(onnx_model, OnnxPerFace)
    diff = np.abs(onnx_model.embed_chips(chips) - base.embed_chips(chips)).max()
    assert diff <= 1e-4
    # dynamic batch axis: one chip, an odd batch and the whole set agree row by row
    whole = onnx_model.embed_chips(chips)
    np.testing.assert_allclose(onnx_model.embed_chips(chips[:1]), whole[:1], atol=1e-6)
    np.testing.assert_allclose(onnx_model.embed_chips(chips, batch_size=5), whole, atol=1e-6)
    # the graph itself outputs L2-normalised embeddings
    raw = onnx_model._embed_normalized(DLIB.normalize(chips))
    np.testing.assert_allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-5)


def test_metadata_round_trip(exported, base):
    meta = read_metadata(exported.path)
    assert meta == exported.metadata
    assert meta["perface.backbone"] == "dlib_resnet" and meta["perface.name"] == "base"
    assert meta["perface.input_size"] == "150" and meta["perface.embedding_dim"] == "128"
    assert meta["perface.version"] == perface.__version__ and meta["perface.opset"] == "17"
    import json

    assert json.loads(meta["perface.normalization"]) == {"mean": list(DLIB.mean), "std": list(DLIB.std)}
    assert json.loads(meta["perface.alignment"]) == {"template": "dlib", "size": 150, "padding": 0.25}
    assert json.loads(meta["perface.config"]) == base.config()
    assert float(meta["perface.parity_max_abs"]) == pytest.approx(exported.max_abs_diff, rel=1e-2, abs=1e-12)
    loaded = perface.load(exported.path, threads=1)
    assert loaded.preprocessing == base.preprocessing and loaded.embedding_dim == 128
    assert loaded.config() == base.config() and loaded.name == "base"


def test_head_model_from_pt_file(tmp_path, faces):
    model = PerFace(head_dim=64, name="head64")
    pt = model.save(tmp_path / "head64.pt")
    result = export_onnx(perface.load(pt, engine="torch"), tmp_path / "head64.onnx", images=faces[:4], opset=13)
    assert result.max_abs_diff <= 1e-4 and result.opset == 13
    onnx_model = perface.load(tmp_path / "head64.onnx")
    assert onnx_model.embedding_dim == 64 and onnx_model.name == "head64"
    assert onnx_model.config()["head_dim"] == 64
    torch_model = perface.load(pt, engine="torch")
    a = onnx_model.embed(faces[:3])
    b = torch_model.embed(faces[:3])
    assert a.shape == (3, 64) and np.abs(a - b).max() <= 1e-4


def test_broken_export_fails_and_leaves_nothing(base, faces, tmp_path, monkeypatch):
    real = export_mod._onnx_embeddings

    def drifting(path, chips):
        return real(path, chips) + 1e-3

    monkeypatch.setattr(export_mod, "_onnx_embeddings", drifting)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match=r"parity check failed: max \|onnx - torch\| = 0\.001"):
        export_onnx(base, out, images=faces[:2])
    assert list(tmp_path.iterdir()) == []


def test_refuses_bad_requests(base, exported, tmp_path):
    with pytest.raises(SettingsError, match=".onnx"):
        export_onnx(base, tmp_path / "model.bin")
    with pytest.raises(SettingsError, match="opset"):
        export_onnx(base, tmp_path / "m.onnx", opset=7)
    with pytest.raises(SettingsError, match="already a PerFace ONNX export"):
        export_onnx(perface.load(exported.path), tmp_path / "again.onnx")
    with pytest.raises(ExportError, match="cannot be read"):
        export_onnx(base, tmp_path / "m.onnx", images=[str(Path(__file__))])
    assert not (tmp_path / "m.onnx").exists()


def test_flip_tta_model_exports_with_parity(tmp_path, faces):
    model = PerFace(flip_tta=True, name="tta")
    result = export_onnx(model, tmp_path / "tta.onnx", images=faces[:4])
    assert result.max_abs_diff <= 1e-4
    onnx_model = perface.load(tmp_path / "tta.onnx")
    assert onnx_model.config()["flip_tta"] is True
    assert np.abs(onnx_model.embed(faces[:3]) - model.embed(faces[:3])).max() <= 1e-4


def test_int8_export_is_calibrated_on_real_faces_and_checked(base, lfw, tmp_path):
    from perface.errors import SettingsError

    calibration = [str(p) for p in sorted((lfw / "images").glob("A*/*.jpg"))[:64]]
    held_out = [str(p) for p in sorted((lfw / "images").glob("T*/*.jpg"))[:16]]
    with pytest.raises(SettingsError, match="--calibrate"):
        export_onnx(base, tmp_path / "q.onnx", quantize="int8")
    result = export_onnx(base, tmp_path / "q.onnx", quantize="int8", calibration=calibration, images=held_out)
    meta = result.metadata
    assert "int8" in meta["perface.quantization"] and "64 face chips" in meta["perface.quantization"]
    assert 0 < result.max_abs_diff <= 0.02 and float(meta["perface.int8_max_cosine_deviation"]) == pytest.approx(
        result.max_abs_diff, rel=1e-3)
    q = perface.load(result.path)
    # other numbers than the torch model's: its own identity, so no cache is shared with fp32
    assert q.identity().startswith("onnx-sha256:") and q.identity() != base.identity()
    cos = np.sum(q.embed(held_out) * base.embed(held_out), axis=1)
    assert cos.min() > 0.98
