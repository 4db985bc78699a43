"""The face-finding worker pool: results in input order, bounded, and a worker that dies on one image is that
image's error, not a dead job."""

from __future__ import annotations

import os

import numpy as np

from perface.errors import WorkerCrashError
from perface.face.batch import align_many
from perface.preprocessing import DLIB, FaceOptions

OPTIONS = FaceOptions(detector="hog", upsample=0)


class KillsItsWorker:
    """An input whose unpickling ends the worker process at once (as a native crash would)."""

    def __reduce__(self):
        return (os._exit, (3,))


def _files(lfw, n):
    return [str(p) for p in sorted((lfw / "images" / "Colin_Powell").iterdir())[:n]]


def test_pool_matches_serial_in_order(lfw):
    files = _files(lfw, 24)
    serial = list(align_many(files, DLIB, OPTIONS, workers=0))
    pooled = list(align_many(files, DLIB, OPTIONS, workers=2))
    assert [name for name, _, _ in pooled] == files
    for (_, a, ea), (_, b, eb) in zip(serial, pooled):
        assert ea is None and eb is None
        np.testing.assert_array_equal(a[0].chip, b[0].chip)


def test_a_worker_crash_fails_only_its_image(lfw):
    files = _files(lfw, 14)
    images = files[:6] + [KillsItsWorker()] + files[6:]
    results = list(align_many(images, DLIB, OPTIONS, workers=2))
    assert [name for name, _, _ in results] == files[:6] + ["<image 6>"] + files[6:]
    crashed = [(name, exc) for name, _, exc in results if exc is not None]
    assert len(crashed) == 1 and crashed[0][0] == "<image 6>" and isinstance(crashed[0][1], WorkerCrashError)
    assert "died" in str(crashed[0][1])
    assert all(aligned for name, aligned, exc in results if exc is None)  # every other image was aligned
