"""Face alignment: landmarks -> square chip, for both templates PerFace supports.

* ``dlib``: dlib's own ``get_face_chip`` from 5 landmarks (what dlib's recognition ResNet was trained on).
* ``arcface``: least-squares similarity transform (Umeyama) of five points onto insightface's 112x112
  template, then bilinear ``cv2.warpAffine`` (as insightface's ``norm_crop``).
"""

from __future__ import annotations

import cv2
import dlib
import numpy as np

from perface.face.landmarks import to_dlib_rect

#: insightface's ArcFace destination points for a 112x112 chip (x, y), same order as
#: :func:`perface.face.landmarks.arcface_points`.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) mapping ``src`` to ``dst``.

    Umeyama (1991), no reflection.

    Args:
        src, dst: float (K, 2) point sets, K >= 2.

    Returns:
        float64 (2, 3) affine matrix M with ``dst ~ M @ [x, y, 1]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    var_s = (s**2).sum() / len(src)
    scale = (sig * np.diag(sign)).sum() / var_s
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def arcface_matrix(points5: np.ndarray, size: int = 112) -> np.ndarray:
    """(2, 3) matrix taking the five ArcFace points of an image onto the template scaled to ``size``."""
    return similarity_transform(points5, ARCFACE_TEMPLATE * (size / 112.0))


def align_arcface(image: np.ndarray, points5: np.ndarray, size: int = 112) -> np.ndarray:
    """ArcFace chip.

    Args:
        image: uint8 (H, W, 3) RGB.
        points5: float (5, 2), see :func:`perface.face.landmarks.arcface_points`.
        size: Output side (112 for ArcFace).

    Returns:
        uint8 (size, size, 3) RGB chip.
    """
    m = arcface_matrix(points5, size)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)


def align_dlib(image: np.ndarray, box: tuple[float, float, float, float], landmarks: np.ndarray,
               size: int = 150, padding: float = 0.25) -> np.ndarray:
    """dlib chip via ``dlib.get_face_chip`` (5 or 68 landmarks).

    Returns:
        uint8 (size, size, 3) RGB chip.
    """
    points = [dlib.point(int(round(x)), int(round(y))) for x, y in np.asarray(landmarks)]
    shape = dlib.full_object_detection(to_dlib_rect(box), points)
    return np.ascontiguousarray(dlib.get_face_chip(np.ascontiguousarray(image), shape, size=size, padding=padding))
