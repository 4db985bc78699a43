"""Exceptions raised by the perface library.

Library code raises these; only the command line (:mod:`perface.cli`) turns them into one-line messages
and exit codes. Every message names the offending input and, where there is one, the fix.
"""

from __future__ import annotations


class PerFaceError(Exception):
    """Base class of every error perface raises on purpose."""


class UsageError(PerFaceError):
    """Wrong command-line usage: a missing or contradictory option (the CLI exits with code 2)."""


class SettingsError(PerFaceError, ValueError):
    """An invalid setting: face options, preprocessing, training or sampling parameters (names the value and the
    valid choices)."""


class ImageLoadError(PerFaceError):
    """An image file or buffer could not be decoded (missing, empty, truncated, corrupt, not an image, too big)."""


class NoFaceError(PerFaceError):
    """No face was found where one was required."""


class JobInterrupted(PerFaceError):
    """A batch job was stopped by Ctrl-C or SIGTERM after saving what it had finished (the CLI exits 130)."""


class WorkerCrashError(PerFaceError):
    """A worker process died while processing one input (that input's error row; the job goes on)."""


class UnknownBackboneError(PerFaceError, KeyError):
    """A backbone or model name is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(PerFaceError):
    """Model weights are missing, corrupt, or do not fit the architecture."""


class ModelLoadError(PerFaceError):
    """A model file (checkpoint, ONNX, .pth) could not be loaded."""


class NotPerFaceExport(ModelLoadError):
    """An ONNX file without PerFace metadata (an insightface recognition model is imported instead)."""


class TableError(PerFaceError):
    """A CSV / Parquet table is unreadable or malformed (the message names the file and line)."""


class AnnotationError(TableError):
    """A triplet / judgment annotation file is malformed."""


class LabelFileError(TableError):
    """A label table (``path`` plus identity / attribute columns) is unreadable or malformed."""


class PathProblem(PerFaceError):
    """Why an image reference in an annotation export could not become a root-relative path.

    Attributes:
        reason: A rejects-file code (``malformed-row``, ``unresolved-url``, ``path-escapes-root``).
        detail: The human-readable explanation.
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class PairsFormatError(TableError):
    """A verification pairs file (LFW ``pairs.txt`` or CSV) is malformed."""


class ExportError(PerFaceError):
    """An ONNX export failed (unsupported model, exporter error, or the parity check)."""


class GalleryError(PerFaceError):
    """A gallery cannot be built, read or used (bad file, no usable face, mismatched model, bad label file)."""


class SelectionError(PerFaceError):
    """A selection request cannot be answered (bad band or threshold, unknown attribute, unknown target)."""


class FileCollectionError(PerFaceError):
    """Input paths hold no image file (or do not exist)."""


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
