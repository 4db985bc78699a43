"""Image input/output: every image perface touches is decoded by :func:`load_image`."""

from __future__ import annotations

from perface.io.image import load_image, sniff_format

__all__ = ["load_image", "sniff_format"]
