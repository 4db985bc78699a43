"""Embedding files: ``perface embed``'s Parquet output (one row per face, failures included).

Columns: ``path`` (as given), ``face_index`` (int32, -1 when no face was used), ``box`` (4 x float32 or null),
``embedding`` (D x float32, L2-normalised, or null), ``status`` (``ok`` / ``no_face`` / ``error``), ``error``.
Schema metadata: ``perface.model``, ``perface.preprocessing``, ``perface.face_options``,
``perface.embedding_dim``, ``perface.similarity``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from perface.errors import SettingsError
from perface.progress import ProgressFactory

__all__ = ["EmbedSummary", "embed_to_parquet", "write_embeddings"]


@dataclass
class EmbedSummary:
    """What :func:`embed_to_parquet` did: images in, face rows, and failures by kind."""

    images: int
    faces: int
    no_face: int
    failed: int
    out: Path

    def line(self) -> str:
        return (f"{self.images} images -> {self.faces} faces embedded, {self.no_face} without a face, {self.failed} "
                f"failed; wrote {self.out}")


def write_embeddings(results, out: str | os.PathLike, model) -> Path:
    """Write :class:`perface.embedder.FaceResult` rows to ``out`` (atomically: a temporary file renamed)."""

    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    dim = model.embedding_dim
    table = pa.table({
        "path": pa.array([r.path for r in results], pa.string()),
        "face_index": pa.array([r.face_index for r in results], pa.int32()),
        "box": pa.array([list(r.box) if r.box is not None else None for r in results], pa.list_(pa.float32(), 4)),
        "embedding": pa.array([r.embedding.astype(np.float32) if r.embedding is not None else None for r in results],
                              pa.list_(pa.float32(), dim)),
        "status": pa.array([r.status for r in results], pa.string()),
        "error": pa.array([r.error for r in results], pa.string()),
    })
    meta = {b"perface.model": model.name.encode(), b"perface.preprocessing": model.preprocessing.to_json().encode(),
            b"perface.face_options": model.face_options.to_json().encode(),
            b"perface.embedding_dim": str(dim).encode(),
            b"perface.similarity": b"cosine (dot product); higher = more similar"}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, out)
    return out


def embed_to_parquet(model, paths: Sequence[str | os.PathLike], out: str | os.PathLike, *, batch_size: int = 32,
                     workers: int | None = None, progress: ProgressFactory | None = None,
                     notes: Callable[[str], None] | None = None) -> EmbedSummary:
    """Embed every face of the images in ``paths`` (files and folders; the model's face options decide which
    faces) into a Parquet file.

    Args:
        model: A loaded model, or a function without arguments that loads it (called once the inputs are
            checked, so bad arguments fail fast).
        paths: Image files and folders (see :func:`perface.io.files.collect_images`).
        out: The ``.parquet`` file to write.
        batch_size: Chips per network call.
        workers: Processes for decoding and face finding (None: one per core for jobs big enough).
        progress: Progress bar factory.
        notes: Called with lines worth telling the user (link loops, duplicate files).

    Raises:
        SettingsError: ``out`` does not end in ``.parquet``.
        FileCollectionError: no image file in ``paths``.
    """
    from perface.face.batch import auto_workers
    from perface.io.files import collect_images

    out = Path(out)
    if out.suffix.lower() != ".parquet":
        raise SettingsError(f"--out {out}: the output must be a .parquet file")
    found = collect_images(paths)
    for note in found.notes():
        if notes:
            notes(note)
    images = found.files
    if callable(model) and not hasattr(model, "embed_faces"):
        model = model()
    advance = progress("embedding", len(images)) if progress else None
    results = model.embed_faces(images, batch_size=batch_size, workers=auto_workers(len(images), workers, 8),
                                progress=advance)
    write_embeddings(results, out, model)
    return EmbedSummary(images=len(images), faces=sum(r.status == "ok" for r in results),
                        no_face=sum(r.status == "no_face" for r in results),
                        failed=sum(r.status == "error" for r in results), out=out)
