"""Face detection on raw, unaligned photos: several faces, very large images, a WEBP named .jpg."""

import numpy as np
import pytest

from perface.face import FacePipeline
from perface.face.detector import FaceDetector
from perface.io import load_image
from perface.preprocessing import ARCFACE, DLIB


@pytest.fixture(scope="module")
def pipeline():
    return FacePipeline(DLIB, upsample=0)


def test_couple_has_two_faces_largest_first(photos, pipeline):
    faces = pipeline.detect(load_image(photos / "couple.jpg"))
    assert len(faces) == 2
    assert faces[0].area >= faces[1].area
    # the two people stand side by side: boxes do not overlap
    (a0, _, a1, _), (b0, _, b1, _) = faces[0].box, faces[1].box
    assert a1 <= b0 or b1 <= a0


def test_selfie_with_many_people(photos):
    faces = FacePipeline(DLIB, upsample=1).detect(load_image(photos / "selfie-many-people.jpg"))
    assert len(faces) >= 4
    areas = [f.area for f in faces]
    assert areas == sorted(areas, reverse=True)


def test_large_image_boxes_map_back_to_full_resolution(photos, pipeline):
    image = load_image(photos / "img49.jpg")  # 4352 x 2903
    assert max(image.shape[:2]) > 4000
    faces = pipeline.detect(image)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].box
    h, w = image.shape[:2]
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert x1 - x0 > 500  # a big face in full-resolution pixels, not in the downscaled copy's
    # landmarks were predicted on the full image: they lie inside (a slightly grown) box
    lm = faces[0].landmarks
    assert lm.shape == (5, 2)
    assert (lm[:, 0] > x0 - 0.2 * (x1 - x0)).all() and (lm[:, 0] < x1 + 0.2 * (x1 - x0)).all()


def test_downscaling_finds_the_same_face(photos):
    image = load_image(photos / "img3.jpg")
    big = FaceDetector(max_side=4096)(image)
    small = FaceDetector(max_side=800)(image)
    assert len(big) == len(small) == 1
    (a0, a1, a2, a3), (b0, b1, b2, b3) = big[0][0], small[0][0]
    inter = max(0, min(a2, b2) - max(a0, b0)) * max(0, min(a3, b3) - max(a1, b1))
    union = (a2 - a0) * (a3 - a1) + (b2 - b0) * (b3 - b1) - inter
    assert inter / union > 0.7  # the same face, at a coarser step of the detector's scale pyramid


def test_webp_named_jpg_is_detected(photos, pipeline):
    assert (photos / "img47.jpg").read_bytes()[8:12] == b"WEBP"
    faces = pipeline.detect(load_image(photos / "img47.jpg"))
    assert len(faces) == 1


def test_face_index_and_all(photos, pipeline):
    image = load_image(photos / "couple.jpg")
    all_faces = pipeline(image, face="all")
    assert [a.index for a in all_faces] == [0, 1]
    second = pipeline(image, face=1)
    assert second[0].face.box == all_faces[1].face.box
    from perface.errors import NoFaceError

    with pytest.raises(NoFaceError, match="2 face"):
        pipeline(image, face=2)


def test_on_no_face_modes(data_root, pipeline):
    from perface.errors import NoFaceError

    blank = np.full((200, 200, 3), 127, np.uint8)
    with pytest.raises(NoFaceError, match="whole-image"):
        pipeline(blank, on_no_face="error", name="blank.png")
    assert pipeline(blank, on_no_face="skip") == []
    (whole,) = pipeline(blank, on_no_face="whole-image")
    assert whole.face.detector == "whole-image" and whole.face.box == (0.0, 0.0, 200.0, 200.0)
    assert whole.chip.shape == (150, 150, 3)


def test_cnn_detector_agrees_with_hog(photos):
    image = load_image(photos / "img10.jpg")
    hog = FaceDetector("hog")(image)
    cnn = FaceDetector("cnn", max_side=400)(image)
    assert len(hog) == 1 and len(cnn) >= 1
    hx = (hog[0][0][0] + hog[0][0][2]) / 2
    cx = (cnn[0][0][0] + cnn[0][0][2]) / 2
    assert abs(hx - cx) < 0.25 * (hog[0][0][2] - hog[0][0][0])


def test_arcface_pipeline_uses_68_points(photos):
    (aligned,) = FacePipeline(ARCFACE)(load_image(photos / "img10.jpg"))
    assert aligned.face.landmarks.shape == (68, 2)
    assert aligned.chip.shape == (112, 112, 3) and aligned.chip.dtype == np.uint8


def test_center_picks_the_face_nearest_the_image_centre(photos, pipeline):
    image = load_image(photos / "selfie-many-people.jpg")  # four faces of clearly different sizes
    faces = pipeline.detect(image)
    assert len(faces) >= 3
    # Pad the image so that the third-largest face sits at the centre of the canvas.
    h, w = image.shape[:2]
    cx, cy = (faces[2].box[0] + faces[2].box[2]) / 2, (faces[2].box[1] + faces[2].box[3]) / 2
    left, right = max(0, round(w - 2 * cx)), max(0, round(2 * cx - w))
    top, bottom = max(0, round(h - 2 * cy)), max(0, round(2 * cy - h))
    padded = np.pad(image, ((top, bottom), (left, right), (0, 0)))
    (centred,) = pipeline(padded, face="center")
    x0, y0, x1, y1 = centred.face.box
    assert abs((x0 + x1) / 2 - padded.shape[1] / 2) < 5 and abs((y0 + y1) / 2 - padded.shape[0] / 2) < 5
    assert centred.index == 2
    (largest,) = pipeline(padded, face="largest")
    assert largest.index == 0 and largest.face.area > 1.5 * centred.face.area


def test_hog_then_cnn_fallback(data_root):
    chain = FacePipeline(DLIB, detector="hog+cnn")
    hog_only = FacePipeline(DLIB)
    turned = load_image(data_root / "fairface" / "images" / "fairface_0004.jpg")  # HOG (frontal only) finds none
    assert hog_only.detect(turned) == []
    found = chain.detect(turned)
    assert len(found) >= 1 and {f.detector for f in found} == {"cnn"}
    frontal = load_image(data_root / "fairface" / "images" / "fairface_0001.jpg")
    hog_faces, chain_faces = hog_only.detect(frontal), chain.detect(frontal)
    assert len(hog_faces) >= 1  # HOG finds it, so the CNN never runs: same boxes, labelled hog
    assert [f.box for f in chain_faces] == [f.box for f in hog_faces]
    assert {f.detector for f in chain_faces} == {"hog"}
    with pytest.raises(ValueError, match="detector 'hog\\+haar' is not known; use one of hog, cnn, hog\\+cnn"):
        FacePipeline(DLIB, detector="hog+haar")


def test_bad_face_choice_is_a_clear_error(photos, pipeline):
    image = load_image(photos / "couple.jpg")
    with pytest.raises(ValueError, match="face 'centre' is not a valid choice; use largest, center, all"):
        pipeline(image, face="centre")
    assert pipeline(image, face=np.int64(1))[0].index == 1  # numpy integers are indices too
