"""Face detectors: dlib HOG and dlib's MMOD CNN, and the fallback chain of :class:`~perface.preprocessing.FaceOptions`.

Large images are detected on a copy downscaled so that its longer side is at most ``max_side`` and the
boxes are mapped back to the original pixels; landmarks are then predicted on the full-resolution image.
"""

from __future__ import annotations

import os

import cv2
import dlib
import numpy as np

from perface.dlib_files import MMOD_DETECTOR, dlib_model_path
from perface.preprocessing import AUTO, AUTO_UPSAMPLE_MAX_SIDE, DETECTORS, FaceOptions

Box = tuple[float, float, float, float]


def detection_copy(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The image downscaled (INTER_AREA) so that its longer side is at most ``max_side``, and the scale used.

    Args:
        image: uint8 (H, W, 3) RGB.

    Returns:
        ``(copy, scale)``: C-contiguous uint8 array and ``copy pixels / original pixels`` (<= 1).
    """
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return np.ascontiguousarray(image), 1.0
    scale = max_side / max(h, w)
    work = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(work), scale


def frontal_face_detector():
    """dlib's HOG face detector, read from a copy saved in the cache (2 ms) instead of decoding the one built into
    dlib (about half a second, at every start)."""
    from perface.cache import cache_dir

    path = cache_dir() / "dlib" / f"frontal_face_detector-{dlib.__version__}.svm"
    if path.is_file():
        try:
            return dlib.fhog_object_detector(str(path))
        except RuntimeError:
            pass  # a damaged copy: rebuild it below
    detector = dlib.get_frontal_face_detector()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        detector.save(str(tmp))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the slow start next time
    return detector


class FaceDetector:
    """Find face boxes in an RGB image with one dlib detector.

    Args:
        kind: ``"hog"`` (dlib frontal HOG + SVM, fast on CPU) or ``"cnn"`` (dlib MMOD CNN: more poses, slow on CPU).
        upsample: How many times dlib doubles the (possibly downscaled) image before detecting; each step
            halves the smallest findable face (about 80 px for HOG at 0) and costs about 4x time.
        max_side: Longer side of the copy detection runs on; larger images are downscaled first.
        threshold: Detector score adjustment (HOG: added to the SVM threshold; CNN: minimum confidence).
    """

    def __init__(self, kind: str = "hog", upsample: int = 0, max_side: int = 1024, threshold: float = 0.0):
        if kind not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {kind!r}")
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        self.kind = kind
        self.upsample = int(upsample)
        self.max_side = int(max_side)
        self.threshold = float(threshold)
        if kind == "hog":
            self._detector = frontal_face_detector()
        else:
            self._detector = dlib.cnn_face_detection_model_v1(str(dlib_model_path(MMOD_DETECTOR)))

    def __call__(self, image: np.ndarray) -> list[tuple[Box, float]]:
        """Detect faces.

        Args:
            image: uint8 (H, W, 3) RGB.

        Returns:
            List of ((x0, y0, x1, y1), score) in original-image pixels, largest box first.
        """
        work, scale = detection_copy(image, self.max_side)
        return self.detect_copy(work, scale, image.shape[:2], self.upsample)

    def detect_copy(self, work: np.ndarray, scale: float, shape: tuple[int, int], upsample: int
                    ) -> list[tuple[Box, float]]:
        """Detect on a copy made by :func:`detection_copy`; boxes in pixels of the original of size ``shape``."""
        h, w = shape
        if self.kind == "hog":
            rects, scores, _ = self._detector.run(work, upsample, self.threshold)
            pairs = zip(rects, scores)
        else:
            pairs = ((d.rect, d.confidence) for d in self._detector(work, upsample) if d.confidence >= self.threshold)
        found: list[tuple[Box, float]] = []
        for r, s in pairs:
            box = (r.left() / scale, r.top() / scale, (r.right() + 1) / scale, (r.bottom() + 1) / scale)
            x0, y0, x1, y1 = (max(0.0, box[0]), max(0.0, box[1]), min(float(w), box[2]), min(float(h), box[3]))
            if x1 > x0 and y1 > y0:
                found.append(((x0, y0, x1, y1), float(s)))
        found.sort(key=lambda bs: (bs[0][2] - bs[0][0]) * (bs[0][3] - bs[0][1]), reverse=True)
        return found


class DetectorChain:
    """The detectors of a :class:`FaceOptions`, tried in order until one finds a face.

    Each detector runs with ``options.upsample`` steps; with ``"auto"``, first without upsampling and, where
    that finds nothing and the detection copy is at most :data:`AUTO_UPSAMPLE_MAX_SIDE` px, with one step.
    The order of attempts is ``hog@0, hog@1, cnn@0, cnn@1`` for ``hog+cnn`` on a small image, so every image
    where ``hog`` or ``cnn`` at upsample 1 finds a face is found, while most images pay for ``hog@0`` only.

    Args:
        options: Detector kinds, upsampling and ``max_side`` (face choice and no-face policy are not used here).
    """

    def __init__(self, options: FaceOptions):
        self.options = options
        self._detectors: dict[str, FaceDetector] = {}  # built on first use: the CNN often never runs

    def detector(self, kind: str) -> FaceDetector:
        """The detector of ``kind`` (built once)."""
        if kind not in self._detectors:
            upsample = 0 if self.options.upsample == AUTO else int(self.options.upsample)
            self._detectors[kind] = FaceDetector(kind, upsample=upsample, max_side=self.options.max_side)
        return self._detectors[kind]

    def attempts(self, work_side: int) -> list[tuple[str, int]]:
        """``(detector kind, upsample)`` in the order tried on a detection copy whose longer side is ``work_side``."""
        if self.options.upsample != AUTO:
            return [(kind, int(self.options.upsample)) for kind in self.options.chain]
        levels = (0, 1) if work_side <= AUTO_UPSAMPLE_MAX_SIDE else (0,)
        return [(kind, u) for kind in self.options.chain for u in levels]

    def __call__(self, image: np.ndarray) -> tuple[list[tuple[Box, float]], str]:
        """``(boxes, kind)``: the faces of the first attempt that finds any (largest first) and its detector kind
        (``""`` when none found)."""
        work, scale = detection_copy(image, self.options.max_side)
        for kind, upsample in self.attempts(max(work.shape[:2])):
            found = self.detector(kind).detect_copy(work, scale, image.shape[:2], upsample)
            if found:
                return found, kind
        return [], ""
