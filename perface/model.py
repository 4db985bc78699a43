"""The PerFace model: backbone (+ optional projection head) + its preprocessing, as one ``nn.Module``.

Training (the Lightning module holds one), evaluation, export and identity selection all use this object.
Embeddings are L2-normalised; similarity is their cosine, higher = more similar.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perface.backbones.registry import get_backbone_spec
from perface.embedder import FaceEmbedder
from perface.errors import SettingsError
from perface.perceptual import PerceptualBranch
from perface.preprocessing import FaceOptions, Preprocessing

FORMAT_VERSION = 1


def state_dict_digest(module: nn.Module) -> str:
    """``"torch-state-sha256:<hex>"``: SHA-256 over a module's ``state_dict`` (names, dtypes, shapes, values)."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "torch-state-sha256:" + h.hexdigest()


def mirror(chips: torch.Tensor) -> torch.Tensor:
    """Chips mirrored left-right: (N, C, H, W) -> (N, C, H, W), the width axis reversed."""
    return torch.flip(chips, dims=[3])


def flip_sum(embed: Callable[[torch.Tensor, bool], torch.Tensor], chips: torch.Tensor,
             flip: Callable[[torch.Tensor], torch.Tensor] = mirror) -> torch.Tensor:
    """Flip test-time augmentation: ``embed(chips, False) + embed(flip(chips), True)``.

    The one definition of ``flip_tta`` (:class:`PerFace` and training's validation both call it); the sum is
    taken before L2 normalisation.

    Args:
        embed: ``(chips, mirrored) -> (N, D)`` raw embeddings; ``mirrored`` tells it which orientation it
            gets (training uses it to key its feature cache).
        chips: (N, 3, S, S) float32 normalised chips, or any layout ``flip`` mirrors.
        flip: Mirrors ``chips`` left-right (default :func:`mirror`, for (N, C, H, W); training passes uint8
            (N, S, S, 3) chips with :func:`perface.training.triplet_dataset.mirror_chips`).

    Returns:
        (N, D) float32, not normalised.
    """
    return embed(chips, False) + embed(flip(chips), True)


