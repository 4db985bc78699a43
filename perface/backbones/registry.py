"""Backbone registry: one factory used by training, inference and export.

Entries are looked up lazily (``"module:function"`` strings), so listing backbones imports no torch.
"""

from __future__ import annotations

import difflib
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perface.errors import UnknownBackboneError, WeightsError
from perface.preprocessing import ARCFACE, DLIB, Preprocessing


@dataclass(frozen=True)
class BackboneSpec:
    """What the registry knows about a backbone.

    Attributes:
        name: Registry name (``list_backbones()`` lists them).
        builder: ``"module:function"``; the function is called as ``function(pretrained=bool, weights=path or
            None, **kwargs, **extra)`` and returns a :class:`perface.backbones.base.Backbone` mapping
            normalised chips (N, 3, size, size) float32 to raw embeddings (N, embedding_dim).
        preprocessing: Alignment and normalisation the weights expect.
        embedding_dim: Output width.
        description: One line for ``perface info`` and error messages.
        packaged_weights: The installed packages ship trained weights for it (``perface.load(name)`` works
            without a file); otherwise weights come from a file (``weights=``).
        weights_locator: ``"module:function"`` returning the packaged weights file (what the ONNX engine cache is
            keyed by; found without importing torch).
        kwargs: Fixed keyword arguments passed to the builder.
    """

    name: str
    builder: str
    preprocessing: Preprocessing
    embedding_dim: int
    description: str
    packaged_weights: bool = False
    weights_locator: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)

    def packaged_weights_file(self) -> Path:
        """The file of the packaged weights.

        Raises:
            WeightsError: the backbone has none, or the package holding them is missing.
        """
        if not self.weights_locator:
            raise WeightsError(f"{self.name} has no packaged weights file")
        module_name, func_name = self.weights_locator.split(":")
        return Path(getattr(importlib.import_module(module_name), func_name)())

    def build(self, pretrained: bool = True, weights: str | os.PathLike | None = None, **kwargs: Any):
        """Build the backbone.

        Args:
            pretrained: Load the packaged weights when the backbone has them (ignored when it has none).
            weights: A weights file the builder reads (dlib ``.dat``; insightface ``.onnx``, arcface_torch
                ``.pth``), instead of the packaged weights.
            **kwargs: Further builder arguments (e.g. ``cache=`` for dlib, ``dropout=`` for iResNets).

        Returns:
            A :class:`perface.backbones.base.Backbone`, in eval mode when weights were loaded.
        """
        module_name, func_name = self.builder.split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        return func(pretrained=bool(pretrained and self.packaged_weights), weights=weights,
                    **{**self.kwargs, **kwargs})


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> None:
    """Add (or replace) a backbone in the registry."""
    _REGISTRY[spec.name] = spec


def list_backbones() -> list[str]:
    """Names accepted by :func:`get_backbone_spec` and :func:`build_backbone`, sorted."""
    return sorted(_REGISTRY)


def get_backbone_spec(name: str) -> BackboneSpec:
    """Look up a backbone by name.

    Raises:
        UnknownBackboneError: ``name`` is not registered; the message lists close matches and all names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownBackboneError(
            f"unknown backbone {name!r}.{hint} Known backbones: {', '.join(list_backbones())}"
        ) from None


def build_backbone(name: str, pretrained: bool = True, weights: str | os.PathLike | None = None, **kwargs: Any):
    """Build a registered backbone (see :meth:`BackboneSpec.build`)."""
    return get_backbone_spec(name).build(pretrained=pretrained, weights=weights, **kwargs)


def backbone_for_weights(path: str | os.PathLike) -> str:
    """The registry name of the backbone a foreign weights file holds, so it can be built with ``weights=path``.

    Recognised: insightface recognition ``.onnx`` files and arcface_torch ``.pth``/``.pt`` state dicts
    (``iresnet18/34/50/100``; the depth is read from the file).

    Raises:
        ModelLoadError: The file is missing, unreadable, of an unknown format or not an iResNet.
        WeightsError: Its layout matches no registered depth.
    """
    from perface.backbones.insightface_import import iresnet_depth

    name = f"iresnet{iresnet_depth(path)}"
    if name not in _REGISTRY:
        raise WeightsError(f"{path} holds an {name}, which is not registered; registered: {', '.join(list_backbones())}")
    return name


register_backbone(
    BackboneSpec(
        name="dlib_resnet",
        builder="perface.backbones.dlib_resnet:build_dlib_resnet",
        preprocessing=DLIB,
        embedding_dim=128,
        description="dlib face-recognition ResNet-29 (5.6M parameters, 150x150, 128-d), weights from dlib",
        packaged_weights=True,
        weights_locator="perface.dlib_files:recognition_weights_file",
    )
)
for _depth in (18, 34, 50, 100):
    register_backbone(
        BackboneSpec(
            name=f"iresnet{_depth}",
            builder="perface.backbones.insightface_import:build_iresnet_backbone",
            preprocessing=ARCFACE,
            embedding_dim=512,
            description=f"insightface ArcFace iResNet-{_depth} (112x112, 512-d); weights from an insightface "
            "ONNX file or an arcface_torch .pth",
            kwargs={"depth": _depth},
        )
    )
