"""Video frames (PyAV / OpenCV / frame folders / GIF) and ``perface eval video`` on clips written with OpenCV
from real LFW photos: one person, a switch of person halfway, frames without a face, broken files."""

import json

import cv2
import numpy as np
import pytest
from PIL import Image

import perface
from perface.cli.main import main
from perface.errors import VideoReadError
from perface.evaluation import video
from perface.io.image import load_image
from perface.io.video import read_frames


def _crop(path):
    return load_image(path)[45:205, 45:205]  # 160 px around the face of a 250 px LFW photo


def _write(path, frames, fourcc="mp4v"):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 8, (160, 160))
    for f in frames:
        w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    w.release()
    return path


@pytest.fixture(scope="module")
def clips(lfw, tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    blair = [_crop(p) for p in sorted((lfw / "images" / "Tony_Blair").glob("*.jpg"))[:12]]
    serena = [_crop(p) for p in sorted((lfw / "images" / "Serena_Williams").glob("*.jpg"))[:6]]
    blank = np.full((160, 160, 3), 90, np.uint8)
    gaps = list(blair[:4]) + [blank, blank] + list(blair[6:12])
    return {"one": _write(d / "one.mp4", blair), "switch": _write(d / "switch.mp4", blair[:6] + serena),
            "gaps": _write(d / "gaps.avi", gaps, "MJPG"), "frames": blair, "dir": d,
            "reference": lfw / "images" / "Tony_Blair" / "Tony_Blair_0013.jpg"}


@pytest.fixture(scope="module")
def model():
    return perface.load("base")


def test_backends_agree_and_frame_selection(clips):
    a, b = read_frames(clips["one"], backend="pyav"), read_frames(clips["one"], backend="opencv")
    assert len(a) == len(b) == a.total == 12 and a.fps == pytest.approx(8)
    assert a.frames[0].shape == (160, 160, 3) and a.frames[0].dtype == np.uint8
    assert np.abs(a.frames[5].astype(int) - b.frames[5].astype(int)).mean() < 3  # same decoded pixels, up to YUV->RGB
    assert np.abs(a.frames[5].astype(int) - clips["frames"][5].astype(int)).mean() < 12  # lossy codec
    assert read_frames(clips["one"], frames=5).indices == [0, 3, 6, 8, 11]
    assert read_frames(clips["one"], every=4).indices == [0, 4, 8]
    assert read_frames(clips["one"], every=4, backend="opencv").indices == [0, 4, 8]


def test_gif_and_frame_folder(clips):
    d = clips["dir"]
    frames = [Image.fromarray(f) for f in clips["frames"][:5]]
    frames[0].save(d / "clip.gif", save_all=True, append_images=frames[1:], duration=100)
    g = read_frames(d / "clip.gif")
    assert len(g) == 5 and g.frames[0].shape == (160, 160, 3)
    folder = d / "frames"
    folder.mkdir()
    for i, f in enumerate(clips["frames"][:11]):
        Image.fromarray(f).save(folder / f"frame{i}.png")
    (folder / "notes.txt").write_text("not a frame")
    r = read_frames(folder, every=5)
    assert r.indices == [0, 5, 10] and r.names == ["frame0.png", "frame5.png", "frame10.png"]  # natural order
    assert np.array_equal(r.frames[1], clips["frames"][5])


def test_broken_videos_are_one_line_errors(clips, capsys):
    d = clips["dir"]
    (d / "empty.mp4").write_bytes(b"")
    (d / "trunc.mp4").write_bytes(clips["one"].read_bytes()[:3000])
    (d / "text.webm").write_text("hello, not a video\n")
    for name in ("empty.mp4", "trunc.mp4", "text.webm", "missing.mov"):
        for backend in ("pyav", "opencv"):
            with pytest.raises(VideoReadError, match=name):
                read_frames(d / name, backend=backend)
        assert main(["eval", "video", str(d / name)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"perface: could not read video '{d / name}'") and err.count("\n") == 1
    (d / "noframes").mkdir()
    with pytest.raises(VideoReadError, match="no frame images"):
        read_frames(d / "noframes")


def test_switch_of_person_lowers_consistency_at_the_switch(clips, model):
    rep = video.evaluate([clips["one"], clips["switch"]], reference=clips["reference"], model=model, id_model=model)
    one, sw = rep.videos
    assert one["frames"] == sw["frames"] == 12 and one["frames_without_face"] == [] == sw["frames_without_face"]
    assert sw["consistency"] < one["consistency"] and sw["mean"] < one["mean"] and sw["min"] < one["min"]
    assert sw["subject_consistency"] < one["subject_consistency"]
    assert sw["largest_drop"]["frame"] == 6 and sw["change_point"]["frame"] == 6
    assert sw["change_point"]["drop"] > 2 * one["change_point"]["drop"]
    assert sw["perceptual"]["change_point"]["frame"] == 6
    d = json.loads(json.dumps(rep.to_dict()))
    for v in d["videos"]:
        assert set(v) >= {"mean", "std", "min", "consistency", "frame_to_frame", "subject_consistency", "frames",
                          "frames_without_face", "perceptual", "per_frame"}
        assert v["consistency"] == pytest.approx(1 - v["std"])
        s = np.array([f["identity_to_reference"] for f in v["per_frame"]])
        assert v["mean"] == pytest.approx(s.mean()) and v["min"] == pytest.approx(s.min())


def test_frames_without_face_are_listed(clips, model, tmp_path, capsys):
    rep = video.evaluate(clips["gaps"], model=model, id_model=model)
    v = rep.videos[0]
    assert v["frames_without_face"] == [4, 5] and v["frames"] == 12
    assert [f["face"] for f in v["per_frame"]][3:7] == [True, False, False, True]
    assert v["reference"] == "first frame with a face"
    assert main(["eval", "video", str(clips["gaps"]), "--every", "2", "--report", str(tmp_path / "r")]) == 0
    out, err = capsys.readouterr()
    assert "no face in 1 of 6 frames (4)" in err
    assert (tmp_path / "r" / "similarity_over_time.png").stat().st_size > 0
    assert (tmp_path / "r" / "frames.parquet").is_file()


def test_videos_csv_continues_past_bad_videos(clips, capsys):
    d = clips["dir"]
    (d / "bad.mp4").write_bytes(b"\x00" * 100)
    (d / "videos.csv").write_text(f"video,reference\none.mp4,{clips['reference']}\nbad.mp4,\n")
    assert main(["eval", "video", "--videos", str(d / "videos.csv"), "--frames", "4", "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert [v["frames"] for v in doc["videos"]] == [4] and doc["unusable"]["count"] == 1
    assert "bad.mp4" in doc["unusable"]["videos"][0]["reason"] and "bad.mp4: left out" in err


def test_sequence_metrics_follow_the_formulas():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(7, 16))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    ref = e[0] + 0.1
    ref /= np.linalg.norm(ref)
    m = video.sequence_metrics(e, list(range(10, 17)), ref)
    cos = e @ ref
    prev = np.array([e[i] @ e[i - 1] for i in range(1, 7)])
    first = np.array([e[i] @ e[0] for i in range(1, 7)])
    assert m["mean"] == pytest.approx(cos.mean()) and m["std"] == pytest.approx(cos.std())
    assert m["frame_to_frame"] == pytest.approx(prev.mean())
    assert m["subject_consistency"] == pytest.approx(np.mean((np.maximum(prev, 0) + np.maximum(first, 0)) / 2))
    assert m["largest_drop"]["frame"] == 11 + int(np.argmin(prev))
    assert video.sequence_metrics(e[:1], [0], None)["frame_to_frame"] is None


@pytest.mark.parametrize("args, message", [
    (["ONE", "--videos", "videos.csv"], "give VIDEO arguments or --videos CSV, not both"),
    ([], "eval video needs VIDEO arguments or --videos CSV"),
    (["ONE", "--every", "0"], "--every 0: keep every K-th frame with K at least 1"),
    (["ONE", "--frames", "0"], "--frames 0: analyse at least 1 frame"),
    (["ONE", "--on-no-face", "whole-image"], "whole-image does not apply to videos"),
])
def test_cli_video_usage_errors_before_any_model_is_loaded(clips, args, message, capsys, monkeypatch):
    monkeypatch.setattr("perface.cli.eval_generated.load_model", lambda *a, **k: pytest.fail("model loaded"))
    assert main(["eval", "video", *[str(clips["one"]) if a == "ONE" else a for a in args]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert main(["eval", "video", str(clips["one"]), "--reference", "no/such.jpg"]) == 1
    assert "--reference no/such.jpg: no such image file" in capsys.readouterr().err