class PerFace(nn.Module, FaceEmbedder):
    """Face embedding network with its preprocessing.

    Args:
        backbone: Registry name (see :func:`perface.list_backbones`).
        head_dim: Width of an optional linear projection head on top of the backbone, initialised to the
            identity when it equals the backbone's width (so a fresh head leaves the base model unchanged).
            None: no head.
        pretrained: Load the backbone's packaged weights when it has them (``BackboneSpec.packaged_weights``).
        backbone_kwargs: Extra builder arguments (e.g. ``weights=`` an insightface ONNX / arcface_torch .pth),
            see :meth:`perface.backbones.registry.BackboneSpec.build`.
        name: How this model is reported (``score --json``, eval tables).
        preprocessing: Override the backbone's preprocessing (rarely needed).
        flip_tta: Embed each chip and its mirror image and sum the two (test-time augmentation, as in
            insightface's evaluation): a little more robust, twice the compute. Staged training
            (:meth:`trunk` / :meth:`top`) sees one orientation at a time.
        face_options: How faces are found and chosen (default :class:`FaceOptions`); training records the
            settings its chips were made with, and ``.pt`` / ``.ckpt`` / ONNX files carry them.
        perceptual_weight: None: one network (the backbone, fine-tuned or not). A weight ``w`` in (0, 1): a
            two-branch model. The backbone is the frozen identity branch; a
            :class:`~perface.perceptual.PerceptualBranch` (a trainable copy of its last ``perceptual_stages``
            stages and head) reads the same feature map. The embedding is
            ``[sqrt(1 - w) * n(z_identity), sqrt(w) * n(z_perceptual)]`` (``n`` = L2 normalisation, each branch
            summed over both orientations first with ``flip_tta``), a unit vector whose cosine is
            ``(1 - w) * cos_identity + w * cos_perceptual``. A fresh branch equals the identity branch, so a
            fresh two-branch model scores exactly like its backbone.
        perceptual_stages: Stages of the perceptual branch (default 2; 1..number of stages).

    Call forms (tensors are normalised chips, see :meth:`Preprocessing.normalize`):
        ``model(x)``: (N, 3, S, S) float32 -> (N, D) L2-normalised embeddings.
        ``model(a, b)``: two such batches -> (N,) cosine similarities in [-1, 1] (higher = more similar).
        ``model.embed(images)``: paths / PIL / arrays -> numpy (N, D) (see :class:`FaceEmbedder`).
    """

    def __init__(self, backbone: str = "dlib_resnet", head_dim: int | None = None, pretrained: bool = True,
                 backbone_kwargs: dict | None = None, name: str = "base",
                 preprocessing: Preprocessing | None = None, flip_tta: bool = False,
                 face_options: FaceOptions | None = None, perceptual_weight: float | None = None,
                 perceptual_stages: int | None = None):
        nn.Module.__init__(self)
        spec = get_backbone_spec(backbone)
        self.backbone_name = backbone
        self.name = name
        self.preprocessing = preprocessing or spec.preprocessing
        self.backbone = spec.build(pretrained=pretrained, **(backbone_kwargs or {}))
        self.backbone_embedding_dim = spec.embedding_dim
        self.head_dim = head_dim
        self.head: nn.Module | None = None
        if head_dim is not None:
            self.head = nn.Linear(spec.embedding_dim, head_dim, bias=False)
            if head_dim == spec.embedding_dim:
                nn.init.eye_(self.head.weight)
        self.embedding_dim = head_dim or spec.embedding_dim
        self.perceptual_weight: float | None = None
        self.perceptual: PerceptualBranch | None = None
        if perceptual_weight is not None:
            w = float(perceptual_weight)
            if not 0 < w < 1:
                raise SettingsError(f"perceptual_weight must be in (0, 1) (exclusive), got {perceptual_weight}")
            if head_dim is not None:
                raise SettingsError("head_dim and perceptual_weight cannot be combined: a two-branch model keeps the "
                                    "identity embedding as it is and learns in its perceptual branch")
            self.perceptual_weight = w
            self.perceptual = PerceptualBranch(self.backbone, 2 if perceptual_stages is None else perceptual_stages)
            self.embedding_dim = 2 * spec.embedding_dim
        elif perceptual_stages is not None:
            raise SettingsError("perceptual_stages needs perceptual_weight (the share of the perceptual branch)")
        self.flip_tta = bool(flip_tta)
        self.face_options = face_options or FaceOptions()
        self.eval()

    # --- torch API ------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        ex = self.embed_tensor(x)
        if y is None:
            return ex
        return (ex * self.embed_tensor(y)).sum(dim=1)

    def embed_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised chips -> (N, D) L2-normalised embeddings (differentiable)."""
        return self.normalize_embedding(self._raw(x))

    def normalize_embedding(self, raw: torch.Tensor) -> torch.Tensor:
        """(N, D) raw embeddings -> (N, D) unit vectors: L2 normalisation, or for a two-branch model each
        branch's part normalised and weighted by ``sqrt(1 - w)`` / ``sqrt(w)`` (the cosine of two results is
        ``(1 - w) * cos_identity + w * cos_perceptual``)."""
        if self.perceptual is None:
            return F.normalize(raw, dim=1)
        d, w = self.backbone_embedding_dim, self.perceptual_weight
        identity, perceptual = F.normalize(raw[:, :d], dim=1), F.normalize(raw[:, d:], dim=1)
        return torch.cat([identity * math.sqrt(1 - w), perceptual * math.sqrt(w)], dim=1)

    def _raw(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) chips -> (N, D) embeddings before normalisation (mirror added with ``flip_tta``)."""
        def one(chips: torch.Tensor, mirrored: bool) -> torch.Tensor:
            if self.perceptual is None:
                return self._project(self.backbone(chips))
            shared = self.shared_stages
            return self.top(self.trunk(chips, shared), shared, normalize=False)

        return flip_sum(one, x) if self.flip_tta else one(x, False)

    def _project(self, z: torch.Tensor) -> torch.Tensor:
        """The optional projection head on (N, backbone width) raw backbone embeddings."""
        return z if self.head is None else self.head(z)

    # --- staged forward (training freezes the first stages and may cache their output) ------------------
    @property
    def num_stages(self) -> int:
        return len(self.backbone.stages)

    @property
    def shared_stages(self) -> int:
        """Stages whose output both branches of a two-branch model read (all stages for one network)."""
        return self.num_stages if self.perceptual is None else self.perceptual.first

    def trunk(self, x: torch.Tensor, frozen_stages: int) -> torch.Tensor:
        """Stem and the first ``frozen_stages`` stages: (N, 3, S, S) chips -> feature map."""
        x = self.backbone.stem(x)
        for stage in list(self.backbone.stages)[:frozen_stages]:
            x = stage(x)
        return x

    def top(self, features: torch.Tensor, frozen_stages: int, normalize: bool = True) -> torch.Tensor:
        """The remaining stages, backbone head and projection head (or both branches): feature map after
        ``frozen_stages`` stages -> (N, D) embeddings (normalised by :meth:`normalize_embedding` unless
        ``normalize=False``). One orientation: no flip test-time augmentation."""
        x = features
        stages = list(self.backbone.stages)
        if self.perceptual is None:
            for stage in stages[frozen_stages:]:
                x = stage(x)
            z = self._project(self.backbone.head(x))
        else:
            shared = self.shared_stages
            if frozen_stages > shared:
                raise ValueError(f"the branches of this model part after stage {shared}; got features after "
                                 f"{frozen_stages} stages")
            for stage in stages[frozen_stages:shared]:
                x = stage(x)
            z = torch.cat([self.identity_top(x), self.perceptual(x)], dim=1)
        return self.normalize_embedding(z) if normalize else z

    def identity_top(self, features: torch.Tensor) -> torch.Tensor:
        """Two-branch model: the identity branch's tail (the backbone's stages after :attr:`shared_stages` and
        its head) on the shared feature map -> (N, backbone width) raw identity embeddings."""
        x = features
        for stage in list(self.backbone.stages)[self.shared_stages:]:
            x = stage(x)
        return self.backbone.head(x)

    def embed(self, images, *args, **kwargs):  # noqa: D102 - documented on FaceEmbedder
        if isinstance(images, torch.Tensor):
            return self.embed_tensor(images)
        return FaceEmbedder.embed(self, images, *args, **kwargs)

    embed.__doc__ = "Tensor (N, 3, S, S) -> tensor embeddings; images -> numpy, see FaceEmbedder.embed.\n\n" + (
        FaceEmbedder.embed.__doc__ or "")

    def identity(self) -> str:
        """Digest of the weights (:func:`state_dict_digest`): changes whenever a weight does."""
        return state_dict_digest(self)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _embed_normalized(self, batch: np.ndarray) -> np.ndarray:
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                x = torch.from_numpy(batch).to(self.device)
                return self.normalize_embedding(self._raw(x)).float().cpu().numpy()
        finally:
            self.train(was_training)

    # --- persistence ----------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """What :meth:`from_config` needs besides the weights (travels in checkpoints and ONNX metadata)."""
        return {
            "format_version": FORMAT_VERSION,
            "backbone": self.backbone_name,
            "head_dim": self.head_dim,
            "name": self.name,
            "embedding_dim": self.embedding_dim,
            "flip_tta": self.flip_tta,
            "perceptual_weight": self.perceptual_weight,
            "perceptual_stages": None if self.perceptual is None else self.perceptual.stages,
            "preprocessing": self.preprocessing.to_dict(),
            "face_options": self.face_options.to_dict(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], state_dict: dict[str, torch.Tensor] | None = None) -> "PerFace":
        model = cls(backbone=config["backbone"], head_dim=config.get("head_dim"), pretrained=state_dict is None,
                    name=config.get("name", "perface"), preprocessing=Preprocessing.from_dict(config["preprocessing"]),
                    flip_tta=bool(config.get("flip_tta", False)),
                    face_options=FaceOptions.from_dict(config.get("face_options")),
                    perceptual_weight=config.get("perceptual_weight"),
                    perceptual_stages=config.get("perceptual_stages"))
        if state_dict is not None:
            model.load_state_dict(state_dict)
        return model.eval()

    def save(self, path: str | os.PathLike) -> Path:
        """Save config + weights to a ``.pt`` file that :func:`perface.load` reads."""
        path = Path(path)
        torch.save({"perface": self.config(), "state_dict": self.state_dict()}, path)
        return path
