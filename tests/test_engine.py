"""The ONNX Runtime engine by default: a torch model is exported once into the cache, run by ONNX Runtime,
matches torch, and is found again without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import perface
from perface.errors import SettingsError
from perface.model import PerFace
from perface.onnx_model import OnnxPerFace


def test_default_engine_is_onnx_runtime_and_matches_torch(lfw, tmp_path, monkeypatch):
    monkeypatch.setenv("PERFACE_CACHE", str(tmp_path / "cache"))
    files = [str(p) for p in sorted((lfw / "images" / "Colin_Powell").iterdir())[:6]]
    fast = perface.load("base")
    torch_model = perface.load("base", engine="torch")
    assert isinstance(fast, OnnxPerFace) and isinstance(torch_model, PerFace)
    assert fast.name == "base" and fast.identity() == torch_model.identity()
    assert np.abs(fast.embed(files) - torch_model.embed(files)).max() < 1e-4
    engines = list((tmp_path / "cache" / "engines").glob("*.onnx"))
    assert len(engines) == 1
    # a second process finds the export by the weights file's digest and never imports torch
    code = ("import sys, perface; m = perface.load('base'); "
            "print(type(m).__name__, m.identity(), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PERFACE_CACHE": str(tmp_path / "cache")}).stdout.split()
    assert out == ["OnnxPerFace", torch_model.identity(), "False"]
    assert list((tmp_path / "cache" / "engines").glob("*.onnx")) == engines


def test_checkpoints_run_on_onnx_runtime_with_their_face_options(tmp_path, monkeypatch, lfw):
    from perface.preprocessing import FaceOptions

    monkeypatch.setenv("PERFACE_CACHE", str(tmp_path / "cache"))
    options = FaceOptions(detector="hog", face="center", on_no_face="whole-image")
    pt = PerFace(head_dim=32, name="small", flip_tta=True, face_options=options).save(tmp_path / "small.pt")
    fast, slow = perface.load(pt), perface.load(pt, engine="torch")
    assert isinstance(fast, OnnxPerFace) and fast.name == "small" and fast.face_options == options
    assert fast.flip_tta and fast.identity() == slow.identity()
    files = [str(p) for p in sorted((lfw / "images" / "Tony_Blair").iterdir())[:3]]
    assert np.abs(fast.embed(files) - slow.embed(files)).max() < 1e-4
    assert perface.load(pt, face="largest").face_options == options.override(face="largest")
    # another file (other weights) is another engine file
    PerFace(head_dim=32, name="small").save(tmp_path / "other.pt")
    perface.load(tmp_path / "other.pt")
    assert len(list((tmp_path / "cache" / "engines").glob("*.onnx"))) == 2


def test_engine_choice_errors():
    with pytest.raises(SettingsError, match="engine 'tensorrt' is not known"):
        perface.load("base", engine="tensorrt")
    with pytest.raises(SettingsError, match="device 'tpu'"):
        perface.load("base", device="tpu")


def test_cli_engine_flag(lfw, capsys):
    from perface.cli.main import main

    a, b = (str(lfw / "images" / "Tony_Blair" / f"Tony_Blair_000{i}.jpg") for i in (1, 2))
    scores = []
    for engine in ("onnx", "torch"):
        assert main(["score", "--json", "--engine", engine, a, b]) == 0
        scores.append(json.loads(capsys.readouterr().out)["score"])
    assert abs(scores[0] - scores[1]) < 1e-4
