"""Preprocessing.normalize (numpy) and normalize_tensor (torch): the one normalisation of chips into network input."""

import numpy as np
import pytest
import torch
from PIL import Image

from perface.preprocessing import ARCFACE, DLIB


@pytest.mark.parametrize("prep", [DLIB, ARCFACE], ids=["dlib", "arcface"])
def test_normalize_is_per_channel_mean_and_std_in_channel_first_layout(prep, lfw):
    files = sorted((lfw / "images" / "Colin_Powell").iterdir())[:2]
    size = prep.size
    chips = np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size))) for f in files])
    out = prep.normalize(chips)
    assert out.shape == (2, 3, size, size) and out.dtype == np.float32 and out.flags["C_CONTIGUOUS"]
    mean, std = np.asarray(prep.mean, np.float32), np.asarray(prep.std, np.float32)
    plain = ((chips.astype(np.float32) - mean) / std).transpose(0, 3, 1, 2)  # the textbook expression
    np.testing.assert_array_equal(out, plain)  # bit for bit, in float32
    np.testing.assert_array_equal(prep.normalize(chips[1]), out[1:])  # a single chip is a batch of one
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) RGB"):
        prep.normalize(chips[..., :2])
    tensor = prep.normalize_tensor(torch.from_numpy(chips))  # training normalises batches where they are
    assert tensor.dtype == torch.float32 and tensor.is_contiguous()
    np.testing.assert_array_equal(tensor.numpy(), out)  # the same arithmetic, bit for bit
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) RGB"):
        prep.normalize_tensor(torch.from_numpy(chips[0]))
