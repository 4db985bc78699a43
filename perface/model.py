"""The PerFace model: backbone (+ optional projection head) + its preprocessing, as one ``nn.Module``.

Training (the Lightning module holds one), evaluation, export and identity selection all use this object.
Embeddings are L2-normalised; similarity is their cosine, higher = more similar.
"""

from __future__ import annotations

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


def flip_sum(embed: Callable[[torch.Tensor, bool], torch.Tensor], chips: torch.Tensor) -> torch.Tensor:
    """Flip test-time augmentation: ``embed(chips, False) + embed(mirror(chips), True)``.

    The one definition of ``flip_tta`` (:class:`PerFace` and training's validation both call it); the sum is
    taken before L2 normalisation.

    Args:
        embed: ``(chips (N, 3, S, S), mirrored) -> (N, D)`` raw embeddings; ``mirrored`` tells it which
            orientation it gets (training uses it to key its feature cache).
        chips: (N, 3, S, S) float32 normalised chips.

    Returns:
        (N, D) float32, not normalised.
    """
    return embed(chips, False) + embed(mirror(chips), True)


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

    Call forms (tensors are normalised chips, see :meth:`Preprocessing.normalize`):
        ``model(x)``: (N, 3, S, S) float32 -> (N, D) L2-normalised embeddings.
        ``model(a, b)``: two such batches -> (N,) cosine similarities in [-1, 1] (higher = more similar).
        ``model.embed(images)``: paths / PIL / arrays -> numpy (N, D) (see :class:`FaceEmbedder`).
    """

    def __init__(self, backbone: str = "dlib_resnet", head_dim: int | None = None, pretrained: bool = True,
                 backbone_kwargs: dict | None = None, name: str = "base",
                 preprocessing: Preprocessing | None = None, flip_tta: bool = False,
                 face_options: FaceOptions | None = None):
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
        return F.normalize(self._raw(x), dim=1)

    def _raw(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) chips -> (N, D) embeddings before L2 normalisation (mirror added with ``flip_tta``)."""
        def one(chips: torch.Tensor, mirrored: bool) -> torch.Tensor:
            return self._project(self.backbone(chips))

        return flip_sum(one, x) if self.flip_tta else one(x, False)

    def _project(self, z: torch.Tensor) -> torch.Tensor:
        """The optional projection head on (N, backbone width) raw backbone embeddings."""
        return z if self.head is None else self.head(z)

    # --- staged forward (training freezes the first stages and may cache their output) ------------------
    @property
    def num_stages(self) -> int:
        return len(self.backbone.stages)

    def trunk(self, x: torch.Tensor, frozen_stages: int) -> torch.Tensor:
        """Stem and the first ``frozen_stages`` stages: (N, 3, S, S) chips -> feature map."""
        x = self.backbone.stem(x)
        for stage in list(self.backbone.stages)[:frozen_stages]:
            x = stage(x)
        return x

    def top(self, features: torch.Tensor, frozen_stages: int, normalize: bool = True) -> torch.Tensor:
        """The remaining stages, backbone head and projection head: feature map -> (N, D) embeddings
        (L2-normalised unless ``normalize=False``). One orientation: no flip test-time augmentation."""
        x = features
        for stage in list(self.backbone.stages)[frozen_stages:]:
            x = stage(x)
        z = self._project(self.backbone.head(x))
        return F.normalize(z, dim=1) if normalize else z

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
                return self._raw(x).float().cpu().numpy()
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
            "preprocessing": self.preprocessing.to_dict(),
            "face_options": self.face_options.to_dict(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], state_dict: dict[str, torch.Tensor] | None = None) -> "PerFace":
        model = cls(backbone=config["backbone"], head_dim=config.get("head_dim"), pretrained=state_dict is None,
                    name=config.get("name", "perface"), preprocessing=Preprocessing.from_dict(config["preprocessing"]),
                    flip_tta=bool(config.get("flip_tta", False)),
                    face_options=FaceOptions.from_dict(config.get("face_options")))
        if state_dict is not None:
            model.load_state_dict(state_dict)
        return model.eval()

    def save(self, path: str | os.PathLike) -> Path:
        """Save config + weights to a ``.pt`` file that :func:`perface.load` reads."""
        path = Path(path)
        torch.save({"perface": self.config(), "state_dict": self.state_dict()}, path)
        return path
