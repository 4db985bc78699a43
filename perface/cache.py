"""Where perface keeps derived files (parsed weights, chip and embedding caches).

Resolution order: an explicit argument, then the ``PERFACE_CACHE`` environment variable, then the
platform's user cache directory (``~/.cache/perface`` on Linux). Nothing is created at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "PERFACE_CACHE"


def cache_dir(path: str | os.PathLike | None = None, *, create: bool = True) -> Path:
    """Return the cache directory, creating it when ``create`` is true.

    Args:
        path: Explicit directory; wins over everything else.
        create: Make the directory (and parents) if missing.

    Returns:
        Absolute path of the cache directory.
    """
    if path is not None:
        root = Path(path)
    elif os.environ.get(ENV_VAR):
        root = Path(os.environ[ENV_VAR])
    else:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("perface", appauthor=False))
    root = root.expanduser().resolve()
    if create:
        root.mkdir(parents=True, exist_ok=True)
    return root


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's content (the key of every content-addressed cache entry)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def cache_key(preprocessing, face_options, weights: str | None = None, **extra) -> str:
    """The one key of everything PerFace derives from images and caches (chips, embeddings, thresholds).

    Args:
        preprocessing: A :class:`perface.preprocessing.Preprocessing` (chip geometry and normalisation).
        face_options: A :class:`perface.preprocessing.FaceOptions` (how faces are found and chosen).
        weights: The model's weights digest (``model.identity()``); None for what does not depend on the
            weights (aligned chips).
        **extra: JSON-serialisable values the cached thing also depends on (e.g. ``flip_tta``, the pairs file's
            digest and FAR of a threshold); ``None`` and ``False`` values are left out, so adding an option
            that defaults to off keeps earlier keys.

    Returns:
        64 hex characters (SHA-256 of the canonical JSON of all inputs).
    """
    import hashlib
    import json

    parts = {"preprocessing": preprocessing.to_dict(), "face_options": face_options.to_dict()}
    if weights is not None:
        parts["weights"] = str(weights)
    parts.update({k: v for k, v in extra.items() if v is not None and v is not False})
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def cached_file_sha256(path: str | os.PathLike) -> str:
    """:func:`file_sha256`, remembered per (real path, size, modification time) in ``cache_dir()/file_digests.json``,
    so that start-up does not re-hash large weight files."""
    import json

    real = os.path.realpath(os.fspath(path))
    st = os.stat(real)
    stamp = [st.st_size, st.st_mtime_ns]
    index_file = cache_dir() / "file_digests.json"
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError):
        index = {}
    entry = index.get(real)
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    digest = file_sha256(real)
    index[real] = {"stamp": stamp, "sha256": digest}
    tmp = index_file.with_name(f"{index_file.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(index))
        os.replace(tmp, index_file)
    except OSError:
        pass  # a read-only cache only costs the re-hash next time
    return digest
