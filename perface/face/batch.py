"""Decode, detect and align many images, optionally in a pool of worker processes.

Workers start from a clean *forkserver* process (never a fork of the caller, which may hold torch, ONNX
Runtime or OpenCV threads) and import only numpy, OpenCV, dlib and perface's face code. Results come back
in input order, with at most a bounded number of images in flight (memory stays flat however many images
there are). A worker that dies on an image (a crash in a native library, killed for memory) breaks the pool:
the pool is restarted, the images that were in flight are retried one by one, and the one that kills its
worker again becomes that image's error, never a dead job.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Iterable, Iterator

from perface.errors import PerFaceError, WorkerCrashError
from perface.face.pipeline import AlignedFace, FacePipeline
from perface.io.image import load_image
from perface.preprocessing import FaceOptions, Preprocessing

_WORKER_PIPELINE: FacePipeline | None = None
#: Images per task sent to a worker (amortises inter-process overhead) and tasks in flight per worker.
CHUNK = 4
IN_FLIGHT_PER_WORKER = 4

Result = tuple[str, "list[AlignedFace] | None", "PerFaceError | None"]


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
    import cv2

    cv2.setNumThreads(1)  # one image per worker at a time: the pool is the parallelism
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


def _align_chunk(jobs: list[tuple[Any, str]]) -> list[tuple[list[AlignedFace] | None, PerFaceError | None]]:
    return [_align_one(job) for job in jobs]


class _Pool:
    """A process pool that can be restarted after a worker dies."""

    def __init__(self, workers: int, initargs: tuple):
        self.workers, self.initargs = workers, initargs
        self.executor: ProcessPoolExecutor | None = None
        self.start()

    def start(self) -> None:
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        ctx = mp.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(["perface.face.pipeline"])
        self.executor = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                            initargs=self.initargs)

    def restart(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.start()

    def submit(self, jobs: list[tuple[Any, str]]) -> Future:
        return self.executor.submit(_align_chunk, jobs)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def _pooled(jobs: list[tuple[Any, str]], workers: int, initargs: tuple) -> Iterator[Result]:
    pool = _Pool(workers, initargs)
    chunks = [jobs[i : i + CHUNK] for i in range(0, len(jobs), CHUNK)]
    window: deque[tuple[list, Future]] = deque()
    next_chunk = 0
    try:
        while window or next_chunk < len(chunks):
            while next_chunk < len(chunks) and len(window) < workers * IN_FLIGHT_PER_WORKER:
                window.append((chunks[next_chunk], pool.submit(chunks[next_chunk])))
                next_chunk += 1
            chunk, future = window.popleft()
            try:
                results = future.result()
            except BrokenProcessPool:
                # Every task in flight is lost with the pool: redo them one image at a time in a fresh pool, so
                # that the image that kills a worker is found and only it fails.
                pending = [chunk] + [c for c, _ in window]
                window.clear()
                pool.restart()
                for job_chunk in pending:
                    for job in job_chunk:
                        yield job[1], *_isolated(pool, job)
                continue
            for job, (aligned, exc) in zip(chunk, results):
                yield job[1], aligned, exc
    finally:
        pool.close()


def _isolated(pool: _Pool, job: tuple[Any, str]) -> tuple[list[AlignedFace] | None, PerFaceError | None]:
    try:
        ((aligned, exc),) = pool.submit([job]).result()
        return aligned, exc
    except BrokenProcessPool:
        pool.restart()
        return None, WorkerCrashError(f"{job[1]}: the face-finding worker process died on this image (a crash in "
                                      "a native library or out of memory); the image was skipped")


def align_many(images: Iterable[Any], preprocessing: Preprocessing, options: FaceOptions | None = None,
               workers: int = 0, pipeline: FacePipeline | None = None) -> Iterator[Result]:
    """Aligned faces of each image, never raising for a bad image.

    Args:
        images: Paths or in-memory images.
        preprocessing: Chip geometry.
        options: How faces are found and chosen, including the no-face policy (default :class:`FaceOptions`).
        workers: Worker processes (0: this process).
        pipeline: An existing pipeline to reuse in this process (``workers=0``).

    Yields:
        ``(name, aligned, error)`` per image, in order: ``aligned`` is a list (empty when no face and
        ``on_no_face="skip"``) or None when ``error`` (a :class:`PerFaceError`) says why the image failed
        (:class:`~perface.errors.WorkerCrashError` when it killed its worker process).
    """
    options = options or FaceOptions()
    jobs = [(img, image_name(img, i)) for i, img in enumerate(images)]
    if workers and workers > 0 and len(jobs) > 1:
        yield from _pooled(jobs, min(workers, len(jobs)), (preprocessing.to_dict(), options.to_dict()))
        return
    if pipeline is None or pipeline.options != options or pipeline.preprocessing != preprocessing:
        pipeline = FacePipeline.like(pipeline, preprocessing, options)
    for job in jobs:
        aligned, exc = _align_one(job, pipeline)
        yield job[1], aligned, exc
