"""`perface eval agreement|attributes|verification` end to end on real LFW / UTKFace subsets."""

import json

import pandas as pd
import pytest
from PIL import Image

from perface.cli.main import main


def _small_pairs(lfw, path, per_class: int = 20):
    """LFW pairs.txt folds 1 and 2, the first ``per_class`` same and different pairs of each."""
    lines = (lfw / "pairs.txt").read_text().splitlines()
    body = []
    for fold in (0, 1):
        start = 1 + fold * 600
        body += lines[start : start + per_class] + lines[start + 300 : start + 300 + per_class]
    path.write_text("\n".join([f"2\t{per_class}", *body]) + "\n")
    return path


@pytest.fixture(scope="module")
def pairs_file(lfw, tmp_path_factory):
    return _small_pairs(lfw, tmp_path_factory.mktemp("pairs") / "pairs.txt")


def _run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_verification_json_and_report(pairs_file, lfw, tmp_path, capsys):
    report = tmp_path / "report"
    code, out, err = _run(["eval", "verification", "--pairs", str(pairs_file), "--root", str(lfw / "images"),
                           "--json", "--report", str(report), "--no-progress"], capsys)
    assert code == 0, err
    payload = json.loads(out)
    assert payload["command"] == "verification" and payload["format"] == "lfw"
    m = payload["models"]["base"]
    for key in ("accuracy", "auc", "eer", "tar_at_far", "accuracy_std", "n", "n_total", "unusable"):
        assert key in m
    assert m["n_total"] == 80 and m["n_folds"] == 2 and len(m["accuracy_per_fold"]) == 2
    assert 76 <= m["n"] <= 80
    assert m["accuracy"] > 0.93 and m["auc"] > 0.97 and m["eer"] < 0.08
    assert set(m["tar_at_far"]) == {"1e-02", "1e-03"} and 0 < m["tar_at_far"]["1e-02"] <= 1
    assert m["unusable"]["count"] == len(m["unusable"]["files"])
    assert json.loads((report / "metrics.json").read_text()) == payload
    for png in ("roc.png", "similarity_hist_base.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (report / "report.md").read_text()
    assert "roc.png" in md and "| base |" in md and "Unusable images" in md


def test_verification_table_and_default_root(pairs_file, lfw, tmp_path, capsys):
    local = tmp_path / "pairs.txt"
    local.write_text(pairs_file.read_text())
    (tmp_path / "images").symlink_to(lfw / "images")  # the LFW layout: images/ beside pairs.txt
    code, out, err = _run(["eval", "verification", "--pairs", str(local), "--no-progress"], capsys)
    assert code == 0, err
    header, row = out.strip().splitlines()
    assert header.split()[:4] == ["model", "accuracy", "AUC", "EER"] and row.startswith("base ")


@pytest.fixture()
def triplet_root(lfw, pairs_file, tmp_path):
    """Identity triplets from the pairs' images (hard p_a = 1) plus soft ones, and one image without a face."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "lfw").symlink_to(lfw / "images")
    Image.new("RGB", (250, 250), (120, 130, 140)).save(root / "wall.png")
    lines = [ln.split() for ln in pairs_file.read_text().splitlines()[1:]]
    same = [f for f in lines if len(f) == 3]
    diff = [f for f in lines if len(f) == 4]
    path = lambda name, n: f"lfw/{name}/{name}_{int(n):04d}.jpg"  # noqa: E731
    rows = []
    for k, (s, d) in enumerate(zip(same, diff)):
        other = (d[2], d[3]) if d[2] != s[0] else (d[0], d[1])  # b: someone other than the anchor's person
        rows.append({"anchor": path(s[0], s[1]), "a": path(s[0], s[2]), "b": path(*other),
                     "p_a": 1.0 if k % 2 == 0 else 0.8, "stratum": "identity" if k % 2 == 0 else "soft"})
    rows.append({"anchor": path(same[0][0], same[0][1]), "a": "wall.png", "b": path(diff[0][2], diff[0][3]),
                 "p_a": 0.5, "stratum": "identity"})
    pd.DataFrame(rows).to_csv(root / "triplets.csv", index=False)
    return root


def test_agreement_two_models(triplet_root, tmp_path, capsys):
    from perface.model import PerFace

    twin = PerFace(head_dim=128, name="twin").save(tmp_path / "twin.pt")  # identity head: the base model again
    report = tmp_path / "report"
    code, out, err = _run(["eval", "agreement", "--triplets", str(triplet_root / "triplets.csv"), "--model", "base",
                           "--model", str(twin), "--json", "--bootstrap", "500", "--report", str(report),
                           "--no-progress"], capsys)
    assert code == 0, err
    payload = json.loads(out)
    assert list(payload["models"]) == ["base", str(twin)]
    m = payload["models"]["base"]
    assert {"agreement", "ci95", "n", "by_stratum"} <= set(m)
    triplets = pd.read_csv(triplet_root / "triplets.csv")
    bad = set(m["unusable"]["files"])
    used = triplets[~triplets[["anchor", "a", "b"]].isin(bad).any(axis=1)]
    assert "wall.png" in bad and m["unusable"]["by_status"]["no_face"] == len(bad) <= 3
    assert m["n_total"] == 41 and m["n"] == len(used) >= 37
    assert "wall.png" in err and "without a usable face" in err
    assert m["ci95"][0] <= m["agreement"] <= m["ci95"][1]
    identity = m["by_stratum"]["identity"]
    assert identity["n"] == (used["stratum"] == "identity").sum() and identity["agreement"] > 0.9
    assert 0.7 < m["by_stratum"]["soft"]["agreement"] <= 0.8 + 1e-9  # credit 0.8 at most for p_a = 0.8
    assert m["ceiling"] == pytest.approx(used["p_a"].clip(lower=1 - used["p_a"]).mean())
    (comparison,) = payload["comparisons"]
    assert comparison["baseline"] == "base" and comparison["model"] == str(twin)
    assert comparison["difference"] == 0 and comparison["ci95"] == [0.0, 0.0] and comparison["n"] == m["n"]
    assert payload["models"][str(twin)]["agreement"] == m["agreement"]
    assert (report / "agreement_by_stratum.png").is_file()
    assert "Differences (paired bootstrap)" in (report / "report.md").read_text()


def test_agreement_on_no_face_error(triplet_root, capsys):
    code, out, err = _run(["eval", "agreement", "--triplets", str(triplet_root / "triplets.csv"),
                           "--on-no-face", "error", "--no-progress"], capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "wall.png" in err and "--on-no-face" in err


def test_attributes_on_utkface(data_root, tmp_path, capsys):
    labels = pd.read_csv(data_root / "utkface" / "labels.csv", dtype=str).iloc[::25]
    labels.to_csv(tmp_path / "labels.csv", index=False)
    report = tmp_path / "report"
    code, out, err = _run(["eval", "attributes", "--labels", str(tmp_path / "labels.csv"), "--root",
                           str(data_root / "utkface"), "--on-no-face", "whole-image", "--json", "--report",
                           str(report), "--no-progress"], capsys)
    assert code == 0, err
    m = json.loads(out)["models"]["base"]
    assert m["n"] == m["n_total"] == len(labels) and m["unusable"]["count"] == 0
    assert m["gender"]["balanced_accuracy"] > 0.75 and m["gender"]["kind"] == "classification"
    assert m["race"]["accuracy"] > m["race"]["chance_majority"]
    assert m["age"]["kind"] == "regression" and m["age"]["mae"] < m["age"]["baseline_mae"]
    assert (report / "attributes.png").is_file()
    code, out, err = _run(["eval", "attributes", "--labels", str(tmp_path / "labels.csv"), "--root",
                           str(data_root / "utkface"), "--on-no-face", "whole-image", "--column", "gender",
                           "--no-progress"], capsys)
    assert code == 0 and "gender" in out and "race" not in out


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["eval"], 2, "sub-command"),
        (["eval", "verification"], 2, "--pairs"),
        (["eval", "verification", "--pairs", "/no/pairs.txt"], 1, "/no/pairs.txt"),
        (["eval", "verification", "--pairs", "{bad}", "--format", "lfw"], 1, ":1: header"),
        (["eval", "verification", "--pairs", "{csv}"], 1, "missing column"),
        (["eval", "verification", "--pairs", "{csv}", "--root", "/no/such/dir"], 2, "--root"),
        (["eval", "agreement", "--triplets", "{triplets}", "--model", "base", "--model", "base"], 2, "twice"),
        (["eval", "agreement", "--triplets", "{triplets}"], 1, "triplets.csv:2: p_a '1.5'"),
        (["eval", "agreement", "--triplets", "{ok_triplets}", "--bootstrap", "5"], 2, "--bootstrap"),
        (["eval", "agreement", "--triplets", "{ok_triplets}", "--model", "dlib_resnt"], 1, "dlib_resnet"),
        (["eval", "attributes", "--labels", "{labels}", "--column", "height"], 1, "height"),
        (["eval", "attributes", "--labels", "{labels}", "--folds", "1"], 2, "--folds"),
    ],
)
def test_errors_are_one_line(args, code, needle, tmp_path, capsys):
    files = {
        "bad": tmp_path / "bad.txt", "csv": tmp_path / "pairs.csv", "triplets": tmp_path / "triplets.csv",
        "ok_triplets": tmp_path / "ok.csv", "labels": tmp_path / "labels.csv",
    }
    files["bad"].write_text("these are not pairs\n")
    files["csv"].write_text("left,right\nx.jpg,y.jpg\n")
    files["triplets"].write_text("anchor,a,b,p_a\nx.jpg,y.jpg,z.jpg,1.5\n")
    files["ok_triplets"].write_text("anchor,a,b,p_a\nx.jpg,y.jpg,z.jpg,1\n")
    files["labels"].write_text("path,gender\nx.jpg,male\n")
    args = [a.format(**files) for a in args] + (["--no-progress"] if len(args) > 2 else [])
    got, out, err = _run(args, capsys)
    assert got == code
    assert err.startswith("perface:") and err.count("\n") == 1 and needle in err, err


def test_agreement_split_filter(tmp_path, data_root, capsys):
    import pandas as pd

    from perface.cli.main import main

    frame = pd.read_csv("data/annotations/proxy_attributes_utkface_fairface.csv")
    part = pd.concat([frame[frame.split == "test"].head(6), frame[frame.split == "train"].head(4)])
    f = tmp_path / "t.csv"
    part.to_csv(f, index=False)
    assert main(["eval", "agreement", "--triplets", str(f), "--root", str(data_root), "--split", "test",
                 "--on-no-face", "whole-image", "--json", "--no-progress", "--workers", "0"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["models"]["base"]["n"] == 6
    assert main(["eval", "agreement", "--triplets", str(f), "--root", str(data_root), "--split", "nope"]) == 2
    assert "split nope" in capsys.readouterr().err
