"""Attribute and identity labels for proxy triplets and sampling: label files as tables of dataset-root-relative
paths, and age bands.

Label files are read by :func:`perface.io.labels.read_labels` (one reader and path rule for all of perface);
:func:`labels_frame` returns them with paths relative to the dataset root (``utkface/images/x.jpg``), the
form triplet files use.

**Age bands** (FairFace's ``age_group`` bands): ``0-2, 3-9, 10-19, 20-29, 30-39, 40-49, 50-59, 60-69, 70+``.
A numeric age in years (UTKFace) maps to the band that contains it; a band string is kept as is.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from perface.io.labels import read_labels

__all__ = ["AGE_BANDS", "age_band", "age_band_index", "age_band_lower", "labels_frame"]

#: Age bands, youngest first (FairFace's age groups).
AGE_BANDS = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+")
_BAND_LOWER = (0, 3, 10, 20, 30, 40, 50, 60, 70)


def age_band(value) -> str | None:
    """Band of an age in years (``23 -> '20-29'``) or a band string (kept); ``None`` if unknown/invalid."""
    if value is None:
        return None
    text = str(value).strip()
    if text in AGE_BANDS:
        return text
    try:
        years = float(text)
    except ValueError:
        return None
    if not np.isfinite(years) or years < 0 or years > 130:
        return None
    idx = int(np.searchsorted(_BAND_LOWER, years, side="right")) - 1
    return AGE_BANDS[idx]


def age_band_index(band: str) -> int:
    """Position of a band in :data:`AGE_BANDS` (0 = ``0-2``)."""
    return AGE_BANDS.index(band)


def age_band_lower(band: str) -> int:
    """Youngest age in years of a band in :data:`AGE_BANDS` (``'10-19' -> 10``)."""
    return _BAND_LOWER[AGE_BANDS.index(band)]


def labels_frame(path: str | os.PathLike, root: str | os.PathLike) -> pd.DataFrame:
    """A label file as a table whose ``path`` column is relative to the dataset ``root`` (POSIX).

    Raises:
        LabelFileError: see :func:`perface.io.labels.read_labels` (the dataset root is the last place its path
            rule looks).
    """
    table = read_labels(path, fallback=root)
    frame = table.frame.copy()
    frame["path"] = table.relative_paths(root)
    return frame
