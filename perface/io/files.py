"""Where images are: the dataset root, the folder image paths in a table are relative to, and the image files
under folders.

* :func:`data_root`: an explicit folder, else ``$PERFACE_DATA``, else ``shared/data`` beside a source checkout
  of perface; the one place this is decided.
* :func:`resolve_root`: the folder the image paths of an input table (triplets, pairs, labels, tasks) are
  relative to: ``--root`` when given, else the first of the table's folder, its ``images/`` subfolder and the
  dataset root that holds the table's first image.
* :func:`collect_images`: image files named on a command line or found under folders, following symbolic
  links to files and folders (how datasets are assembled without copying), each real file once, link loops
  detected and reported rather than followed forever.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from perface.errors import FileCollectionError, SettingsError

__all__ = ["DATA_ENV_VAR", "IMAGE_SUFFIXES", "ImageFiles", "collect_images", "data_root", "resolve_root"]

DATA_ENV_VAR = "PERFACE_DATA"
#: File name endings treated as images when folders are searched (files named explicitly are always kept:
#: decoding sniffs the content, so a WEBP called ``.jpg`` loads).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})


def _checkout_data() -> Path | None:
    """``shared/data`` beside the repository when perface runs from a source checkout (editable install)."""
    repo = Path(__file__).resolve().parents[2]
    candidate = repo.parent / "shared" / "data"
    return candidate if (repo / "pyproject.toml").is_file() and candidate.is_dir() else None


def data_root(path: str | os.PathLike | None = None, *, required: bool = True) -> Path | None:
    """The dataset root: ``path`` if given, else ``$PERFACE_DATA``, else ``shared/data`` beside a source checkout.

    Args:
        path: An explicit folder (``--root``, ``data.root``); ``$VARS`` and ``~`` are expanded.
        required: Raise when there is none (else return None).

    Returns:
        The absolute folder, or None (``required=False`` and none found).

    Raises:
        SettingsError: the given or configured folder does not exist, or none is configured (``required``).
    """
    if path is not None and str(path) != "":
        root = Path(os.path.expandvars(os.fspath(path))).expanduser()
        what = f"dataset root {path}"
    elif os.environ.get(DATA_ENV_VAR):
        root = Path(os.path.expandvars(os.environ[DATA_ENV_VAR])).expanduser()
        what = f"{DATA_ENV_VAR}={os.environ[DATA_ENV_VAR]}"
    else:
        found = _checkout_data()
        if found is None and required:
            raise SettingsError(f"no dataset root: pass --root DIR or set {DATA_ENV_VAR} to the folder that holds "
                                "the images (e.g. ../shared/data)")
        return found.resolve() if found else None
    if not root.is_dir():
        if not required:
            return None
        raise SettingsError(f"{what} is not a folder; point it at the folder that holds the images")
    return root.resolve()


def resolve_root(table: str | os.PathLike, paths: Sequence[str] = (), root: str | os.PathLike | None = None,
                 fallback: str | os.PathLike | None = None) -> Path:
    """The folder the image paths of an input table are relative to.

    Args:
        table: The input file (triplets, pairs, labels, tasks).
        paths: Its image paths (relative); the first few decide between the candidates.
        root: ``--root``: wins when given.
        fallback: The dataset root to try last (default :func:`data_root`, when configured).

    Returns:
        ``root``; else the first of (the table's folder, its ``images/`` subfolder, the dataset root) under
        which the first of ``paths`` that exists anywhere exists; else the table's folder (missing images are
        then reported per row).

    Raises:
        SettingsError: ``root`` given but not a folder.
    """
    if root is not None:
        folder = Path(os.path.expandvars(os.fspath(root))).expanduser()
        if not folder.is_dir():
            raise SettingsError(f"--root {root}: not a folder")
        return folder.resolve()
    base = Path(table).resolve().parent
    candidates = [base, base / "images"]
    configured = Path(fallback).resolve() if fallback is not None else data_root(required=False)
    if configured is not None:
        candidates.append(configured)
    relative = [p for p in paths[:20] if p and not os.path.isabs(p)]
    for p in relative:
        for c in candidates:
            if (c / p).exists():
                return c
    return base


@dataclass
class ImageFiles:
    """What :func:`collect_images` found.

    Attributes:
        files: Paths as given or as found under the folders (links not resolved), one per real file, in
            command-line order and sorted within each folder.
        duplicates: Paths left out because they are the same real file as one already in ``files``.
        loops: ``(link, target)`` of folder links that lead back into a folder being walked (not followed).
    """

    files: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    loops: list[tuple[str, str]] = field(default_factory=list)

    def notes(self) -> list[str]:
        """One line per thing the user should know (loops, duplicates), empty when there is none."""
        out = []
        if self.loops:
            link, target = self.loops[0]
            out.append(f"{len(self.loops)} folder link loop(s) not followed (e.g. {link} -> {target})")
        if self.duplicates:
            out.append(f"{len(self.duplicates)} path(s) name a file already listed (links to the same file); "
                       f"each file is used once (e.g. {self.duplicates[0]})")
        return out


def _file_id(path: str) -> tuple[int, int] | str:
    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    except OSError:
        return os.path.abspath(path)  # a missing file stays in the list: it becomes an error row, not a crash


def collect_images(paths: Iterable[str | os.PathLike], suffixes: frozenset[str] = IMAGE_SUFFIXES,
                   require: bool = True) -> ImageFiles:
    """Image files named in ``paths`` (always kept, whatever their extension) and found under folders in them.

    Folders are walked recursively following symbolic links to folders and files; a link back into a folder
    already on the current walk is a loop: recorded in ``loops`` and not followed. A real file reached twice
    (through links, or named twice) is listed once.

    Args:
        paths: Files and folders.
        suffixes: File name endings (lower case) that count as images inside folders.
        require: Raise when nothing is found.

    Raises:
        FileCollectionError: ``require`` and no image file (message names the inputs and the endings).
    """
    found = ImageFiles()
    seen: set = set()

    def add(path: str) -> None:
        key = _file_id(path)
        if key in seen:
            found.duplicates.append(path)
        else:
            seen.add(key)
            found.files.append(path)

    def walk(folder: str, ancestors: frozenset) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        subfolders = []
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
                is_file = not is_dir and entry.is_file(follow_symlinks=True)
            except OSError:
                continue
            if is_dir:
                subfolders.append(entry)
            elif is_file and os.path.splitext(entry.name)[1].lower() in suffixes:
                add(entry.path)
        for entry in subfolders:
            st = os.stat(entry.path)
            key = (st.st_dev, st.st_ino)
            if key in ancestors:
                found.loops.append((entry.path, os.path.realpath(entry.path)))
                continue
            walk(entry.path, ancestors | {key})

    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            st = os.stat(p)
            walk(p, frozenset({(st.st_dev, st.st_ino)}))
        else:
            add(p)
    if require and not found.files:
        given = " ".join(os.fspath(p) for p in paths)
        raise FileCollectionError(f"no image files found in {given or '(nothing given)'} (looked for "
                                  f"{', '.join(sorted(suffixes))}{'; ' + found.notes()[0] if found.notes() else ''})")
    return found
