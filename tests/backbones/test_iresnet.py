"""iResNet backbones: insightface ONNX / arcface_torch .pth import, depth inference, registry entries."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import numpy_helper
from torch import nn

import perface
from perface.backbones import backbone_for_weights, build_backbone
from perface.backbones.insightface_import import load_arcface_torch_pth, load_insightface_onnx
from perface.backbones.iresnet import IRESNET_LAYERS, IResNet, build_iresnet
from perface.errors import ModelLoadError, SettingsError, UnknownBackboneError, WeightsError
from perface.preprocessing import ARCFACE

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.insightface import export_insightface_onnx as _export  # noqa: E402
from helpers.insightface import randomise as _randomise  # noqa: E402


def _run_onnx(path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _embed(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def chips(lfw) -> np.ndarray:
    """Two LFW photos resized to 112x112 and ARCFACE-normalised, plus two random inputs: (4, 3, 112, 112)."""
    paths = [next((lfw / "images" / name).glob("*.jpg")) for name in ("AJ_Cook", "Aaron_Eckhart")]
    faces = []
    for path in paths:
        bgr = cv2.imread(str(path))
        assert bgr is not None, path
        faces.append(cv2.cvtColor(cv2.resize(bgr, (112, 112), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    real = ARCFACE.normalize(np.stack(faces))
    noise = np.random.default_rng(0).standard_normal((2, 3, 112, 112)).astype(np.float32)
    return np.concatenate([real, noise])


@pytest.fixture(scope="module")
def r50_onnx(tmp_path_factory, chips):
    model = _randomise(build_iresnet(50), seed=50, calibration=chips)
    path = tmp_path_factory.mktemp("r50") / "r50.onnx"
    _export(model, path, torch.from_numpy(chips[:1]))
    return model, path


@pytest.fixture(scope="module")
def r18_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("r18") / "r18.onnx"
    _export(build_iresnet(18), path, torch.zeros(1, 3, 112, 112))
    return path


def test_onnx_import_matches_onnxruntime(r50_onnx, chips):
    original, path = r50_onnx
    graph = onnx.load(str(path)).graph
    n_blocks = sum(IRESNET_LAYERS[50])
    # The exporter fused every conv-following BN: only block bn1, bn2 and features remain.
    assert sum(node.op_type == "BatchNormalization" for node in graph.node) == n_blocks + 2

    imported = load_insightface_onnx(path)
    assert imported.depth == 50
    assert not imported.training
    reference = _run_onnx(path, chips)
    ours = _embed(imported, chips)
    assert ours.shape == (4, 512)
    assert np.abs(reference).max() > 0.5  # a real signal, not a collapsed output
    assert np.abs(reference[0] - reference[1]).max() > 0.1  # different faces, different embeddings
    assert np.abs(ours - reference).max() < 1e-4
    assert np.abs(ours - _embed(original, chips)).max() < 1e-4


def test_pth_round_trip_with_ddp_prefix(tmp_path, chips):
    model = _randomise(build_iresnet(18), seed=18, calibration=chips)
    path = tmp_path / "backbone.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)
    loaded = load_arcface_torch_pth(path)
    assert loaded.depth == 18
    np.testing.assert_array_equal(_embed(loaded, chips), _embed(model, chips))

    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, wrapped)
    np.testing.assert_array_equal(_embed(build_backbone("iresnet18", weights=wrapped), chips), _embed(model, chips))
    with pytest.raises(WeightsError, match="iResNet-18"):
        load_arcface_torch_pth(path, depth=34)


def test_pth_shape_mismatch_is_weights_error(tmp_path):
    state = build_iresnet(18).state_dict()
    state["layer2.1.conv1.weight"] = torch.zeros(128, 128, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="layer2.1.conv1.weight"):
        load_arcface_torch_pth(path)


@pytest.mark.parametrize("depth", [18, 34])
def test_onnx_depth_inference(depth, r18_onnx, tmp_path):
    if depth == 18:
        path = r18_onnx
    else:
        path = tmp_path / f"r{depth}.onnx"
        _export(build_iresnet(depth), path, torch.zeros(1, 3, 112, 112))
    model = load_insightface_onnx(path)
    assert model.depth == depth
    assert model.layers == IRESNET_LAYERS[depth]
    other = 50 if depth == 18 else 18
    with pytest.raises(WeightsError, match=f"iResNet-{depth}"):
        build_backbone(f"iresnet{other}", weights=path)


def test_non_iresnet_onnx_is_model_load_error(tmp_path):
    tiny = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    path = tmp_path / "tiny.onnx"
    _export(tiny, path, torch.zeros(1, 3, 112, 112))
    with pytest.raises(ModelLoadError, match="not an insightface iResNet"):
        load_insightface_onnx(path)


def test_input_normalising_onnx_is_rejected(tmp_path):
    class RawPixels(nn.Module):  # old insightface models: Sub/Mul on 0-255 pixels inside the graph
        def __init__(self) -> None:
            super().__init__()
            self.backbone = build_iresnet(18)

        def forward(self, x):
            return self.backbone((x - 127.5) * 0.0078125)

    path = tmp_path / "raw.onnx"
    _export(RawPixels(), path, torch.zeros(1, 3, 112, 112))
    with pytest.raises(ModelLoadError, match="not supported"):
        load_insightface_onnx(path)


def test_onnx_shape_mismatch_is_weights_error(r18_onnx, tmp_path):
    proto = onnx.load(str(r18_onnx))
    fc = next(node for node in proto.graph.node if node.op_type == "Gemm")
    init = next(t for t in proto.graph.initializer if t.name == fc.input[1])
    init.CopyFrom(numpy_helper.from_array(np.zeros((512, 100), np.float32), init.name))
    path = tmp_path / "bad_fc.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(WeightsError, match="fc.weight"):
        load_insightface_onnx(path)


def test_unreadable_weights_are_model_load_errors(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not an onnx model")
    with pytest.raises(ModelLoadError, match="junk.onnx"):
        load_insightface_onnx(junk)
    with pytest.raises(ModelLoadError, match="not found"):
        load_arcface_torch_pth(tmp_path / "missing.pth")
    with pytest.raises(ModelLoadError, match="unknown weights format"):
        build_backbone("iresnet18", weights=tmp_path / "weights.bin")


def test_registry_builds_iresnet():
    model = build_backbone("iresnet18").eval()
    assert isinstance(model, IResNet) and model.depth == 18
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 112, 112))
    assert out.shape == (2, 512)
    with pytest.raises(UnknownBackboneError, match="iresnet50"):
        build_backbone("iresnet5")


def test_perface_load_builds_insightface_files_through_the_registry(r50_onnx, chips, tmp_path):
    """perface.load of an insightface .onnx / arcface_torch .pth: the registry names the backbone from the file
    and builds it with weights=; embeddings equal onnxruntime's (ONNX) and the source model's (.pth)."""
    original, path = r50_onnx
    assert backbone_for_weights(path) == "iresnet50"
    model = perface.load(path, engine="torch")
    assert model.backbone_name == "iresnet50" and model.name == "r50" and model.preprocessing == ARCFACE
    assert not model.training and not model.backbone.training
    reference = _run_onnx(path, chips)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    with torch.no_grad():
        ours = model.embed_tensor(torch.from_numpy(chips)).numpy()
    assert np.abs(ours - reference).max() < 1e-5

    pth = tmp_path / "backbone.pth"
    torch.save(original.state_dict(), pth)
    assert backbone_for_weights(pth) == "iresnet50"
    loaded = perface.load(pth, engine="torch")
    assert loaded.backbone_name == "iresnet50"
    np.testing.assert_array_equal(_embed(loaded.backbone, chips), _embed(original, chips))


def test_iresnets_have_no_packaged_weights(tmp_path):
    from perface.backbones import get_backbone_spec
    from perface.backbones.insightface_import import build_iresnet_backbone

    assert not get_backbone_spec("iresnet18").packaged_weights and get_backbone_spec("dlib_resnet").packaged_weights
    model = build_backbone("iresnet18", pretrained=True)  # nothing packaged: the registry passes pretrained=False
    assert isinstance(model, IResNet) and model.training  # random arcface_torch initialisation
    with pytest.raises(ModelLoadError, match="no packaged weights"):
        build_iresnet_backbone(18, pretrained=True)
    with pytest.raises(SettingsError, match="unsupported iResNet depth 19"):
        build_iresnet_backbone(19, weights=tmp_path / "never_read.onnx")
