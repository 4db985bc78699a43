"""Alignment geometry on real LFW faces."""

import numpy as np
import pytest

from perface.face import FacePipeline
from perface.face.align import ARCFACE_TEMPLATE, arcface_matrix, similarity_transform
from perface.face.landmarks import LandmarkPredictor, arcface_points
from perface.io import load_image
from perface.preprocessing import ARCFACE, DLIB


@pytest.fixture(scope="module")
def lfw_images(lfw):
    people = sorted(p for p in (lfw / "images").iterdir())[::200][:20]
    return [load_image(sorted(p.iterdir())[0]) for p in people]


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (5, 2))
    angle, scale, t = 0.3, 0.7, np.array([12.0, -5.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = scale * src @ rot.T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], scale * rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)


def test_arcface_landmarks_land_on_template(lfw_images):
    """Real faces differ from the template by pose and shape, so this checks the fit on average:
    eye and mouth points within 3 px of the template on average over 20 faces, the nose (which moves most
    with head pose) within 6 px, and every face's median point within 7 px."""
    pipe = FacePipeline(ARCFACE)
    predictor = LandmarkPredictor(68)
    fit, redetected = [], []
    for image in lfw_images:
        (aligned,) = pipe(image)
        pts = arcface_points(aligned.face.landmarks)
        m = arcface_matrix(pts, 112)
        fit.append(np.linalg.norm(pts @ m[:, :2].T + m[:, 2] - ARCFACE_TEMPLATE, axis=1))
        # the chip really shows the face there: landmarks found again on the chip sit near the template
        lm = predictor(aligned.chip, (0, 0, 112, 112))
        redetected.append(np.linalg.norm(arcface_points(lm) - ARCFACE_TEMPLATE, axis=1))
    for err in (np.array(fit), np.array(redetected)):
        mean = err.mean(0)
        assert mean[[0, 1, 3, 4]].max() < 3.0, mean
        assert mean[2] < 6.0, mean
        assert np.median(err, axis=1).max() < 7.0


def test_arcface_alignment_is_exact_for_a_transformed_template():
    angle, scale = 0.25, 2.3
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = scale * ARCFACE_TEMPLATE @ rot.T + np.array([40.0, 25.0])
    m = arcface_matrix(pts, 112)
    np.testing.assert_allclose(pts @ m[:, :2].T + m[:, 2], ARCFACE_TEMPLATE, atol=1e-3)


def test_dlib_chips_put_eyes_in_the_same_place(lfw_images):
    pipe = FacePipeline(DLIB)
    predictor = LandmarkPredictor(68)
    centres = []
    for image in lfw_images:
        (aligned,) = pipe(image)
        assert aligned.chip.shape == (150, 150, 3)
        lm = predictor(aligned.chip, (0, 0, 150, 150))
        right, left = lm[36:42].mean(0), lm[42:48].mean(0)
        centres.append(np.concatenate([right, left]))
    centres = np.array(centres)
    tilt = centres[:, 1] - centres[:, 3]  # signed: the alignment removes in-plane rotation on average
    assert abs(tilt.mean()) < 2.0 and np.median(np.abs(tilt)) < 3.0 and np.abs(tilt).max() < 10.0
    assert centres.std(0).max() < 3.0  # same place in every chip, within a few pixels
    # padding 0.25 leaves a margin: eyes well inside the chip, left eye to the right of the right eye
    assert (centres[:, 0] < centres[:, 2]).all() and (centres > 30).all() and (centres < 120).all()
