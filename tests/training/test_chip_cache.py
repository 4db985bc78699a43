import shutil

import numpy as np

import pytest

from perface.errors import SettingsError
from perface.face.pipeline import FacePipeline
from perface.io import load_image
from perface.preprocessing import ARCFACE, DLIB, FaceOptions
from perface.training import chip_cache as cc

HOG = FaceOptions(detector="hog", upsample=0, on_no_face="whole-image")


def test_chips_cached_by_content_and_setting(tmp_path, lfw, monkeypatch):
    src = lfw / "images" / "Colin_Powell" / "Colin_Powell_0001.jpg"
    other = tmp_path / "renamed.jpg"
    shutil.copy(src, other)
    cache = cc.ChipCache(DLIB, HOG, cache=tmp_path / "cache")
    assert cache.prepare([src]) == {}
    chip = cache.load(src)
    expected = FacePipeline(DLIB, HOG)(load_image(src))[0].chip
    np.testing.assert_array_equal(chip, expected)  # the same function inference uses

    calls = []
    real = cc.align_many
    monkeypatch.setattr(cc, "align_many", lambda images, *a, **k: (calls.append(list(images)), real(images, *a, **k))[1])
    fresh = cc.ChipCache(DLIB, HOG, cache=tmp_path / "cache")
    assert fresh.prepare([src, other]) == {}
    assert calls == [[]]  # same bytes under another name: no detection at all
    np.testing.assert_array_equal(fresh.load(other), chip)

    arc = cc.ChipCache(ARCFACE, HOG, cache=tmp_path / "cache")
    assert arc.key != cache.key
    arc.prepare([src])
    assert arc.load(src).shape == (112, 112, 3)


def test_failures_are_recorded_with_reasons(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    blank = tmp_path / "blank.npy.png"
    from PIL import Image

    Image.new("RGB", (200, 200), "white").save(blank)
    skip = HOG.override(on_no_face="skip")
    cache = cc.ChipCache(DLIB, skip, cache=tmp_path / "cache")
    failed = cache.prepare([bad, blank, tmp_path / "missing.jpg"])
    assert set(failed) == {str(bad), str(blank), str(tmp_path / "missing.jpg")}
    assert "bad.jpg" in failed[str(bad)] and "no face" in failed[str(blank)]
    # remembered: a second run reports them without re-running detection
    assert cc.ChipCache(DLIB, skip, cache=tmp_path / "cache").prepare([bad, blank]).keys() == {str(bad), str(blank)}


def test_face_choice_and_detector_chain_are_part_of_the_key(tmp_path, photos, data_root):
    group = photos / "selfie-many-people.jpg"
    largest = cc.ChipCache(DLIB, HOG, cache=tmp_path / "cache")
    central = cc.ChipCache(DLIB, HOG.override(face="center"), cache=tmp_path / "cache")
    chained = cc.ChipCache(DLIB, HOG.override(detector="hog+cnn", face="center"), cache=tmp_path / "cache")
    assert len({largest.key, central.key, chained.key}) == 3
    assert largest.prepare([group]) == {} and central.prepare([group]) == {}
    np.testing.assert_array_equal(largest.load(group), FacePipeline(DLIB, HOG)(load_image(group))[0].chip)
    np.testing.assert_array_equal(central.load(group),
                                  FacePipeline(DLIB, HOG)(load_image(group), face="center")[0].chip)
    assert not np.array_equal(largest.load(group), central.load(group))
    turned = data_root / "fairface" / "images" / "fairface_0004.jpg"  # no frontal (HOG) face
    assert chained.prepare([turned]) == {}
    (expected,) = FacePipeline(DLIB, HOG.override(detector="hog+cnn"))(load_image(turned), face="center")
    assert expected.face.detector == "cnn"
    np.testing.assert_array_equal(chained.load(turned), expected.chip)


def test_bad_settings_fail_before_any_image_is_read(tmp_path):
    with pytest.raises(SettingsError, match="one face per image"):
        cc.ChipCache(DLIB, HOG.override(face="all"), cache=tmp_path)
    assert not any(tmp_path.iterdir())
