"""Who is in an image: the identity (folder name or label file) and attributes (label file columns).

A **label file** is a CSV (or Parquet) with a ``path`` column, optionally an ``identity`` column, and any other
columns as attributes (``gender``, ``age_group``, ...). Paths are relative to the label file's folder (as in the
shared data: ``lfw/gender.csv`` lists ``images/AJ_Cook/AJ_Cook_0001.jpg``) or absolute. Images not listed take
their identity from their folder name and have no attributes. Values are stripped strings; empty = unknown.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from perface.selection.errors import GalleryError

__all__ = ["RESERVED_COLUMNS", "LabelTable", "identity_from_path", "read_labels"]

#: Gallery columns an attribute may not be called.
RESERVED_COLUMNS = ("identity", "n_images", "perceptual", "identity_embedding", "images")


def _key(path: str | os.PathLike) -> str:
    return os.path.normcase(os.path.realpath(os.fspath(path)))


def identity_from_path(path: str | os.PathLike) -> str:
    """The identity of an image without a label: the name of the folder holding it."""
    return Path(os.path.abspath(os.fspath(path))).parent.name


@dataclass
class LabelTable:
    """Identity and attributes per image, looked up by path (any spelling of the same file matches)."""

    source: str = ""
    attributes: list[str] = field(default_factory=list)
    rows: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)  # abs path -> (identity, attrs)

    def identity(self, path: str | os.PathLike) -> str:
        """Identity of ``path``: the label file's ``identity`` if listed and non-empty, else the folder name."""
        row = self.rows.get(_key(path))
        return row[0] if row and row[0] else identity_from_path(path)

    def attributes_of(self, path: str | os.PathLike) -> dict[str, str]:
        """Attributes of ``path`` (empty strings left out); ``{}`` when not listed."""
        row = self.rows.get(_key(path))
        return {k: v for k, v in row[1].items() if v} if row else {}

    def __contains__(self, path) -> bool:
        return _key(path) in self.rows


def read_labels(path: str | os.PathLike) -> LabelTable:
    """Read a label file (see the module docstring).

    Raises:
        GalleryError: unreadable file, no ``path`` column, an empty path, or a reserved column name.
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "label file not found", str(path))
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path).astype(str)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise GalleryError(f"{path}: not a readable label file ({' '.join(str(exc).split())}); expected a CSV with "
                           "a header such as 'path,identity,gender'") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if "path" not in frame.columns:
        raise GalleryError(f"{path}:1: no 'path' column (found: {', '.join(frame.columns) or 'nothing'}); a label "
                           "file needs the image path in a 'path' column, e.g. 'path,identity,gender'")
    reserved = [c for c in frame.columns if c in RESERVED_COLUMNS and c != "identity"]
    if reserved:
        raise GalleryError(f"{path}:1: column {reserved[0]!r} is reserved for the gallery itself; rename it")
    frame = frame.apply(lambda col: col.astype(str).str.strip())
    empty = frame.index[frame["path"] == ""]
    if len(empty):
        raise GalleryError(f"{path}:{int(empty[0]) + 2}: empty image path (every row needs one)")
    base = path.resolve().parent
    attributes = [c for c in frame.columns if c not in ("path", "identity")]
    has_identity = "identity" in frame.columns
    table = LabelTable(source=str(path), attributes=attributes)
    for rec in frame.to_dict("records"):
        p = rec["path"]
        full = p if os.path.isabs(p) else os.path.join(base, p)
        table.rows[_key(full)] = (rec["identity"] if has_identity else "", {a: rec[a] for a in attributes})
    return table
