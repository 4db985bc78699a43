"""Label tables: who is in an image and what they look like (``path`` plus ``identity`` and attribute columns).

One reader, one path rule, one error for every label file perface reads (``perface eval attributes``,
``gallery build --labels``, ``select --labels``, ``triplets from-labels`` / ``sample --labels``):

* CSV or Parquet (:func:`perface.io.tables.read_table`), every value a stripped string, empty = unknown;
* a ``path`` column is required; other columns are attributes (``identity`` is the person);
* paths are relative to the folder given as ``root``, else to the first of the label file's folder, its
  ``images/`` subfolder and the dataset root that holds the first listed image (the shared data's
  ``lfw/gender.csv`` lists ``images/AJ_Cook/AJ_Cook_0001.jpg`` relative to ``lfw/``); absolute paths stay;
* every problem is a :class:`~perface.errors.LabelFileError` naming the file and line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from perface.errors import LabelFileError
from perface.io.files import resolve_root
from perface.io.tables import read_table

__all__ = ["LabelTable", "identity_from_path", "read_labels"]


def _key(path: str | os.PathLike) -> str:
    return os.path.normcase(os.path.realpath(os.fspath(path)))


def identity_from_path(path: str | os.PathLike) -> str:
    """The identity of an image without a label: the name of the folder holding it."""
    return Path(os.path.abspath(os.fspath(path))).parent.name


@dataclass
class LabelTable:
    """A label file, looked up by image path (any spelling of the same file matches).

    Attributes:
        source: The label file.
        root: The folder the ``path`` column is relative to.
        frame: ``path`` and the other columns, all stripped strings, in file order.
        attributes: Columns other than ``path`` and ``identity``.
    """

    source: str
    root: Path
    frame: pd.DataFrame
    attributes: list[str] = field(default_factory=list)
    _rows: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._rows = {_key(f): i for i, f in enumerate(self.files())}

    def files(self) -> list[str]:
        """Absolute image paths in file order."""
        return [p if os.path.isabs(p) else os.path.join(self.root, p) for p in self.frame["path"]]

    def relative_paths(self, root: str | os.PathLike) -> list[str]:
        """POSIX paths of the images relative to ``root`` (``../`` where outside it)."""
        base = Path(root).resolve()
        return [Path(os.path.relpath(os.path.normpath(f), base)).as_posix() for f in self.files()]

    def identity(self, path: str | os.PathLike) -> str:
        """Identity of ``path``: the ``identity`` column if listed and non-empty, else the folder name."""
        i = self._rows.get(_key(path))
        if i is not None and "identity" in self.frame.columns and self.frame["identity"].iat[i]:
            return self.frame["identity"].iat[i]
        return identity_from_path(path)

    def attributes_of(self, path: str | os.PathLike) -> dict[str, str]:
        """Attributes of ``path`` (empty values left out); ``{}`` when not listed."""
        i = self._rows.get(_key(path))
        if i is None:
            return {}
        return {a: self.frame[a].iat[i] for a in self.attributes if self.frame[a].iat[i]}

    def __contains__(self, path) -> bool:
        return _key(path) in self._rows

    def __len__(self) -> int:
        return len(self.frame)


def read_labels(path: str | os.PathLike, root: str | os.PathLike | None = None, *,
                fallback: str | os.PathLike | None = None, path_column: str = "path") -> LabelTable:
    """Read a label file (see the module docstring).

    Args:
        path: The label file (CSV or Parquet).
        root: The folder its paths are relative to (``--root``); default: the path rule above.
        fallback: The dataset root tried last by the path rule (default ``$PERFACE_DATA``).
        path_column: The column holding image paths (renamed to ``path``).

    Raises:
        LabelFileError: unreadable file, no path column, or an empty path (file and line named).
        FileNotFoundError: the file does not exist.
    """
    frame, kind = read_table(path, error=LabelFileError, example="path,identity,gender")
    if path_column not in frame.columns:
        raise LabelFileError(f"{path}:1: no '{path_column}' column (found: {', '.join(frame.columns) or 'nothing'}); "
                             "a label file needs the image path in a 'path' column, e.g. 'path,identity,gender'")
    frame = frame.rename(columns={path_column: "path"}).apply(lambda col: col.astype(str).str.strip())
    empty = np.flatnonzero(frame["path"].eq("").to_numpy())
    if len(empty):
        line = f"{path}: row {int(empty[0]) + 1}" if kind == "parquet" else f"{path}:{int(empty[0]) + 2}"
        raise LabelFileError(f"{line}: empty image path (every row needs the image path)")
    folder = resolve_root(path, list(frame["path"]), root, fallback=fallback)
    attributes = [c for c in frame.columns if c not in ("path", "identity")]
    return LabelTable(source=str(path), root=folder, frame=frame.reset_index(drop=True), attributes=attributes)
