"""The :class:`Face` record: where a face is in an image and its landmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Face:
    """A detected face.

    Attributes:
        box: (x0, y0, x1, y1) in pixels of the original image (x1, y1 exclusive), floats.
        score: Detector confidence (HOG SVM score or MMOD confidence; NaN for ``whole-image`` faces).
        landmarks: float32 (K, 2) array of (x, y) image coordinates, K = 5 or 68 (dlib's point order).
        detector: ``"hog"``, ``"cnn"`` or ``"whole-image"`` (the whole image taken as the face box).
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    detector: str

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)

    def to_dict(self) -> dict:
        """JSON-friendly form: box rounded to 0.1 px, landmarks as nested lists."""
        return {
            "box": [round(float(v), 1) for v in self.box],
            "score": None if np.isnan(self.score) else round(float(self.score), 4),
            "detector": self.detector,
            "landmarks": np.round(self.landmarks, 2).tolist(),
        }
