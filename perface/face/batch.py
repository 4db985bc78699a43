"""Decode, detect and align many images, optionally in worker processes.

Workers are *spawned* (never forked: the parent may hold torch / OpenMP threads) and import only numpy,
OpenCV and dlib. Results come back in input order.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator

from perface.errors import PerFaceError
from perface.face.pipeline import AlignedFace, FacePipeline
from perface.io.image import load_image
from perface.preprocessing import FaceOptions, Preprocessing

_WORKER_PIPELINE: FacePipeline | None = None


def image_name(image: Any, i: int) -> str:
    """How an input is called in results and messages: its path, or ``<image i>`` for in-memory images."""
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    return f"<image {i}>"


def auto_workers(n_images: int, requested: int | None = None, per_worker: int = 64) -> int:
    """Worker processes for ``n_images``: ``requested`` (None: one per core), but no pool for small jobs (starting
    one costs about a second: each worker needs at least ``per_worker`` images)."""
    workers = (os.cpu_count() or 1) if requested is None else max(0, int(requested))
    return min(workers, n_images // per_worker)


def _init_worker(preprocessing: dict, face_options: dict) -> None:
    global _WORKER_PIPELINE
    _WORKER_PIPELINE = FacePipeline(Preprocessing.from_dict(preprocessing), FaceOptions.from_dict(face_options))


def _align_one(job: tuple[Any, str], pipeline: FacePipeline | None = None
               ) -> tuple[list[AlignedFace] | None, PerFaceError | None]:
    image, name = job
    pipeline = pipeline or _WORKER_PIPELINE
    try:
        return pipeline(load_image(image), face=pipeline.options.face, on_no_face=pipeline.options.on_no_face,
                        name=name), None
    except PerFaceError as exc:
        return None, exc


def align_many(images: Iterable[Any], preprocessing: Preprocessing, options: FaceOptions | None = None,
               workers: int = 0, pipeline: FacePipeline | None = None,
               ) -> Iterator[tuple[str, list[AlignedFace] | None, PerFaceError | None]]:
    """Aligned faces of each image, never raising for a bad image.

    Args:
        images: Paths or in-memory images.
        preprocessing: Chip geometry.
        options: How faces are found and chosen, including the no-face policy (default :class:`FaceOptions`).
        workers: Worker processes (0: this process).
        pipeline: An existing pipeline with the same ``preprocessing`` and ``options`` to use in this process
            (``workers=0``).

    Yields:
        ``(name, aligned, error)`` per image, in order: ``aligned`` is a list (empty when no face and
        ``on_no_face="skip"``) or None when ``error`` (a :class:`PerFaceError`) says why the image failed.
    """
    options = options or FaceOptions()
    jobs = [(img, image_name(img, i)) for i, img in enumerate(images)]
    if workers and workers > 0 and len(jobs) > 1:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        with ctx.Pool(min(workers, len(jobs)), initializer=_init_worker,
                      initargs=(preprocessing.to_dict(), options.to_dict())) as pool:
            for job, (aligned, exc) in zip(jobs, pool.imap(_align_one, jobs, chunksize=4)):
                yield job[1], aligned, exc
    else:
        if pipeline is None or pipeline.options != options or pipeline.preprocessing != preprocessing:
            pipeline = FacePipeline.like(pipeline, preprocessing, options)
        for job in jobs:
            aligned, exc = _align_one(job, pipeline)
            yield job[1], aligned, exc
