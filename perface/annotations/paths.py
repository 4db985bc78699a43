"""Image paths in annotation files: the dataset root, and turning tool exports' paths/URLs into root-relative paths.

Every path perface writes into a judgment or triplet file is POSIX-style and relative to a dataset root
(``root / path`` is the image). The root is an explicit argument (``--root``), else ``$PERFACE_DATA``.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from urllib.parse import unquote, urlparse

from perface.errors import PerFaceError

__all__ = ["DATA_ENV_VAR", "DEFAULT_URL_PREFIXES", "PathProblem", "data_root", "normalize_path", "relative_to_root"]

DATA_ENV_VAR = "PERFACE_DATA"

#: URL prefixes stripped from image references by default: Label Studio's local-files serving
#: (``/data/local-files/?d=<path relative to its document root>``) and ``file://`` URLs.
DEFAULT_URL_PREFIXES = ("/data/local-files/?d=",)


def data_root(path: str | os.PathLike | None = None) -> Path:
    """The dataset root: ``path`` if given, else ``$PERFACE_DATA``.

    Raises:
        PerFaceError: neither is set, or the folder does not exist.
    """
    if path is None or str(path) == "":
        env = os.environ.get(DATA_ENV_VAR)
        if not env:
            raise PerFaceError(f"no dataset root: pass --root DIR or set {DATA_ENV_VAR} to the folder that holds "
                               "the images (e.g. ../shared/data)")
        path = env
    root = Path(os.path.expandvars(str(path))).expanduser().resolve()
    if not root.is_dir():
        raise PerFaceError(f"dataset root {root} is not a folder (check --root or {DATA_ENV_VAR})")
    return root


class PathProblem(Exception):
    """Why an image reference could not become a root-relative path: ``reason`` is a rejects-file code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


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
