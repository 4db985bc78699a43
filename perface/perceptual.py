"""The perceptual branch of a two-branch PerFace model: a trainable copy of a backbone's last stages and head.

A two-branch model (:class:`perface.model.PerFace` with ``perceptual_weight``) runs the backbone's stem and
first stages once, then two tails on the same feature map: the frozen identity network's own last stages and
head, and this branch, which starts as an exact copy of them and is what training changes. The similarity of
two faces is ``(1 - w) * cos(identity) + w * cos(perceptual)``, so the identity embedding can never be
forgotten; ``w`` sets how much the learned perceptual component counts.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from perface.backbones.base import Backbone
from perface.errors import SettingsError


def _strip(root: nn.Module, modules: list[nn.Module]) -> None:
    """Replace each of ``modules`` inside ``root`` by ``nn.Identity`` (drops their weights from the copy)."""
    targets = {id(m) for m in modules}
    for parent in list(root.modules()):
        for name, child in list(parent.named_children()):
            if id(child) in targets:
                setattr(parent, name, nn.Identity())


class PerceptualBranch(nn.Module):
    """A copy of ``backbone``'s last ``stages`` stages and its head, reading the feature map the backbone's
    first ``num_stages - stages`` stages produce.

    The copy keeps only the weights it uses (the stem and the first stages are dropped), so a fresh branch
    computes exactly what the backbone's own tail computes.

    Args:
        backbone: The identity network (its weights are copied, not shared).
        stages: How many stages, counted from the output side, the branch has (1..num_stages).

    Shapes:
        ``forward``: the feature map after stage ``first`` (e.g. (N, 128, 8, 8) float32 for the dlib ResNet
        with 2 stages) -> (N, D) raw embeddings (not normalised), D the backbone's embedding width.

    Raises:
        SettingsError: ``stages`` outside 1..num_stages.
    """

    def __init__(self, backbone: Backbone, stages: int):
        super().__init__()
        n = backbone.num_stages
        if not 1 <= int(stages) <= n:
            raise SettingsError(f"perceptual branch stages must be in 1..{n} for {type(backbone).__name__}, "
                                f"got {stages}")
        self.stages = int(stages)
        self.first = n - self.stages
        net = copy.deepcopy(backbone)
        _strip(net, net.stem_modules() + list(net.stages)[: self.first])
        self.net = net

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features
        for stage in list(self.net.stages)[self.first:]:
            x = stage(x)
        return self.net.head(x)

    def set_trainable(self, freeze_affine: bool = False) -> None:
        """Make the branch's stages and head trainable (normalisation layers fixed with ``freeze_affine``,
        keeping their running statistics), through the backbone contract."""
        self.net.set_trainable(self.stages, freeze_affine)
