"""dlib landmark predictors (5 and 68 points) and the five ArcFace points taken from the 68."""

from __future__ import annotations

from functools import lru_cache

import dlib
import numpy as np

from perface.dlib_files import LANDMARKS_5, LANDMARKS_68, dlib_model_path

#: 68-point indices (dlib / iBUG order) of the eyes, nose tip and mouth corners.
_RIGHT_EYE = slice(36, 42)  # subject's right eye, left in the image
_LEFT_EYE = slice(42, 48)
_NOSE_TIP = 30
_MOUTH_RIGHT, _MOUTH_LEFT = 48, 54


class LandmarkPredictor:
    """dlib shape predictor.

    Args:
        points: 5 (eye corners + nose base, dlib's recognition alignment) or 68 (iBUG layout).
    """

    def __init__(self, points: int = 5):
        if points not in (5, 68):
            raise ValueError(f"points must be 5 or 68, got {points}")
        self.points = points
        self._predictor = dlib.shape_predictor(str(dlib_model_path(LANDMARKS_5 if points == 5 else LANDMARKS_68)))

    def __call__(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """Landmarks of the face in ``box``.

        Args:
            image: uint8 (H, W, 3) RGB.
            box: (x0, y0, x1, y1) pixels.

        Returns:
            float32 (K, 2) array of (x, y) pixels.
        """
        shape = self._predictor(image, to_dlib_rect(box))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


@lru_cache(maxsize=None)
def landmark_predictor(points: int = 5) -> LandmarkPredictor:
    """The process-wide :class:`LandmarkPredictor` for ``points`` (5 or 68), loaded on first use.

    Loading the 68-point model takes about a second; code that predicts landmarks outside a
    :class:`~perface.face.FacePipeline` (pose and expression measures, test helpers) shares these.

    Raises:
        ValueError: ``points`` is not 5 or 68.
    """
    return LandmarkPredictor(points)


def to_dlib_rect(box: tuple[float, float, float, float]) -> "dlib.rectangle":
    x0, y0, x1, y1 = box
    # dlib rectangles are inclusive on the right/bottom edge.
    return dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)) - 1, int(round(y1)) - 1)


def arcface_points(landmarks68: np.ndarray) -> np.ndarray:
    """The five ArcFace points from 68 landmarks.

    Returns:
        float32 (5, 2): image-left eye centre, image-right eye centre, nose tip, image-left and image-right
        mouth corners (insightface's order).
    """
    lm = np.asarray(landmarks68, dtype=np.float32)
    if lm.shape != (68, 2):
        raise ValueError(f"need (68, 2) landmarks, got {lm.shape}")
    return np.stack(
        [lm[_RIGHT_EYE].mean(0), lm[_LEFT_EYE].mean(0), lm[_NOSE_TIP], lm[_MOUTH_RIGHT], lm[_MOUTH_LEFT]]
    ).astype(np.float32)
