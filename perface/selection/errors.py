"""Errors of gallery building and identity selection (the CLI prints them as one ``perface: ...`` line)."""

from __future__ import annotations

from perface.errors import PerFaceError

__all__ = ["GalleryError", "SelectionError"]


class GalleryError(PerFaceError):
    """A gallery cannot be built, read or used (bad file, no usable face, mismatched model, bad label file)."""


class SelectionError(PerFaceError):
    """A selection request cannot be answered (bad band or threshold, unknown attribute, unknown target)."""
