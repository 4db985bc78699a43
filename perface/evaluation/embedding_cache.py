"""Embedding cache for evaluation: embed each image once per (model, image content, preprocessing, face
options), however many models, commands or runs ask for it.

Entries live in one SQLite file per model key under ``perface.cache.cache_dir() / "embeddings"``:

* the **model key** is :meth:`perface.embedder.FaceEmbedder.cache_key` (see :func:`perface.cache.cache_key`):
  the model's identity (the SHA-256 of its weights: the ``state_dict`` of a torch model, the file of an ONNX
  model), its preprocessing (alignment template, chip size, normalisation) and face options (detector,
  upsampling, which face; the no-face policy is not part of it, see below);
* each **image** is keyed by the SHA-256 of its file content (renaming or moving files keeps the cache).

Both detected faces and images where no face was found are remembered; a whole-image fallback embedding
(``--on-no-face whole-image``) is stored beside the "no face" record, so switching between ``skip`` and
``whole-image`` reuses everything. Decode errors are not cached.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from perface.cache import cache_key, file_sha256
from perface.embedder import FaceResult

__all__ = ["CACHE_FORMAT", "EmbeddingCache", "embed_paths"]

CACHE_FORMAT = 2
_DETECTED = "detected"
_WHOLE = "whole-image"


class EmbeddingCache:
    """The cache of one model with one set of face options.

    Args:
        model: A loaded model (:func:`perface.load`).
        face: ``"largest"``, ``"center"`` or a face index (one embedding per image); None: the model's.
        root: Folder of the cache files (default: ``cache_dir() / "embeddings"``).
    """

    def __init__(self, model, face: str | int | None = None, root: str | os.PathLike | None = None):
        if root is None:
            from perface.cache import cache_dir

            root = cache_dir() / "embeddings"
        self.root = Path(root)
        options = model.face_options.override(face=face, on_no_face="skip")  # both no-face variants are stored
        if options.face == "all":
            raise ValueError("the embedding cache holds one embedding per image; face='all' is not supported")
        self.key = cache_key(model.preprocessing, options, weights=model.identity(),
                             flip_tta=bool(getattr(model, "flip_tta", False)), format=CACHE_FORMAT,
                             embedding_dim=int(model.embedding_dim))
        self.description = {"format": CACHE_FORMAT, "model": model.name, "model_class": type(model).__name__,
                            "embedding_dim": int(model.embedding_dim), "preprocessing": model.preprocessing.to_dict(),
                            "face_options": options.to_dict(), "key": self.key}
        self.path = self.root / f"{self.key[:32]}.sqlite"
        self.dim = int(model.embedding_dim)
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.root.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=60)
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.execute("CREATE TABLE IF NOT EXISTS emb (image TEXT, variant TEXT, status TEXT, face_index INTEGER, "
                         "box TEXT, detector TEXT, embedding BLOB, PRIMARY KEY (image, variant))")
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('description', ?)", (json.dumps(self.description),))
            conn.commit()
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def lookup(self, hashes: Sequence[str]) -> dict[tuple[str, str], tuple]:
        """``{(image_hash, variant): (status, face_index, box, detector, embedding)}`` for the cached ones."""
        db = self._db()
        out: dict[tuple[str, str], tuple] = {}
        unique = list(dict.fromkeys(hashes))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            rows = db.execute(f"SELECT image, variant, status, face_index, box, detector, embedding FROM emb WHERE image IN "
                              f"({','.join('?' * len(chunk))})", chunk).fetchall()
            for image, variant, status, index, box, detector, blob in rows:
                emb = np.frombuffer(blob, dtype=np.float32).copy() if blob is not None else None
                if emb is not None and emb.shape != (self.dim,):
                    continue  # damaged entry: recompute
                out[(image, variant)] = (status, index, json.loads(box) if box else None, detector, emb)
        return out

    def store(self, rows: list[tuple[str, str, FaceResult]]) -> None:
        """Remember ``(image_hash, variant, result)`` rows (``ok`` and ``no_face`` results only)."""
        data = []
        for image, variant, r in rows:
            if r.status not in ("ok", "no_face"):
                continue
            blob = r.embedding.astype(np.float32).tobytes() if r.embedding is not None else None
            data.append((image, variant, r.status, r.face_index, json.dumps(list(r.box)) if r.box else None,
                         r.detector, blob))
        if data:
            db = self._db()
            db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?, ?, ?, ?, ?, ?)", data)
            db.commit()


def _result(path: str, entry: tuple) -> FaceResult:
    status, index, box, detector, emb = entry
    if status != "ok":
        return FaceResult(path=path, status=status, error=f"no face found in {path}")
    return FaceResult(path=path, face_index=index, box=tuple(box) if box else None, embedding=emb, detector=detector)


def embed_paths(model, paths: Sequence[str | os.PathLike], *, face: str | int | None = None,
                on_no_face: str | None = None,
                batch_size: int = 32, workers: int = 0, cache: bool | EmbeddingCache = True,
                progress: Callable[[int], None] | None = None, chunk: int = 1024) -> list[FaceResult]:
    """One :class:`perface.embedder.FaceResult` per path (same order), reusing cached embeddings.

    Args:
        model: A loaded model.
        paths: Image files.
        face: ``"largest"``, ``"center"`` or a face index; None: the model's face options.
        on_no_face: ``"skip"`` / ``"error"`` (the result has status ``no_face``) or ``"whole-image"``; None: the
            model's face options.
        batch_size, workers: Passed to :meth:`FaceEmbedder.iter_embed_faces` for the images not in the cache
            (one worker pool for all of them).
        cache: True (default cache), False (no cache) or an :class:`EmbeddingCache`.
        progress: Called with the number of images finished since the last call.
        chunk: Cache rows written per transaction.

    Returns:
        Results in input order; ``status`` is ``ok``, ``no_face`` or ``error`` (with ``error`` saying why).
    """
    options = model.face_options.override(face=face, on_no_face=on_no_face)
    if options.face == "all":
        raise ValueError("embed_paths gives one embedding per image; face='all' is not supported")
    face, on_no_face = options.face, options.on_no_face
    names = [os.fspath(p) for p in paths]
    store = cache if isinstance(cache, EmbeddingCache) else (EmbeddingCache(model, face=face) if cache else None)
    results: list[FaceResult | None] = [None] * len(names)
    hashes: list[str | None] = [None] * len(names)
    if store is not None:
        for i, name in enumerate(names):
            try:
                hashes[i] = file_sha256(name)
            except OSError:
                pass  # embed_faces reports the error
        found = store.lookup([h for h in hashes if h])
        hits = 0
        for i, h in enumerate(hashes):
            if h is None:
                continue
            detected = found.get((h, _DETECTED))
            if detected is None:
                continue
            if detected[0] == "ok" or on_no_face != "whole-image":
                results[i] = _result(names[i], detected)
            elif (h, _WHOLE) in found:
                results[i] = _result(names[i], found[(h, _WHOLE)])
            else:
                continue
            hits += 1
        if progress and hits:
            progress(hits)
    todo = [i for i, r in enumerate(results) if r is None]
    new_rows: list[tuple[str, str, FaceResult]] = []
    stream = model.iter_embed_faces([names[i] for i in todo], face=face, on_no_face=on_no_face,
                                    batch_size=batch_size, workers=workers if len(todo) > 1 else 0, progress=progress)
    n_done = 0
    try:
        for i, r in zip(todo, stream):  # one result per image (face != "all"), in order, from one worker pool
            n_done += 1
            results[i] = r
            h = hashes[i]
            if h is not None:
                if r.status == "ok" and r.detector == "whole-image":
                    new_rows.append((h, _DETECTED, FaceResult(path=r.path, status="no_face")))
                    new_rows.append((h, _WHOLE, r))
                elif r.status in ("ok", "no_face"):
                    new_rows.append((h, _DETECTED, r))
            if store is not None and len(new_rows) >= chunk:
                store.store(new_rows)
                new_rows = []
    finally:  # stored as it goes, and on Ctrl-C too: running the same job again continues where it stopped
        if store is not None:
            store.store(new_rows)
    if n_done != len(todo):
        raise RuntimeError("embedding returned an unexpected number of rows")
    if store is not None and not isinstance(cache, EmbeddingCache):
        store.close()
    return results  # type: ignore[return-value]
