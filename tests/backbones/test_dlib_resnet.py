"""dlib ResNet in torch against dlib itself, the .dat parser and the weights cache."""

import json

import dlib
import numpy as np
import pytest
import torch

from perface.backbones import build_backbone
from perface.backbones.dlib_resnet import CACHE_NAME, DlibResNet, load_dlib_state_dict, padded_add, state_dict_from_dat
from perface.backbones.dlib_serialization import DlibReader
from perface.dlib_files import RECOGNITION_RESNET, dlib_model_path
from perface.errors import WeightsError
from perface.face import FacePipeline
from perface.io import load_image
from perface.preprocessing import DLIB


@pytest.fixture(scope="module")
def chips(lfw):
    pipe = FacePipeline(DLIB)
    people = sorted(p for p in (lfw / "images").iterdir())[::150][:24]
    out = [pipe(load_image(sorted(p.iterdir())[0]))[0].chip for p in people]
    assert len(out) >= 20
    return np.stack(out)


def test_parity_with_dlib_compute_face_descriptor(chips, tmp_path):
    """Max |torch - dlib| <= 1e-5 on real 150x150 chips (the descriptors are ~0.1 in magnitude)."""
    ref = dlib.face_recognition_model_v1(str(dlib_model_path(RECOGNITION_RESNET)))
    expected = np.array([np.array(ref.compute_face_descriptor(c)) for c in chips], dtype=np.float32)
    model = build_backbone("dlib_resnet", cache=tmp_path)
    with torch.inference_mode():
        got = model(torch.from_numpy(DLIB.normalize(chips))).numpy()
    assert got.shape == (len(chips), 128)
    assert np.abs(got - expected).max() <= 1e-5


def test_architecture_size():
    assert sum(p.numel() for p in DlibResNet().parameters()) == 5_614_592


def test_weights_cache_is_written_checked_and_rebuilt(tmp_path):
    first = load_dlib_state_dict(cache=tmp_path)
    target = tmp_path / "weights" / CACHE_NAME
    meta = json.loads(target.with_suffix(".json").read_text())
    assert target.is_file() and len(meta["sha256"]) == 64
    assert meta["distance_threshold"] == pytest.approx(0.6)
    # corrupt the cache: the sha256 check must reject it and rebuild from the .dat
    data = bytearray(target.read_bytes())
    data[-100] ^= 0xFF
    target.write_bytes(bytes(data))
    again = load_dlib_state_dict(cache=tmp_path)
    for k in first:
        assert torch.equal(first[k], again[k])
    import hashlib

    assert json.loads(target.with_suffix(".json").read_text())["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()


def test_non_dlib_file_is_rejected(tmp_path):
    bogus = tmp_path / "bogus.dat"
    bogus.write_bytes(b"\x01\x05con_4\x01\x02" + b"\x00" * 20)
    with pytest.raises(WeightsError, match="bogus.dat"):
        state_dict_from_dat(bogus)
    other = dlib_model_path("shape_predictor_5_face_landmarks.dat")
    with pytest.raises(WeightsError, match="not dlib_face_recognition_resnet_model_v1"):
        state_dict_from_dat(other)


def test_dlib_integer_and_float_encoding():
    # 0x1280 = 4736 in two bytes; -28 in one byte with the sign bit; 0.04 as mantissa * 2**exponent
    r = DlibReader(b"\x02\x80\x12\x81\x1c\x03\n\xd7\xa3\x81\x1c")
    assert r.read_int() == 4736
    assert r.read_int() == -28
    assert r.read_float() == pytest.approx(0.04, rel=1e-7)


def test_padded_add_zero_pads_channels_and_space():
    a = torch.ones(1, 2, 3, 3)
    b = torch.full((1, 4, 4, 4), 2.0)
    out = padded_add(a, b)
    assert out.shape == (1, 4, 4, 4)
    assert out[0, :2, :3, :3].eq(3).all() and out[0, 2:].eq(2).all() and out[0, :, 3, :].eq(2).all()
