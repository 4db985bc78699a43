"""Embedding files: ``perface embed``'s Parquet output (one row per face, failures included), written as a
stream and resumable.

Columns: ``path`` (as given), ``face_index`` (int32, -1 when no face was used), ``box`` (4 x float32 or null),
``embedding`` (D x float32, L2-normalised, or null), ``status`` (``ok`` / ``no_face`` / ``error``), ``error``.
Schema metadata: ``perface.model``, ``perface.model_identity``, ``perface.preprocessing``,
``perface.face_options``, ``perface.embedding_dim``, ``perface.similarity``.

Rows are written in row groups as they are computed (memory stays flat for any number of images) into
``OUT.partial``, which becomes ``OUT`` when the job ends: finished, interrupted by Ctrl-C / SIGTERM (everything
finished so far is kept), or failed. ``resume=True`` keeps the rows of an existing ``OUT`` and embeds only the
images not in it, so an interrupted job finishes with the same file an uninterrupted one writes.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from perface.errors import JobInterrupted, SettingsError
from perface.progress import ProgressFactory

__all__ = ["EmbedSummary", "EmbeddingWriter", "embed_to_parquet", "read_embedding_paths"]

#: Rows per Parquet row group (the unit written to disk as the job goes).
ROW_GROUP = 128


@dataclass
class EmbedSummary:
    """What :func:`embed_to_parquet` did: images in, rows out, and failures by kind."""

    images: int
    faces: int
    no_face: int
    failed: int
    out: Path
    resumed: int = 0

    def line(self) -> str:
        kept = f" ({self.resumed} already in the file, kept)" if self.resumed else ""
        return (f"{self.images} images{kept} -> {self.faces} faces embedded, {self.no_face} without a face, "
                f"{self.failed} failed; wrote {self.out}")


def _schema(model):
    import pyarrow as pa

    meta = {b"perface.model": model.name.encode(), b"perface.model_identity": model.identity().encode(),
            b"perface.preprocessing": model.preprocessing.to_json().encode(),
            b"perface.face_options": model.face_options.to_json().encode(),
            b"perface.embedding_dim": str(model.embedding_dim).encode(),
            b"perface.similarity": b"cosine (dot product); higher = more similar"}
    return pa.schema([("path", pa.string()), ("face_index", pa.int32()), ("box", pa.list_(pa.float32(), 4)),
                      ("embedding", pa.list_(pa.float32(), model.embedding_dim)), ("status", pa.string()),
                      ("error", pa.string())], metadata=meta)


class EmbeddingWriter:
    """Write :class:`perface.embedder.FaceResult` rows to a Parquet file in row groups.

    Args:
        out: The final ``.parquet`` path; rows go to ``out.partial`` until :meth:`close` renames it.
        model: The model (name, identity, preprocessing, face options and width go into the metadata).
        keep: An existing embedding file of the same model whose rows come first (``resume``).
    """

    def __init__(self, out: str | os.PathLike, model, keep: str | os.PathLike | None = None):
        import pyarrow.parquet as pq

        self.out = Path(out)
        self.partial = self.out.with_name(self.out.name + ".partial")
        self.schema = _schema(model)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self.partial, self.schema)
        self._rows: list = []
        self.written = 0
        if keep is not None:
            for batch in pq.ParquetFile(keep).iter_batches(batch_size=ROW_GROUP):
                self._writer.write_batch(batch.cast(self.schema))
                self.written += batch.num_rows

    def add(self, result) -> None:
        self._rows.append(result)
        if len(self._rows) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if not self._rows:
            return
        rows = self._rows
        table = pa.table({
            "path": [r.path for r in rows],
            "face_index": pa.array([r.face_index for r in rows], pa.int32()),
            "box": pa.array([list(r.box) if r.box is not None else None for r in rows], self.schema.field("box").type),
            "embedding": pa.array([r.embedding.astype(np.float32) if r.embedding is not None else None for r in rows],
                                  self.schema.field("embedding").type),
            "status": [r.status for r in rows],
            "error": [r.error for r in rows],
        }, schema=self.schema)
        self._writer.write_table(table)
        self.written += len(rows)
        self._rows = []

    def close(self) -> Path:
        """Write what is buffered, finish the file and move it to ``out`` (atomically)."""
        self.flush()
        self._writer.close()
        os.replace(self.partial, self.out)
        return self.out


def read_embedding_paths(path: str | os.PathLike, model) -> set[str]:
    """The ``path`` values of an existing embedding file written by the same model and settings.

    Raises:
        SettingsError: the file is not an embedding file, or another model, preprocessing or face options wrote it.
    """
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise SettingsError(f"--resume: {path} is not a readable Parquet file ({type(exc).__name__}); remove it or "
                            "write to another --out") from None
    meta = f.schema_arrow.metadata or {}
    expected = _schema(model).metadata
    for key in (b"perface.model_identity", b"perface.preprocessing", b"perface.face_options"):
        if meta.get(key) != expected[key]:
            what = key.decode().split(".", 1)[1].replace("_", " ")
            raise SettingsError(f"--resume: {path} was written with another {what} than this run's; resume with the "
                                "same model and face options, or write to another --out")
    return set(f.read(columns=["path"]).column("path").to_pylist())


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM stops the job like Ctrl-C (so the file is finished), main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def embed_to_parquet(model, paths: Sequence[str | os.PathLike], out: str | os.PathLike, *, batch_size: int = 32,
                     workers: int | None = None, resume: bool = False, progress: ProgressFactory | None = None,
                     notes: Callable[[str], None] | None = None) -> EmbedSummary:
    """Embed every face of the images in ``paths`` (the model's face options decide which faces) into a Parquet
    file, streaming (see the module docstring).

    Args:
        model: A loaded model, or a function without arguments that loads it (called once the inputs are
            checked, so bad arguments fail fast).
        paths: Image files and folders (see :func:`perface.io.files.collect_images`).
        out: The ``.parquet`` file to write.
        batch_size: Chips per network call.
        workers: Processes for decoding and face finding (None: one per core for jobs big enough).
        resume: Keep the rows of an existing ``out`` and embed only the images not in it.
        progress: Progress bar factory.
        notes: Called with lines worth telling the user (link loops, duplicate files).

    Raises:
        SettingsError: ``out`` does not end in ``.parquet``; ``resume`` with a file of other settings.
        FileCollectionError: no image file in ``paths``.
        JobInterrupted: Ctrl-C or SIGTERM; ``out`` holds every row finished before it.
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
    if callable(model) and not hasattr(model, "embed_faces"):
        model = model()
    images = found.files
    done: set[str] = read_embedding_paths(out, model) if resume and out.exists() else set()
    todo = [f for f in images if f not in done]
    advance = progress("embedding", len(images)) if progress else None
    if advance and len(images) - len(todo):
        advance(len(images) - len(todo))
    writer = EmbeddingWriter(out, model, keep=out if done else None)
    counts = {"ok": 0, "no_face": 0, "error": 0}
    finished = 0
    group: list = []  # the rows of the current image: written once the next image starts, so none is half-written

    def commit() -> None:
        nonlocal finished
        for row in group:
            writer.add(row)
            counts[row.status] = counts.get(row.status, 0) + 1
        finished += bool(group)
        group.clear()

    try:
        with _sigterm_as_interrupt():
            for r in model.iter_embed_faces(todo, batch_size=batch_size, workers=auto_workers(len(todo), workers, 8),
                                            progress=advance):
                if group and r.path != group[0].path:
                    commit()
                group.append(r)
            commit()
    except KeyboardInterrupt:
        writer.close()
        raise JobInterrupted(f"interrupted after {finished} of {len(todo)} images; {out} holds the {writer.written} rows "
                             "finished so far: rerun the same command with --resume to finish") from None
    except BaseException:
        writer.close()  # keep what was computed; the error is reported by the caller
        raise
    writer.close()
    return EmbedSummary(images=len(images), faces=counts["ok"], no_face=counts["no_face"], failed=counts["error"],
                        out=out, resumed=len(images) - len(todo))
