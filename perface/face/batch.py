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
from perface.preprocessing import Preprocessing

_WORKER_PIPELINE: FacePipeline | None = None


def image_name(image: Any, i: int) -> str:
    """How an input is called in results and messages: its path, or ``<image i>`` for in-memory images."""
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    return f"<image {i}>"


def _init_worker(preprocessing: dict, face_options: dict) -> None:
    global _WORKER_PIPELINE
    _WORKER_PIPELINE = FacePipeline(Preprocessing.from_dict(preprocessing), **face_options)


def _align_one(job: tuple[Any, str, str | int, str], pipeline: FacePipeline | None = None
               ) -> tuple[list[AlignedFace] | None, PerFaceError | None]:
    image, name, face, on_no_face = job
    try:
        return (pipeline or _WORKER_PIPELINE)(load_image(image), face=face, on_no_face=on_no_face, name=name), None
    except PerFaceError as exc:
        return None, exc


def align_many(images: Iterable[Any], preprocessing: Preprocessing, face_options: dict | None = None,
               face: str | int = "largest", on_no_face: str = "skip", workers: int = 0,
               pipeline: FacePipeline | None = None,
               ) -> Iterator[tuple[str, list[AlignedFace] | None, PerFaceError | None]]:
    """Aligned faces of each image, never raising for a bad image.

    Args:
        images: Paths or in-memory images.
        preprocessing: Chip geometry.
        face_options: :class:`FacePipeline` keyword arguments (detector, upsample, max_side).
        face, on_no_face: As :meth:`FacePipeline.__call__`.
        workers: Worker processes (0: this process).
        pipeline: An existing pipeline to use in this process (``workers=0``).

    Yields:
        ``(name, aligned, error)`` per image, in order: ``aligned`` is a list (empty when no face and
        ``on_no_face="skip"``) or None when ``error`` (a :class:`PerFaceError`) says why the image failed.
    """
    face_options = dict(face_options or {})
    jobs = [(img, image_name(img, i), face, on_no_face) for i, img in enumerate(images)]
    if workers and workers > 0 and len(jobs) > 1:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        with ctx.Pool(min(workers, len(jobs)), initializer=_init_worker,
                      initargs=(preprocessing.to_dict(), face_options)) as pool:
            for job, (aligned, exc) in zip(jobs, pool.imap(_align_one, jobs, chunksize=4)):
                yield job[1], aligned, exc
    else:
        pipeline = pipeline or FacePipeline(preprocessing, **face_options)
        for job in jobs:
            aligned, exc = _align_one(job, pipeline)
            yield job[1], aligned, exc
