"""Attribute and identity label files (``path`` plus columns such as ``identity``, ``gender``, ``race``, ``age``).

**Paths in a label file** are relative to the folder holding the label file (as in the shared data:
``utkface/labels.csv`` lists ``images/x.jpg``); if the first listed image is not found there but is found
under the dataset root, the file's paths are taken as relative to the root. :func:`read_labels` returns them
relative to the dataset root (``utkface/images/x.jpg``), the form triplet files use.

**Age bands** (FairFace's ``age_group`` bands): ``0-2, 3-9, 10-19, 20-29, 30-39, 40-49, 50-59, 60-69, 70+``.
A numeric age in years (UTKFace) maps to the band that contains it; a band string is kept as is.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from perface.annotations.schema import read_table
from perface.errors import AnnotationError

__all__ = ["AGE_BANDS", "age_band", "age_band_index", "read_labels"]

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


def read_labels(path: str | os.PathLike, root: str | os.PathLike, path_column: str = "path") -> pd.DataFrame:
    """Read a label CSV; return it with ``path`` relative to ``root`` and every value a stripped string.

    Raises:
        AnnotationError: no path column or an empty path (names file and line).
    """
    path = Path(path)
    frame, kind = read_table(path)
    if path_column not in frame.columns:
        raise AnnotationError(f"{path}:1: no '{path_column}' column (found: {', '.join(frame.columns)}); a label "
                              "file needs the image path in a 'path' column")
    frame = frame.copy()
    for col in frame.columns:
        frame[col] = frame[col].astype(str).str.strip()
    empty = np.flatnonzero(frame[path_column].eq("").to_numpy())
    if len(empty):
        line = int(empty[0]) + 2
        raise AnnotationError(f"{path}:{line}: empty image path (every row needs the image path)")
    root = Path(root).resolve()
    base = path.resolve().parent
    if len(frame):
        first = frame[path_column].iat[0]
        if not (base / first).exists() and (root / first).exists():
            base = root
    frame[path_column] = [Path(os.path.relpath(os.path.normpath(os.path.join(base, p)), root)).as_posix()
                          for p in frame[path_column]]
    if path_column != "path":
        frame = frame.rename(columns={path_column: "path"})
    return frame
