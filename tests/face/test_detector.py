"""Face detection on raw, unaligned photos: several faces, very large images, a WEBP named .jpg."""

import numpy as np
import pytest

from perface.errors import NoFaceError, SettingsError
from perface.face import FacePipeline
from perface.face.detector import DetectorChain, FaceDetector
from perface.io import load_image
from perface.preprocessing import ARCFACE, DLIB, LEGACY_FACE_OPTIONS, FaceOptions


@pytest.fixture(scope="module")
def pipeline():
    return FacePipeline(DLIB, LEGACY_FACE_OPTIONS)


def test_couple_has_two_faces_largest_first(photos, pipeline):
    faces = pipeline.detect(load_image(photos / "couple.jpg"))
    assert len(faces) == 2
    assert faces[0].area >= faces[1].area
    # the two people stand side by side: boxes do not overlap
    (a0, _, a1, _), (b0, _, b1, _) = faces[0].box, faces[1].box
    assert a1 <= b0 or b1 <= a0


def test_selfie_with_many_people(photos):
    faces = FacePipeline(DLIB, FaceOptions(detector="hog", upsample=1)).detect(
        load_image(photos / "selfie-many-people.jpg"))
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
    with pytest.raises(NoFaceError, match="2 face"):
        pipeline(image, face=2)


def test_on_no_face_modes(data_root, pipeline):
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
    chain = FacePipeline(DLIB, FaceOptions(detector="hog+cnn", upsample=0))
    hog_only = FacePipeline(DLIB, LEGACY_FACE_OPTIONS)
    turned = load_image(data_root / "fairface" / "images" / "fairface_0004.jpg")  # HOG (frontal only) finds none
    assert hog_only.detect(turned) == []
    found = chain.detect(turned)
    assert len(found) >= 1 and {f.detector for f in found} == {"cnn"}
    frontal = load_image(data_root / "fairface" / "images" / "fairface_0001.jpg")
    hog_faces, chain_faces = hog_only.detect(frontal), chain.detect(frontal)
    assert len(hog_faces) >= 1  # HOG finds it, so the CNN never runs: same boxes, labelled hog
    assert [f.box for f in chain_faces] == [f.box for f in hog_faces]
    assert {f.detector for f in chain_faces} == {"hog"}
    with pytest.raises(SettingsError, match="detector 'hog\\+haar' is not known; use one of hog, cnn, hog\\+cnn"):
        FaceOptions(detector="hog+haar")


def test_bad_face_choice_is_a_clear_error(photos, pipeline):
    image = load_image(photos / "couple.jpg")
    with pytest.raises(SettingsError, match="face 'centre' is not a valid choice; use largest, center, all"):
        pipeline(image, face="centre")
    assert pipeline(image, face=np.int64(1))[0].index == 1  # numpy integers are indices too


def _small_lfw_face(lfw, name="Aaron_Eckhart/Aaron_Eckhart_0001.jpg", side=120):
    """An LFW photo shrunk so that its face (~55 px) is below what HOG finds without upsampling (~80 px)."""
    import cv2

    return cv2.resize(load_image(lfw / "images" / name), (side, side), interpolation=cv2.INTER_AREA)


def test_auto_upsample_finds_small_faces_at_the_cost_of_one_pass(lfw):
    small = _small_lfw_face(lfw)
    assert FacePipeline(DLIB, LEGACY_FACE_OPTIONS).detect(small) == []  # the old default misses it
    assert len(FacePipeline(DLIB, FaceOptions(detector="hog", upsample=1)).detect(small)) == 1
    found = FacePipeline(DLIB, FaceOptions(detector="hog")).detect(small)  # upsample auto
    assert len(found) == 1 and found[0].detector == "hog"
    chain = DetectorChain(FaceOptions())
    # small copies: each detector without, then with one upsampling step; big ones: no upsampling at all
    assert chain.attempts(250) == [("hog", 0), ("hog", 1), ("cnn", 0), ("cnn", 1)]
    assert chain.attempts(1024) == [("hog", 0), ("cnn", 0)]
    assert DetectorChain(FaceOptions(upsample=1)).attempts(250) == [("hog", 1), ("cnn", 1)]


def test_face_options_validate_override_and_round_trip():
    default = FaceOptions()
    assert (default.detector, default.upsample, default.max_side, default.face, default.on_no_face) == (
        "hog+cnn", "auto", 1024, "largest", "skip")
    changed = default.override(detector="hog", upsample="2", face="1", on_no_face=None)
    assert (changed.detector, changed.upsample, changed.face, changed.on_no_face) == ("hog", 2, 1, "skip")
    assert FaceOptions.from_dict(changed.to_dict()) == changed
    assert FaceOptions.from_dict({"detector": "cnn"}) == FaceOptions(detector="cnn")  # files from before a field
    for bad, message in ((dict(upsample=-1), "upsample -1 is not valid"), (dict(upsample="x"), "use auto or a number"),
                         (dict(max_side=10), "max_side 10 is not valid"), (dict(on_no_face="ignore"), "on_no_face"),
                         (dict(face="centre"), "face 'centre' is not a valid choice")):
        with pytest.raises(SettingsError, match=message):
            default.override(**bad)
    with pytest.raises(SettingsError, match="unknown face option"):
        default.override(detectr="hog")
