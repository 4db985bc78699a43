"""Backbone registry: one factory used by training, inference and export.

Entries are looked up lazily (``"module:function"`` strings), so listing backbones imports no torch.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any

from perface.errors import UnknownBackboneError
from perface.preprocessing import ARCFACE, DLIB, Preprocessing


@dataclass(frozen=True)
class BackboneSpec:
    """What the registry knows about a backbone.

    Attributes:
        name: Registry name (``list_backbones()`` lists them).
        builder: ``"module:function"``; the function takes ``**kwargs`` and returns an ``nn.Module`` mapping
            normalised chips (N, 3, size, size) float32 to raw embeddings (N, embedding_dim).
        preprocessing: Alignment and normalisation the weights expect.
        embedding_dim: Output width.
        description: One line for ``perface info`` and error messages.
        kwargs: Fixed keyword arguments passed to the builder.
    """

    name: str
    builder: str
    preprocessing: Preprocessing
    embedding_dim: int
    description: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self, **kwargs: Any):
        module_name, func_name = self.builder.split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        return func(**{**self.kwargs, **kwargs})


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


def build_backbone(name: str, **kwargs: Any):
    """Build the ``nn.Module`` of a registered backbone (see :class:`BackboneSpec`)."""
    return get_backbone_spec(name).build(**kwargs)


register_backbone(
    BackboneSpec(
        name="dlib_resnet",
        builder="perface.backbones.dlib_resnet:build_dlib_resnet",
        preprocessing=DLIB,
        embedding_dim=128,
        description="dlib face-recognition ResNet-29 (5.6M parameters, 150x150, 128-d), weights from dlib",
    )
)
for _depth in (18, 34, 50, 100):
    register_backbone(
        BackboneSpec(
            name=f"iresnet{_depth}",
            builder="perface.backbones.iresnet:build_iresnet",
            preprocessing=ARCFACE,
            embedding_dim=512,
            description=f"insightface ArcFace iResNet-{_depth} (112x112, 512-d); weights from an insightface "
            "ONNX file or an arcface_torch .pth",
            kwargs={"depth": _depth},
        )
    )
