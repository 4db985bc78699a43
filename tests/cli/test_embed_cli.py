"""`perface embed`: folders, Parquet columns, bad files recorded and skipped."""

import numpy as np
import pandas as pd

from perface.cli.main import main


def test_embed_folder_with_bad_files(tmp_path, photos, lfw, capsys):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    for name in ("couple.jpg", "img47.jpg"):
        (folder / name).write_bytes((photos / name).read_bytes())
    (folder / "sub" / "a.jpg").write_bytes((lfw / "images/Aaron_Peirsol/Aaron_Peirsol_0001.jpg").read_bytes())
    (folder / "sub" / "truncated.jpg").write_bytes((photos / "img10.jpg").read_bytes()[:3000])
    (folder / "notes.txt").write_text("not an image, and not collected")
    out = tmp_path / "emb.parquet"
    code = main(["embed", str(folder), str(tmp_path / "missing.jpg"), "--out", str(out), "--face", "all",
                 "--no-progress", "--workers", "0"])
    assert code == 0
    df = pd.read_parquet(out)
    assert list(df.columns) == ["path", "face_index", "box", "embedding", "status", "error"]
    by_name = {p.rsplit("/", 1)[-1]: g for p, g in df.groupby("path")}
    assert set(by_name) == {"couple.jpg", "img47.jpg", "a.jpg", "truncated.jpg", "missing.jpg"}
    assert list(by_name["couple.jpg"].face_index) == [0, 1]
    assert (by_name["truncated.jpg"].status == "error").all() and "truncated" in by_name["truncated.jpg"].error.iloc[0]
    assert (by_name["missing.jpg"].status == "error").all()
    ok = df[df.status == "ok"]
    emb = np.stack(ok.embedding.to_numpy())
    assert emb.shape == (4, 128)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert "4 faces embedded" in capsys.readouterr().err


def test_embed_parallel_matches_serial(tmp_path, lfw):
    files = [str(p) for p in sorted((lfw / "images" / "Colin_Powell").iterdir())[:16]]
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert main(["embed", *files, "--out", str(a), "--workers", "0", "--no-progress"]) == 0
    assert main(["embed", *files, "--out", str(b), "--workers", "2", "--no-progress"]) == 0
    da, db = pd.read_parquet(a), pd.read_parquet(b)
    assert list(da.path) == list(db.path) == files
    np.testing.assert_allclose(np.stack(da.embedding), np.stack(db.embedding), atol=1e-6)


def test_embed_usage_errors(tmp_path, capsys):
    assert main(["embed", str(tmp_path), "--out", str(tmp_path / "x.csv")]) == 2
    assert ".parquet" in capsys.readouterr().err
    assert main(["embed", str(tmp_path), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "no image files" in capsys.readouterr().err


def test_default_settings_find_faces_in_every_photo_the_slow_reference_does(tmp_path, photos):
    """The default face options (hog+cnn, upsample auto) find a face in at least as many of the raw web photos
    as ``--detector hog+cnn --upsample 1`` (4x the HOG work on every image)."""
    from perface.face import FacePipeline
    from perface.io import load_image
    from perface.preprocessing import DLIB, FaceOptions

    out = tmp_path / "photos.parquet"
    assert main(["embed", str(photos), "--out", str(out), "--no-progress"]) == 0
    df = pd.read_parquet(out)
    found = set(df.path[df.status == "ok"])
    missed = sorted(set(df.path) - found)
    # The reference can only find more where the default found nothing: check those images with it.
    reference = FacePipeline(DLIB, FaceOptions(detector="hog+cnn", upsample=1))
    extra = [p for p in missed if reference.detect(load_image(p))]
    assert extra == [], f"the default misses faces the reference finds in {extra}"
    assert len(found) >= 60 and len(set(df.path)) == 64  # 64 photos; one is a WEBP named .jpg


def test_interrupted_embed_resumes_to_the_same_file(tmp_path, lfw):
    """SIGTERM half way leaves a valid file with the rows finished so far; --resume finishes it, and the result
    equals an uninterrupted run."""
    import signal
    import subprocess
    import sys
    import time

    import pyarrow.parquet as pq

    folder = tmp_path / "people"
    folder.mkdir()
    for name in ("Colin_Powell", "Tony_Blair"):
        (folder / name).symlink_to(lfw / "images" / name, target_is_directory=True)
    n_images = len(list(folder.glob("*/*.jpg")))
    base = [sys.executable, "-m", "perface", "embed", str(folder), "--no-progress", "--workers", "0",
            "--detector", "hog", "--upsample", "0", "--batch-size", "16"]
    full, cut = tmp_path / "full.parquet", tmp_path / "cut.parquet"
    proc = subprocess.Popen([*base, "--out", str(cut)], stderr=subprocess.PIPE, text=True)
    partial = cut.with_name(cut.name + ".partial")
    deadline = time.time() + 120
    while time.time() < deadline and (not partial.exists() or partial.stat().st_size < 60_000):
        time.sleep(0.2)  # wait until some row groups are on disk
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err
    assert "--resume" in err and err.count("\n") == 1
    done = pq.read_table(cut).num_rows
    assert 0 < done < n_images
    assert subprocess.run([*base, "--out", str(cut), "--resume"], capture_output=True).returncode == 0
    assert subprocess.run([*base, "--out", str(full)], capture_output=True).returncode == 0
    a, b = pd.read_parquet(cut), pd.read_parquet(full)
    assert list(a.path) == list(b.path) and len(a) == n_images
    np.testing.assert_allclose(np.stack(a.embedding[a.status == "ok"]), np.stack(b.embedding[b.status == "ok"]),
                               atol=1e-6)
    # another model's file is not resumed into
    assert main(["embed", str(folder), "--out", str(cut), "--resume", "--detector", "cnn"]) == 2
