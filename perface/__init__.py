"""PerFace: perceptual face similarity.

Scores are cosine similarities of L2-normalised embeddings in [-1, 1]; **higher means more similar**
(the same person, or faces that look alike). Distances, where used, are ``1 - similarity``.

Typical use::

    import perface
    model = perface.load("base")          # dlib ResNet, or a .ckpt / .onnx / insightface file
    model.score("a.jpg", "b.jpg")         # float, higher = more similar
    model.embed(["a.jpg", "b.jpg"])       # (2, D) float32, rows L2-normalised
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perface.version import __version__

__all__ = ["__version__", "load", "list_backbones", "list_models"]

if TYPE_CHECKING:  # pragma: no cover
    from perface.loading import list_models, load
    from perface.backbones.registry import list_backbones


def __getattr__(name: str):
    # Lazy so that `import perface` imports neither torch nor dlib.
    if name in ("load", "list_models"):
        from perface import loading

        return getattr(loading, name)
    if name == "list_backbones":
        from perface.backbones.registry import list_backbones

        return list_backbones
    raise AttributeError(f"module 'perface' has no attribute {name!r}")
