"""Exceptions raised by the perface library.

Library code raises these; only the command line (:mod:`perface.cli`) turns them into one-line messages
and exit codes. Every message names the offending input and, where there is one, the fix.
"""

from __future__ import annotations


class PerFaceError(Exception):
    """Base class of every error perface raises on purpose."""


class ImageLoadError(PerFaceError):
    """An image file or buffer could not be decoded (missing, empty, truncated, corrupt, not an image, too big)."""


class NoFaceError(PerFaceError):
    """No face was found where one was required."""


class UnknownBackboneError(PerFaceError, KeyError):
    """A backbone or model name is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(PerFaceError):
    """Model weights are missing, corrupt, or do not fit the architecture."""


class ModelLoadError(PerFaceError):
    """A model file (checkpoint, ONNX, .pth) could not be loaded."""


class AnnotationError(PerFaceError):
    """A triplet / judgment annotation file is malformed."""


class CampaignError(PerFaceError):
    """An annotation campaign (``perface annotate``) cannot start or be read: bad task rows, images that are
    missing, unreadable or outside the root, an incompatible or missing campaign database."""


class VideoReadError(PerFaceError):
    """A video file or frame folder could not be read (missing, empty, corrupt, no video stream, no frames)."""


class InsufficientSamplesError(PerFaceError):
    """Too few usable samples for a metric (e.g. KID subsets larger than a set, fewer than k+1 points for k-NN)."""


class FeatureExtractorError(PerFaceError):
    """A feature extractor (``timm:NAME``, a model file) could not be created or its weights loaded."""


class GeneratedEvalError(PerFaceError):
    """An evaluation input of generated faces (pairs file, folders, videos list) is malformed or unusable."""


class CampaignError(PerFaceError):
    """An annotation campaign (``perface annotate``) cannot start or be read: bad task rows, images that are
    missing, unreadable or outside the root, an incompatible or missing campaign database."""
