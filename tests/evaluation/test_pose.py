"""Head pose and expression from 68 landmarks: the sign convention on synthetic projections, and on real LFW
photos mirrored, rotated in-plane, and frontal."""

import cv2
import numpy as np
import pytest

from perface.face.detector import FaceDetector
from perface.face.landmarks import landmark_predictor
from perface.face.pose import MODEL_POINTS, MODEL_POINTS_3D, expression_distance, head_pose
from perface.io.image import load_image

PEOPLE = ["Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon", "Hugo_Chavez"]


@pytest.fixture(scope="module")
def measure():
    detector, predictor = FaceDetector("hog", upsample=1), landmark_predictor(68)

    def run(image):
        found = detector(image)
        assert found, "no face"
        return head_pose(predictor(image, found[0][0]), image.shape[:2]), predictor(image, found[0][0])

    return run


@pytest.fixture(scope="module")
def photos(lfw):
    return [load_image(lfw / "images" / p / f"{p}_{k:04d}.jpg") for p in PEOPLE for k in (1, 2, 3)]


def _landmarks_for(rvec, w=400, h=400, z=2000.0):
    """68 landmarks whose six pose points are the model projected with rotation ``rvec`` (others unused)."""
    cam = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], dtype=np.float64)
    pts, _ = cv2.projectPoints(MODEL_POINTS_3D, np.asarray(rvec, np.float64), np.array([0.0, 0.0, z]), cam, None)
    lm = np.zeros((68, 2))
    lm[list(MODEL_POINTS)] = pts.reshape(-1, 2)
    lm[36:42] = lm[36]  # eye centres for the inter-ocular distance
    lm[42:48] = lm[45]
    return lm


def test_sign_convention_on_projected_model():
    # rotation about the camera's y axis by -20 deg turns the nose toward +x (image right): the subject's left
    p = head_pose(_landmarks_for([0.0, np.radians(-20), 0.0]), (400, 400))
    assert p.yaw == pytest.approx(20, abs=0.5) and abs(p.pitch) < 0.5 and abs(p.roll) < 0.5
    up = head_pose(_landmarks_for([np.radians(-15), 0.0, 0.0]), (400, 400))  # nose tilts toward -y: looking up
    assert up.pitch == pytest.approx(15, abs=0.5) and abs(up.yaw) < 0.5
    cw = head_pose(_landmarks_for([0.0, 0.0, np.radians(10)]), (400, 400))  # clockwise in the image (y down)
    assert cw.roll == pytest.approx(10, abs=0.5)
    assert p.reprojection_error < 1e-3


def test_mirrored_photo_flips_yaw(photos, measure):
    sums, checked = [], 0
    for image in photos:
        p, _ = measure(image)
        m, _ = measure(np.ascontiguousarray(image[:, ::-1]))
        sums.append(abs(p.yaw + m.yaw))
        if abs(p.yaw) > 8:
            assert np.sign(m.yaw) == -np.sign(p.yaw)
            checked += 1
        assert abs(p.roll + m.roll) < 3
    assert checked >= 3
    assert np.median(sums) < 3  # mirror symmetry of the yaw estimate, up to dlib's landmark asymmetry


def test_in_plane_rotation_changes_roll_by_15(photos, measure):
    for image in photos[::2]:
        p, _ = measure(image)
        h, w = image.shape[:2]
        rot = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), 15, 1.0), (w, h))
        r, _ = measure(rot)
        assert r.roll - p.roll == pytest.approx(-15, abs=3)  # counter-clockwise photo rotation lowers roll


def test_frontal_lfw_faces_have_small_yaw(photos, measure):
    frontal = 0
    for image in photos:
        p, lm = measure(image)
        left, right = lm[30, 0] - lm[36, 0], lm[45, 0] - lm[30, 0]  # nose tip between the outer eye corners
        if abs(left - right) / (left + right) < 0.08:  # frontal by landmark symmetry
            assert abs(p.yaw) < 8
            frontal += 1
    assert frontal >= 3


def test_expression_distance(photos, measure):
    _, lm = measure(photos[0])
    assert expression_distance(lm, lm) == pytest.approx(0, abs=1e-9)
    theta = np.radians(20)
    moved = (lm - lm.mean(0)) @ (1.7 * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])).T + 33
    assert expression_distance(moved, lm) == pytest.approx(0, abs=1e-6)  # free of position, scale, rotation
    open_mouth = lm.copy()
    open_mouth[55:60] += [0, 12]  # lower lip down
    open_mouth[64:68] += [0, 12]
    assert expression_distance(open_mouth, lm) > 0.03
    with pytest.raises(ValueError):
        expression_distance(lm[:5], lm)
