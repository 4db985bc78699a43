"""The backbone contract: a face-recognition network as ``stem -> stages -> head``.

Training freezes all but the last stages, may cache the frozen part's output, and keeps frozen normalisation
layers' running statistics; :class:`perface.model.PerFace` runs the parts separately for that
(``trunk`` / ``top``). None of this needs a layer name: a backbone says which modules make up its stem, its
stages and its head, which layers are normalisation layers and which parameters never train, and
:meth:`Backbone.set_trainable` does the rest. :class:`~perface.backbones.dlib_resnet.DlibResNet` and
:class:`~perface.backbones.iresnet.IResNet` implement it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import nn

from perface.errors import SettingsError

#: Layers :meth:`Backbone.normalization_modules` finds by default (dlib's folded ``Affine`` is added by its backbone).
NORMALIZATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
)


class Backbone(nn.Module, ABC):
    """A face-recognition network mapping normalised chips to raw embeddings in three parts.

    A subclass provides:

    * :meth:`stem` (chips -> first feature map) and :meth:`stem_modules` (the modules it uses);
    * ``stages``: a sequence of ``nn.Module`` (an ``nn.ModuleList`` attribute or a property), input side
      first, each mapping a feature map to the next;
    * :meth:`head` (last feature map -> (N, D) raw embedding) and :meth:`head_modules` (the modules it uses;
      they train along with the last stages);

    and may override :meth:`normalization_modules` (what ``freeze_affine`` freezes) and
    :meth:`fixed_parameters` (parameters that never train). Every parameter belongs to exactly one of stem,
    stages and head (``tests/backbones/test_contract.py`` checks this for every registered backbone).

    Shapes:
        ``forward``: (N, 3, S, S) float32 normalised chips -> (N, D) float32 raw embeddings (not normalised).
    """

    stages: Sequence[nn.Module]

    def __init__(self) -> None:
        super().__init__()
        self._frozen_normalization: tuple[str, ...] = ()

    @abstractmethod
    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) chips -> the feature map the first stage reads."""

    @abstractmethod
    def head(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map -> (N, D) raw embeddings."""

    @abstractmethod
    def stem_modules(self) -> list[nn.Module]:
        """Modules whose parameters :meth:`stem` uses."""

    @abstractmethod
    def head_modules(self) -> list[nn.Module]:
        """Modules whose parameters :meth:`head` uses; they train whenever at least one stage trains."""

    def normalization_modules(self) -> list[nn.Module]:
        """Normalisation / per-channel affine layers (``freeze_affine`` keeps them fixed).

        Default: every module of a :data:`NORMALIZATION_TYPES` type.
        """
        return [m for m in self.modules() if isinstance(m, NORMALIZATION_TYPES)]

    def fixed_parameters(self) -> list[nn.Parameter]:
        """Parameters that never train (e.g. arcface_torch's fixed feature scale). Default: none."""
        return []

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``head(stages(stem(x)))``: (N, 3, S, S) normalised chips -> (N, D) raw embeddings."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

    def set_trainable(self, last_n_stages: int | None, freeze_affine: bool = False) -> int:
        """Choose which parameters train.

        * ``last_n_stages=None`` or all stages: the whole backbone trains (stem included);
        * ``0 < last_n_stages < num_stages``: the last ``last_n_stages`` stages and the head train; the stem
          and the first stages are frozen;
        * ``0``: nothing in the backbone trains (only a projection head on top of it would).

        ``freeze_affine`` also keeps every :meth:`normalization_modules` layer fixed; :meth:`fixed_parameters`
        never train. Normalisation layers that end up frozen (in a frozen part, or by ``freeze_affine``) keep
        their running statistics: :meth:`train` leaves them in eval mode from now on.

        Args:
            last_n_stages: Number of trainable stages counted from the output side, or None for all.
            freeze_affine: Freeze normalisation / affine layers everywhere.

        Returns:
            The number of frozen stages counted from the input side (``num_stages - last_n_stages``); their
            output (see :meth:`perface.model.PerFace.trunk`) does not depend on any trainable parameter.

        Raises:
            SettingsError: ``last_n_stages`` is outside ``0..num_stages``.
        """
        n = self.num_stages
        if last_n_stages is not None and not 0 <= last_n_stages <= n:
            raise SettingsError(f"trainable stages must be in 0..{n} for {type(self).__name__}, got {last_n_stages}")
        frozen = 0 if last_n_stages is None else n - last_n_stages
        if frozen == 0:
            trainable: list[nn.Module] = [self]
        else:
            trainable = list(self.stages)[frozen:] + (self.head_modules() if frozen < n else [])
        self.requires_grad_(False)
        for module in trainable:
            module.requires_grad_(True)
        trainable_ids = {id(m) for part in trainable for m in part.modules()}
        frozen_norms = {id(m) for m in self.normalization_modules() if freeze_affine or id(m) not in trainable_ids}
        if freeze_affine:
            for m in self.normalization_modules():
                m.requires_grad_(False)
        for p in self.fixed_parameters():
            p.requires_grad_(False)
        self._frozen_normalization = tuple(name for name, m in self.named_modules() if id(m) in frozen_norms)
        self.train(self.training)
        return frozen

    def train(self, mode: bool = True) -> Backbone:
        """Like ``nn.Module.train``, but normalisation layers frozen by :meth:`set_trainable` stay in eval mode
        (batch norm keeps its running statistics instead of re-estimating them from training batches)."""
        super().train(mode)
        if mode and self._frozen_normalization:
            modules = dict(self.named_modules())
            for name in self._frozen_normalization:
                modules[name].eval()
        return self
