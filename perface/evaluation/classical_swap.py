"""A classical landmark-based face swap: a reference swap for checking and benchmarking ``perface eval swap``.

The source face is cut along dlib's 68 landmarks, warped triangle by triangle onto the target's landmarks
(Delaunay triangulation of the target points with ``cv2.Subdiv2D``, one affine warp per triangle) and blended
into the target with ``cv2.seamlessClone`` inside the convex hull of the target's landmarks. The result keeps
the target's head pose, expression and surroundings and carries the source's inner-face texture: a partial
identity transfer, as real face swaps give. Tests and ``scripts/benchmark_generated.py`` make their swaps
with it.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from perface.errors import NoFaceError
from perface.face.detector import FaceDetector
from perface.face.landmarks import landmark_predictor

__all__ = ["face_swap", "landmarks68"]


@lru_cache(maxsize=None)
def _detector() -> FaceDetector:
    return FaceDetector("hog", upsample=1)


def landmarks68(image: np.ndarray) -> np.ndarray:
    """float32 (68, 2) landmarks of the largest face of a uint8 (H, W, 3) RGB image (HOG, upsample 1).

    Raises:
        NoFaceError: no face found.
    """
    found = _detector()(image)
    if not found:
        raise NoFaceError("no face found for the classical face swap (HOG detector, upsample 1)")
    return landmark_predictor(68)(image, found[0][0])


def _triangles(points: np.ndarray, shape: tuple[int, int]) -> list[tuple[int, int, int]]:
    h, w = shape
    subdiv = cv2.Subdiv2D((0, 0, w, h))
    clipped = np.clip(points, 0, [w - 1, h - 1])
    for x, y in clipped:
        subdiv.insert((float(x), float(y)))
    tris = []
    for t in subdiv.getTriangleList():
        corners = t.reshape(3, 2)
        idx = []
        for c in corners:
            d = np.linalg.norm(clipped - c, axis=1)
            k = int(np.argmin(d))
            if d[k] > 1.0:
                break
            idx.append(k)
        if len(idx) == 3 and len(set(idx)) == 3:
            tris.append(tuple(idx))
    return tris


def _warp_triangle(src: np.ndarray, dst: np.ndarray, t_src: np.ndarray, t_dst: np.ndarray) -> None:
    r1 = cv2.boundingRect(t_src.astype(np.float32))
    r2 = cv2.boundingRect(t_dst.astype(np.float32))
    if r2[2] <= 0 or r2[3] <= 0:
        return
    s = t_src - r1[:2]
    d = t_dst - r2[:2]
    patch = src[r1[1]:r1[1] + r1[3], r1[0]:r1[0] + r1[2]]
    if patch.size == 0:
        return
    m = cv2.getAffineTransform(s.astype(np.float32), d.astype(np.float32))
    warped = cv2.warpAffine(patch, m, (r2[2], r2[3]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    mask = np.zeros((r2[3], r2[2], 3), dtype=np.float32)
    cv2.fillConvexPoly(mask, np.round(d).astype(np.int32), (1.0, 1.0, 1.0), cv2.LINE_AA)
    y0, x0 = r2[1], r2[0]
    h, w = dst.shape[:2]
    y1, x1 = min(y0 + r2[3], h), min(x0 + r2[2], w)
    if y0 < 0 or x0 < 0 or y1 <= y0 or x1 <= x0:
        return
    region = dst[y0:y1, x0:x1]
    mk = mask[: y1 - y0, : x1 - x0]
    region[:] = region * (1 - mk) + warped[: y1 - y0, : x1 - x0] * mk


def face_swap(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Put the face of ``source`` onto ``target`` (both uint8 (H, W, 3) RGB).

    Returns:
        uint8 RGB image of the target's size.

    Raises:
        NoFaceError: no face found in ``source`` or ``target``.
    """
    ps, pt = landmarks68(source).astype(np.float64), landmarks68(target).astype(np.float64)
    warped = target.astype(np.float32).copy()
    for a, b, c in _triangles(pt, target.shape[:2]):
        _warp_triangle(source.astype(np.float32), warped, ps[[a, b, c]], pt[[a, b, c]])
    hull = cv2.convexHull(np.round(pt).astype(np.int32))
    mask = np.zeros(target.shape[:2], dtype=np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = 0, 0, 0, 0  # seamlessClone needs the mask inside the frame
    x, y, w, h = cv2.boundingRect(hull)
    center = (x + w // 2, y + h // 2)
    out = cv2.seamlessClone(np.clip(warped, 0, 255).astype(np.uint8)[:, :, ::-1].copy(),
                            target[:, :, ::-1].copy(), mask, center, cv2.NORMAL_CLONE)
    return np.ascontiguousarray(out[:, :, ::-1])
