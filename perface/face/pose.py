"""Head pose and expression from dlib's 68 facial landmarks (iBUG 300-W point order).

**Head pose** (:func:`head_pose`) solves the perspective-n-point problem (``cv2.solvePnP``, iterative
Levenberg-Marquardt started from a frontal pose at the distance the face size implies) between six stable
landmarks and a generic 3-D mean face: the six-point model of Satya Mallick's "Head Pose Estimation using
OpenCV and Dlib" (LearnOpenCV, 2016), which many head-pose tutorials reuse. Its points, in arbitrary units
(about 1 unit = 0.3 mm), with the axes turned to the camera convention used here (x to the image right for
a frontal face, y down, z away from the camera):

===================================  =========  ==============================
landmark (dlib 68 index)             point      (x, y, z)
===================================  =========  ==============================
nose tip                             30         (0, 0, 0)
chin                                 8          (0, 330, 65)
outer corner of the subject's right  36         (-225, -170, 135)
eye (image left)
outer corner of the subject's left   45         (225, -170, 135)
eye (image right)
subject's right mouth corner         48         (-150, 150, 125)
subject's left mouth corner          54         (150, 150, 125)
===================================  =========  ==============================

These six points are the ones dlib's 68-point predictor places most reliably under pose change (the jaw
line and inner contours slide along the face). The camera is a pinhole with focal length = image width in
pixels, principal point at the image centre and no distortion.

Angles (degrees), from the rotation ``R`` solvePnP returns (model -> camera coordinates):

* **yaw**: heading of the face's forward direction ``f = R @ (0, 0, -1)``: ``atan2(f_x, -f_z)``. Positive
  when the subject turns to **their left** (the nose moves toward the image right in an unmirrored photo);
  a horizontally mirrored photo gives the opposite sign.
* **pitch**: elevation of ``f``: ``atan2(-f_y, hypot(f_x, f_z))``; positive when the subject looks **up**.
* **roll**: angle of the face's left-right axis ``r = R @ (1, 0, 0)`` in the image: ``atan2(r_y, r_x)``;
  positive when the head tilts **clockwise** as seen in the image (the image-right eye lower). Rotating a
  photo counter-clockwise by 15 degrees lowers roll by about 15.

**Expression** (:func:`expression_distance`): the brow, eye and mouth landmarks (indices 17-26, 36-47,
48-67) of one face are aligned onto the other's by the least-squares similarity transform (Procrustes:
rotation, uniform scale, translation); the distance is the mean point-to-point distance after alignment
divided by the second face's inter-ocular distance (between the eye centres). 0 for identical shapes; a
smile or an open mouth against a neutral face is typically 0.05-0.15. Pose differences are not removed by a
2-D alignment, so large yaw/pitch differences also raise it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from perface.face.align import similarity_transform

__all__ = ["EXPRESSION_POINTS", "MODEL_POINTS", "MODEL_POINTS_3D", "HeadPose", "expression_distance", "head_pose",
           "inter_ocular_distance"]

#: dlib 68-point indices of the six landmarks used for pose, in the order of :data:`MODEL_POINTS_3D`.
MODEL_POINTS = (30, 8, 36, 45, 48, 54)
#: The generic 3-D face (LearnOpenCV six-point model), camera convention (x right, y down, z away).
MODEL_POINTS_3D = np.array([
    [0.0, 0.0, 0.0],
    [0.0, 330.0, 65.0],
    [-225.0, -170.0, 135.0],
    [225.0, -170.0, 135.0],
    [-150.0, 150.0, 125.0],
    [150.0, 150.0, 125.0],
], dtype=np.float64)
#: Brows (17-26), eyes (36-47) and mouth (48-67): the landmarks that move with expression.
EXPRESSION_POINTS = tuple(range(17, 27)) + tuple(range(36, 48)) + tuple(range(48, 68))
_RIGHT_EYE = slice(36, 42)
_LEFT_EYE = slice(42, 48)


@dataclass(frozen=True)
class HeadPose:
    """Head rotation in degrees (see the module docstring for the sign convention).

    Attributes:
        yaw: Positive = the subject turned to their left.
        pitch: Positive = looking up.
        roll: Positive = head tilted clockwise in the image.
        reprojection_error: Mean distance in pixels between the six landmarks and the fitted model's projection,
            divided by the inter-ocular distance (a fit-quality indicator; about 0.05-0.15 for real faces).
    """

    yaw: float
    pitch: float
    roll: float
    reprojection_error: float

    def to_dict(self) -> dict:
        return asdict(self)


def _check68(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"need (68, 2) landmarks (dlib's 68-point predictor), got {lm.shape}")
    return lm


def inter_ocular_distance(landmarks: np.ndarray) -> float:
    """Distance in pixels between the two eye centres of (68, 2) landmarks."""
    lm = _check68(landmarks)
    return float(np.linalg.norm(lm[_RIGHT_EYE].mean(0) - lm[_LEFT_EYE].mean(0)))


def head_pose(landmarks: np.ndarray, image_size: tuple[int, int]) -> HeadPose:
    """Yaw, pitch and roll of a face.

    Args:
        landmarks: float (68, 2) dlib/iBUG landmarks in pixels.
        image_size: (height, width) of the image the landmarks are in (sets the camera).

    Returns:
        :class:`HeadPose` in degrees.
    """
    lm = _check68(landmarks)
    h, w = int(image_size[0]), int(image_size[1])
    focal = float(w)
    camera = np.array([[focal, 0.0, w / 2.0], [0.0, focal, h / 2.0], [0.0, 0.0, 1.0]])
    pts = np.ascontiguousarray(lm[list(MODEL_POINTS)])
    iod = max(inter_ocular_distance(lm), 1e-6)
    # Start from a frontal face at the distance where the model's outer eye corners (450 units apart) would
    # appear as far apart as the observed ones: avoids the mirrored solution the 6-point problem admits.
    eye_span = max(float(np.linalg.norm(pts[3] - pts[2])), 1e-6)
    z = focal * 450.0 / eye_span
    nose = pts[0]
    tvec0 = np.array([[(nose[0] - w / 2.0) * z / focal], [(nose[1] - h / 2.0) * z / focal], [z]])
    rvec0 = np.zeros((3, 1))
    ok, rvec, tvec = cv2.solvePnP(MODEL_POINTS_3D, pts, camera, None, rvec0, tvec0, useExtrinsicGuess=True,
                                  flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:  # pragma: no cover - the iterative solver with an initial guess does not fail on finite input
        raise ValueError("solvePnP found no head pose for these landmarks")
    rot, _ = cv2.Rodrigues(rvec)
    f = rot @ np.array([0.0, 0.0, -1.0])
    r = rot @ np.array([1.0, 0.0, 0.0])
    yaw = np.degrees(np.arctan2(f[0], -f[2]))
    pitch = np.degrees(np.arctan2(-f[1], np.hypot(f[0], f[2])))
    roll = np.degrees(np.arctan2(r[1], r[0]))
    projected, _ = cv2.projectPoints(MODEL_POINTS_3D, rvec, tvec, camera, None)
    err = float(np.linalg.norm(projected.reshape(-1, 2) - pts, axis=1).mean()) / iod
    return HeadPose(float(yaw), float(pitch), float(roll), err)


def expression_distance(landmarks: np.ndarray, reference: np.ndarray) -> float:
    """How differently two faces hold brows, eyes and mouth, free of position, scale and in-plane rotation.

    Args:
        landmarks: float (68, 2) landmarks of the face to compare (e.g. a face swap result).
        reference: float (68, 2) landmarks of the reference face (e.g. the swap's target).

    Returns:
        Mean distance of the :data:`EXPRESSION_POINTS` after similarity alignment of ``landmarks`` onto
        ``reference``, in units of the reference's inter-ocular distance (>= 0; 0 = same shape).
    """
    a = _check68(landmarks)[list(EXPRESSION_POINTS)]
    b = _check68(reference)[list(EXPRESSION_POINTS)]
    m = similarity_transform(a, b)
    aligned = a @ m[:, :2].T + m[:, 2]
    return float(np.linalg.norm(aligned - b, axis=1).mean() / max(inter_ocular_distance(reference), 1e-6))
