"""Face detectors: dlib HOG (default) and dlib's MMOD CNN.

Large images are detected on a copy downscaled so that its longer side is at most ``max_side`` and the
boxes are mapped back to the original pixels; landmarks are then predicted on the full-resolution image.
"""

from __future__ import annotations

import cv2
import dlib
import numpy as np

from perface.dlib_files import MMOD_DETECTOR, dlib_model_path

DETECTORS = ("hog", "cnn")
#: What ``--detector`` / ``detector=`` accept: one detector, or HOG with the CNN as fallback when HOG finds none.
DETECTOR_CHOICES = ("hog", "cnn", "hog+cnn")


def detector_chain(detector: str) -> list[str]:
    """``"hog"`` / ``"cnn"`` / ``"hog+cnn"`` -> the detector kinds to try in order.

    Raises:
        ValueError: an unknown kind (the message lists the valid ones).
    """
    kinds = str(detector).split("+")
    if not all(k in DETECTORS for k in kinds):
        raise ValueError(f"detector {detector!r} is not known; use one of {', '.join(DETECTOR_CHOICES)} "
                         f"(a '+' chain runs each detector only where the ones before it found no face)")
    return kinds


class FaceDetector:
    """Find face boxes in an RGB image.

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
            self._detector = dlib.get_frontal_face_detector()
        else:
            self._detector = dlib.cnn_face_detection_model_v1(str(dlib_model_path(MMOD_DETECTOR)))

    def __call__(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """Detect faces.

        Args:
            image: uint8 (H, W, 3) RGB.

        Returns:
            List of ((x0, y0, x1, y1), score) in original-image pixels, largest box first.
        """
        h, w = image.shape[:2]
        scale = 1.0
        work = image
        if max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            work = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        work = np.ascontiguousarray(work)
        found: list[tuple[tuple[float, float, float, float], float]] = []
        if self.kind == "hog":
            rects, scores, _ = self._detector.run(work, self.upsample, self.threshold)
            pairs = zip(rects, scores)
        else:
            pairs = ((d.rect, d.confidence) for d in self._detector(work, self.upsample) if d.confidence >= self.threshold)
        for r, s in pairs:
            box = (r.left() / scale, r.top() / scale, (r.right() + 1) / scale, (r.bottom() + 1) / scale)
            x0, y0, x1, y1 = (max(0.0, box[0]), max(0.0, box[1]), min(float(w), box[2]), min(float(h), box[3]))
            if x1 > x0 and y1 > y0:
                found.append(((x0, y0, x1, y1), float(s)))
        found.sort(key=lambda bs: (bs[0][2] - bs[0][0]) * (bs[0][3] - bs[0][1]), reverse=True)
        return found
