"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) as a torch module.

Architecture (dlib's ``anet_type``): conv 7x7/2 (32) -> affine -> relu -> max-pool 3x3/2, then residual
levels of 32 (3 blocks), 64 (down + 3), 128 (down + 2), 256 (down + 2), 256 (down), global average pool and
a 256 -> 128 fully connected layer without bias. Each block is conv3x3 -> affine -> relu -> conv3x3 ->
affine, added to the input (a down block uses stride 2, unpadded, and a 2x2/2 average pool on the
shortcut), then relu. dlib adds tensors of different shapes by zero-padding both to the larger channel
count and spatial size (at the end), which :func:`padded_add` reproduces. Batch norm was folded into the
affine layers when dlib saved the model.

Weights are parsed from the ``.dat`` file of the ``face-recognition-models`` package and cached as
safetensors in the perface cache directory (see :mod:`perface.cache`), checked by sha256.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from perface.backbones.base import Backbone
from perface.backbones.dlib_serialization import read_layers
from perface.cache import cache_dir, file_sha256
from perface.dlib_files import RECOGNITION_RESNET, dlib_model_path
from perface.errors import WeightsError

#: (channels, number of blocks, first block downsamples) per residual level, input side first.
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
EMBEDDING_DIM = 128
CACHE_NAME = "dlib_resnet_v1.safetensors"


class Affine(nn.Module):
    """Per-channel ``y = weight * x + bias`` (dlib's ``affine`` layer: batch norm folded at save time).

    Args:
        channels: Number of channels C; input (N, C, H, W) float32.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias.view(1, -1, 1, 1), x, self.weight.view(1, -1, 1, 1))


def padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: sum of two (N, C, H, W) tensors, zero-padding each to the larger C, H and W."""
    # Sizes as Python ints: they follow from the chip size, so an ONNX export holds constant pads instead of a
    # chain of Shape/Gather/Sub/Concat nodes per block (smaller graph, faster session start).
    sa, sb = ([int(v) for v in t.shape[1:]] for t in (a, b))
    c, h, w = (max(x, y) for x, y in zip(sa, sb))

    def pad(t: torch.Tensor, size: list[int]) -> torch.Tensor:
        if size == [c, h, w]:
            return t
        return F.pad(t, (0, w - size[2], 0, h - size[1], 0, c - size[0]))

    return pad(a, sa) + pad(b, sb)


class DlibBlock(nn.Module):
    """dlib ``ares`` / ``ares_down`` residual block (see module docstring)."""

    def __init__(self, in_channels: int, channels: int, down: bool):
        super().__init__()
        self.down = down
        stride, pad = (2, 0) if down else (1, 1)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=pad)
        self.affine1 = Affine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1)
        self.affine2 = Affine(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(padded_add(y, shortcut))


class DlibResNet(Backbone):
    """dlib face-recognition ResNet-29.

    Input: (N, 3, 150, 150) float32 chips normalised by :data:`perface.preprocessing.DLIB`
    (``(rgb - mean) / 256``). Output: (N, 128) float32, the raw dlib descriptor (not L2-normalised; dlib
    calls two faces the same person below Euclidean distance 0.6).

    Backbone contract (:class:`~perface.backbones.base.Backbone`): stem ``conv1 -> affine1 -> relu ->
    max-pool``, ``stages`` the five residual levels (input side first), head global average pool -> ``fc``.
    Its normalisation layers are the :class:`Affine` layers (batch norm folded by dlib).
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 7, stride=2, padding=0)
        self.affine1 = Affine(32)
        stages = []
        in_ch = 32
        for channels, blocks, down in LEVELS:
            stage = [DlibBlock(in_ch, channels, down)]
            stage += [DlibBlock(channels, channels, False) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            in_ch = channels
        self.stages = nn.ModuleList(stages)
        self.fc = nn.Linear(256, EMBEDDING_DIM, bias=False)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.affine1(self.conv1(x))), 3, 2)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))

    def stem_modules(self) -> list[nn.Module]:
        return [self.conv1, self.affine1]

    def head_modules(self) -> list[nn.Module]:
        return [self.fc]

    def normalization_modules(self) -> list[nn.Module]:
        return [m for m in self.modules() if isinstance(m, Affine)]

    def conv_affine_pairs(self) -> list[tuple[nn.Conv2d, Affine]]:
        """(conv, affine) pairs in dlib file order (input side first)."""
        pairs = [(self.conv1, self.affine1)]
        for stage in self.stages:
            for block in stage:
                pairs += [(block.conv1, block.affine1), (block.conv2, block.affine2)]
        return pairs


def state_dict_from_dat(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Parse dlib's ``.dat`` into a :class:`DlibResNet` state dict.

    Returns:
        (state_dict, info) where info holds the loss layer's ``distance_threshold`` and ``margin``.

    Raises:
        WeightsError: the file does not hold this architecture.
    """
    path = Path(path)
    layers = read_layers(path.read_bytes(), name=str(path))
    convs = [l for l in layers if l.kind.startswith("con_")]
    affines = [l for l in layers if l.kind == "affine_"]
    fcs = [l for l in layers if l.kind == "fc_2"]
    loss = [l for l in layers if l.kind == "loss_metric_2"]
    model = DlibResNet()
    pairs = model.conv_affine_pairs()
    if len(convs) != len(pairs) or len(affines) != len(pairs) or len(fcs) != 1:
        raise WeightsError(
            f"{path}: expected {len(pairs)} conv, {len(pairs)} affine and 1 fc layers, found "
            f"{len(convs)}, {len(affines)}, {len(fcs)}; this is not dlib_face_recognition_resnet_model_v1.dat"
        )
    state: dict[str, torch.Tensor] = {}
    names = {id(m): n for n, m in model.named_modules()}
    for (conv, affine), lc, la in zip(pairs, convs, affines):
        a = lc.attrs
        expected = (conv.out_channels, conv.kernel_size[0], conv.stride[0], conv.padding[0])
        found = (a["num_filters"], a["nr"], a["stride_y"], a["padding_y"])
        if expected != found:
            raise WeightsError(f"{path}: conv layer at byte {lc.offset} is {found}, expected {expected}")
        n_w = conv.weight.numel()
        flat = lc.params.reshape(-1)
        if flat.size != n_w + conv.out_channels:
            raise WeightsError(f"{path}: conv layer at byte {lc.offset} has {flat.size} values, expected {n_w + conv.out_channels}")
        cname = names[id(conv)]
        state[f"{cname}.weight"] = torch.from_numpy(flat[:n_w].reshape(conv.weight.shape).copy())
        state[f"{cname}.bias"] = torch.from_numpy(flat[n_w:].copy())
        ch = affine.weight.numel()
        aflat = la.params.reshape(-1)
        if aflat.size != 2 * ch:
            raise WeightsError(f"{path}: affine layer at byte {la.offset} has {aflat.size} values, expected {2 * ch}")
        aname = names[id(affine)]
        state[f"{aname}.weight"] = torch.from_numpy(aflat[:ch].copy())
        state[f"{aname}.bias"] = torch.from_numpy(aflat[ch:].copy())
    fc = fcs[0]
    n_in, n_out = int(fc.attrs["num_inputs"]), int(fc.attrs["num_outputs"])
    if (n_in, n_out) != (256, EMBEDDING_DIM) or fc.params.size != n_in * n_out:
        raise WeightsError(f"{path}: fc layer is {n_in}x{n_out}, expected 256x{EMBEDDING_DIM}")
    # dlib stores fc weights as (inputs, outputs); torch Linear wants (outputs, inputs).
    state["fc.weight"] = torch.from_numpy(fc.params.reshape(n_in, n_out).T.copy())
    info = dict(loss[0].attrs) if loss else {}
    return state, info



def load_dlib_state_dict(dat_path: str | os.PathLike | None = None, cache: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """Parsed dlib weights, from the safetensors cache when its sha256 checks out, else parsed and cached.

    Args:
        dat_path: dlib ``.dat`` file; default: the one in ``face-recognition-models``.
        cache: Cache directory (default: :func:`perface.cache.cache_dir`).
    """
    from safetensors.torch import load_file, save_file

    dat_path = Path(dat_path) if dat_path is not None else dlib_model_path(RECOGNITION_RESNET)
    folder = cache_dir(cache) / "weights"
    target = folder / CACHE_NAME
    sidecar = target.with_suffix(".json")
    source_size = dat_path.stat().st_size
    if target.is_file() and sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
            if meta.get("source_size") == source_size and meta.get("sha256") == file_sha256(target):
                return load_file(str(target))
        except (OSError, ValueError):
            pass  # unreadable cache: rebuild it below
    state, info = state_dict_from_dat(dat_path)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    save_file(state, str(tmp), metadata={"source": dat_path.name, **{k: str(v) for k, v in info.items()}})
    os.replace(tmp, target)
    sidecar.write_text(json.dumps({"sha256": file_sha256(target), "source": str(dat_path), "source_size": source_size, **info}))
    return state


def build_dlib_resnet(pretrained: bool = True, weights: str | os.PathLike | None = None, cache: str | os.PathLike | None = None) -> DlibResNet:
    """Registry builder for ``dlib_resnet``.

    Args:
        pretrained: Load dlib's trained weights (default). False gives random initialisation.
        weights: A dlib ``.dat`` file to read instead of the packaged one.
        cache: Cache directory for the parsed weights.
    """
    model = DlibResNet()
    if pretrained or weights is not None:
        model.load_state_dict(load_dlib_state_dict(weights, cache))
    return model.eval()
