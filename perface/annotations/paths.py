"""Image paths in annotation files: the dataset root, and turning tool exports' paths/URLs into root-relative paths.

Every path perface writes into a judgment or triplet file is POSIX-style and relative to a dataset root
(``root / path`` is the image). The root is :func:`perface.io.files.data_root`.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from urllib.parse import unquote, urlparse

from perface.errors import PathProblem

__all__ = ["DEFAULT_URL_PREFIXES", "PathProblem", "find_label_file", "normalize_path", "relative_to_root"]

#: URL prefixes stripped from image references by default: Label Studio's local-files serving
#: (``/data/local-files/?d=<path relative to its document root>``) and ``file://`` URLs.
DEFAULT_URL_PREFIXES = ("/data/local-files/?d=",)


def normalize_path(value, root: str | os.PathLike | None = None,
                   url_prefixes: tuple[str, ...] | list[str] = DEFAULT_URL_PREFIXES) -> str:
    """Turn an image reference from an export into a clean POSIX path relative to the dataset root.

    * the first matching ``url_prefixes`` entry is stripped and the rest URL-decoded;
    * ``file://`` URLs become paths; other URLs (``http://...``) that no prefix matched are refused;
    * backslashes become slashes, ``./`` and ``a/../`` are collapsed;
    * an absolute path is made relative to ``root`` if it lies inside it.

    Raises:
        PathProblem: ``malformed-row`` (empty), ``unresolved-url`` (a URL no prefix maps) or
            ``path-escapes-root`` (absolute path outside the root, or ``..`` climbing out of it).
    """
    if value is None or (isinstance(value, float) and value != value):
        raise PathProblem("malformed-row", "empty image path")
    text = str(value).strip()
    if not text:
        raise PathProblem("malformed-row", "empty image path")
    for prefix in url_prefixes:
        if prefix and text.startswith(prefix):
            text = unquote(text[len(prefix):])
            break
    else:
        if text.startswith("file://"):
            text = unquote(urlparse(text).path)
        elif "://" in text:
            raise PathProblem("unresolved-url",
                              f"{text!r} is a URL that no --url-prefix maps to a path under the dataset root")
    text = text.replace("\\", "/")
    if not text:
        raise PathProblem("malformed-row", "empty image path")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):  # absolute (POSIX or Windows drive)
        if root is None:
            raise PathProblem("path-escapes-root", f"{text!r} is absolute and no dataset root was given")
        root_s = Path(root).resolve().as_posix().rstrip("/") + "/"
        norm = posixpath.normpath(text)
        if not norm.startswith(root_s):
            raise PathProblem("path-escapes-root", f"{text!r} is outside the dataset root {root_s.rstrip('/')}")
        text = norm[len(root_s):]
    norm = posixpath.normpath(text)
    if norm == ".." or norm.startswith("../") or norm == ".":
        raise PathProblem("path-escapes-root", f"{str(value).strip()!r} climbs out of the dataset root")
    return norm


def relative_to_root(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """POSIX path of ``path`` relative to ``root`` (may start with ``../`` if outside)."""
    return Path(os.path.relpath(Path(path).resolve(), Path(root).resolve())).as_posix()


def find_label_file(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """A label file named on the command line or in a config: as given (relative to the current folder) when it
    exists there or is absolute, else relative to the dataset ``root``. A file found nowhere is returned as given
    (reading it then names it)."""
    p = Path(os.path.expandvars(os.fspath(path))).expanduser()
    if p.exists() or p.is_absolute():
        return p
    return Path(root) / p if (Path(root) / p).exists() else p
