"""iResNets with non-trivial weights, exported to ONNX the way insightface exported its recognition models.

No insightface weights are available offline, so tests make their own "insightface-format" files: a randomly
initialised arcface_torch iResNet with random BN / PReLU parameters, exported by ``torch.onnx.export`` in
eval mode with constant folding (which fuses conv-following BatchNorms), opset 11, input ``input.1`` with a
dynamic batch axis: the layout of ``w600k_r50.onnx`` in insightface's ``buffalo_l``.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from perface.backbones.iresnet import IResNet


def randomise(model: IResNet, seed: int, calibration: np.ndarray | None = None) -> IResNet:
    """Random BN affine and PReLU slopes; running stats from a calibration batch (in place, returned in eval mode).

    Non-trivial BN parameters make the exporter's conv+BN fusion matter; running stats calibrated on the
    test inputs (plus noise) keep activations O(1), so an absolute tolerance means something.

    Args:
        model: The iResNet to change.
        seed: Seed of the random parameters and of 4 noise chips added to the calibration batch.
        calibration: (N, 3, 112, 112) float32 normalised chips, or None for the noise chips alone.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.2)
                module.reset_running_stats()
                module.momentum = None  # cumulative average: running stats = the calibration batch's
            elif isinstance(module, nn.PReLU):
                module.weight.copy_(torch.rand(module.weight.shape, generator=gen) * 0.5)
        batch = [torch.randn(4, 3, 112, 112, generator=gen)]
        if calibration is not None:
            batch.insert(0, torch.from_numpy(calibration))
        model.train()
        model(torch.cat(batch))
    return model.eval()


def export_insightface_onnx(model: nn.Module, path, example: torch.Tensor) -> None:
    """Export the way insightface exported its recognition models (see the module docstring)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript", category=DeprecationWarning)
        torch.onnx.export(
            model.eval(),
            example,
            str(path),
            opset_version=11,
            do_constant_folding=True,
            dynamo=False,
            input_names=["input.1"],
            dynamic_axes={"input.1": {0: "batch"}},
        )
