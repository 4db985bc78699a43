"""`perface score` end to end: output forms, exit codes and one-line errors."""

import json
import subprocess
import sys

import pytest

from perface.cli.main import main

A1 = "Aaron_Peirsol/Aaron_Peirsol_0001.jpg"
A2 = "Aaron_Peirsol/Aaron_Peirsol_0002.jpg"
B1 = "Abdullah_Gul/Abdullah_Gul_0001.jpg"


def test_score_same_person_higher_than_different(lfw, capsys):
    img = lfw / "images"
    assert main(["score", str(img / A1), str(img / A2)]) == 0
    same = float(capsys.readouterr().out)
    assert main(["score", str(img / A1), str(img / B1)]) == 0
    diff = float(capsys.readouterr().out)
    assert same > diff


def test_score_json(lfw, capsys):
    img = lfw / "images"
    assert main(["score", "--json", str(img / A1), str(img / B1)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "base" and -1 <= out["score"] <= 1
    assert [f["faces_found"] for f in out["faces"]] == [1, 1]
    x0, y0, x1, y1 = out["faces"][0]["box"]
    assert 0 <= x0 < x1 <= 250 and 0 <= y0 < y1 <= 250


def test_score_picks_face_index_in_group_photo(photos, capsys):
    assert main(["score", "--json", "--face", "1", str(photos / "couple.jpg"), str(photos / "couple.jpg")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["faces"][0]["face_index"] == 1 and out["faces"][0]["faces_found"] == 2
    assert out["score"] == pytest.approx(1.0, abs=1e-5)


def test_score_center_face_and_detector_chain(photos, data_root, capsys):
    group, turned = photos / "selfie-many-people.jpg", data_root / "fairface" / "images" / "fairface_0004.jpg"
    assert main(["score", "--json", "--face", "center", "--detector", "hog+cnn", str(group), str(turned)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["faces"][0]["faces_found"] >= 3
    assert out["faces"][0]["face_index"] == 2  # nearest the centre of the 600 x 604 photo; the largest is 0
    assert out["faces"][1]["detector"] == "cnn"  # HOG finds no face in this turned head


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["score", "/no/such.jpg", "/no/other.jpg"], 1, "/no/such.jpg"),
        (["score", "only-one.jpg"], 2, "required"),
        (["score", "--face", "x", "a.jpg", "b.jpg"], 2, "--face"),
        (["score", "--face", "centre", "a.jpg", "b.jpg"], 2, "face 'centre' is not a valid choice; use largest, center"),
        (["score", "--face", "-1", "a.jpg", "b.jpg"], 2, "face '-1' is not a valid choice"),
        (["score", "--model", "dlib_resnt", "a.jpg", "b.jpg"], 1, "dlib_resnet"),
        (["nonsense"], 2, "invalid choice"),
    ],
)
def test_errors_are_one_line(args, code, needle, capsys):
    assert main(args) == code
    err = capsys.readouterr().err
    assert err.startswith("perface:") and err.count("\n") == 1 and needle in err


def test_no_face_message_names_file_and_fix(tmp_path, lfw, capsys):
    from PIL import Image

    blank = tmp_path / "wall.png"
    Image.new("RGB", (300, 300), "white").save(blank)
    assert main(["score", str(blank), str(lfw / "images" / A1)]) == 1
    err = capsys.readouterr().err
    assert "wall.png" in err and "--on-no-face whole-image" in err
    assert main(["score", "--on-no-face", "whole-image", str(blank), str(lfw / "images" / A1)]) == 0


def test_console_script_and_debug_traceback(tmp_path):
    exe = [sys.executable, "-m", "perface"]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    plain = subprocess.run([*exe, "score", str(bad), str(bad)], capture_output=True, text=True)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr and "bad.jpg" in plain.stderr
    debug = subprocess.run([*exe, "--debug", "score", str(bad), str(bad)], capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
