"""`perface gallery build|info` and `perface select` on LFW: JSON keys, --summary, --report DIR, determinism,
one-line errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from perface.cli.main import main

N_IDS = 40


@pytest.fixture(scope="module")
def lfw_people(lfw):
    people = sorted(os.listdir(lfw / "images"))
    return [p for p in people if len(os.listdir(lfw / "images" / p)) >= 3][:N_IDS]


@pytest.fixture(scope="module")
def built(lfw, lfw_people, tmp_path_factory):
    """A gallery of images 1 and 2 of 40 LFW identities, threshold measured on a pairs CSV over those images."""
    tmp = tmp_path_factory.mktemp("select_cli")
    images = [str(lfw / "images" / p / f"{p}_000{k}.jpg") for p in lfw_people for k in (1, 2)]
    owner = np.repeat(np.arange(N_IDS), 2)
    a, b = np.triu_indices(len(images), 1)
    pairs = pd.DataFrame({"a": [images[i] for i in a], "b": [images[j] for j in b],
                          "same": (owner[a] == owner[b]).astype(int)})
    pairs.to_csv(tmp / "pairs.csv", index=False)
    out = tmp / "gallery.parquet"
    code = main(["gallery", "build", *images, "--out", str(out), "--labels", str(lfw / "gender.csv"),
                 "--pairs", str(tmp / "pairs.csv"), "--pairs-root", "/", "--no-progress", "--workers", "0"])
    assert code == 0
    return {"gallery": out, "tmp": tmp, "images": images}


def _json(capsys, args):
    assert main(args) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_build_and_info(built, capsys):
    info = _json(capsys, ["gallery", "info", str(built["gallery"]), "--json"])
    assert info["identities"] == N_IDS and info["images_used"] == 2 * N_IDS and info["images_left_out"] == 0
    assert info["perceptual_model"]["source"] == "base" and info["identity_model"]["name"] == "base"
    assert set(info["attributes"]["gender"]) == {"male", "female"}
    t = info["reid_threshold"]
    assert t["far"] == 1e-3 and t["source"].endswith("pairs.csv") and 0.85 < t["value"] < 0.97
    assert info["band"]["lo"] < info["band"]["hi"] and info["band"]["levels"] == [0.9, 0.99]
    assert main(["gallery", "info", str(built["gallery"])]) == 0
    text = capsys.readouterr().out
    assert "identities       40" in text and "T=" in text and "default band" in text


def test_select_json_keys_and_constraints(built, lfw, lfw_people, capsys):
    target = str(lfw / "images" / lfw_people[0] / f"{lfw_people[0]}_0003.jpg")
    out = _json(capsys, ["select", target, "--gallery", str(built["gallery"]), "--json", "--top", "5",
                         "--same", "gender", "--labels", str(lfw / "gender.csv"), "--band", "0.80:0.95"])
    assert set(out) >= {"candidates", "excluded", "qualified", "band", "max_identity_sim", "target_identity"}
    assert set(out["excluded"]) == {"same_identity", "below_band", "above_band", "identity_similarity", "attributes"}
    assert out["excluded"]["same_identity"] == 1 and out["target_identity"] == lfw_people[0]
    assert sum(out["excluded"].values()) + out["qualified"] == N_IDS
    assert out["candidates"], out
    gender = out["target_attributes"]["gender"]
    for c in out["candidates"]:
        assert {"identity", "perceptual_similarity", "identity_similarity", "attributes"} <= set(c)
        assert 0.80 <= c["perceptual_similarity"] <= 0.95
        assert c["identity_similarity"] < out["max_identity_sim"]
        assert c["attributes"]["gender"] == gender and c["identity"] != lfw_people[0]
    again = _json(capsys, ["select", target, "--gallery", str(built["gallery"]), "--json", "--top", "5",
                           "--same", "gender", "--labels", str(lfw / "gender.csv"), "--band", "0.80:0.95"])
    assert again == out  # deterministic


def test_select_text_output(built, lfw, lfw_people, capsys):
    target = str(lfw / "images" / lfw_people[0] / f"{lfw_people[0]}_0003.jpg")
    assert main(["select", target, "--gallery", str(built["gallery"]), "--top", "3", "--target-attr", "gender=male",
                 "--same", "gender", "--max-identity-sim", "0.9"]) == 0
    text = capsys.readouterr().out
    assert "threshold T=0.90000 (given)" in text and "same      gender=male" in text and "excluded:" in text


def test_report_over_many_targets(built, lfw, lfw_people, capsys):
    folder = built["tmp"] / "targets"
    for p in lfw_people[:15]:
        (folder / p).mkdir(parents=True, exist_ok=True)
        (folder / p / f"{p}_0003.jpg").write_bytes((lfw / "images" / p / f"{p}_0003.jpg").read_bytes())
    from PIL import Image

    Image.new("RGB", (250, 250), "white").save(folder / "wall.png")
    r = _json(capsys, ["select", str(folder), "--gallery", str(built["gallery"]), "--summary", "--json", "--top", "3"])
    assert r["n_targets"] == 16 and r["n_usable"] == 16 - r["unusable"]["count"] >= 13
    assert any(f.endswith("wall.png") for f in r["unusable"]["files"]) and r["unusable"]["by_status"]["no_face"] >= 1
    assert r["confusion"]["confused"] == 0 and r["confusion"]["share"] == 0.0
    assert r["own_identity_selected"] == 0
    assert 0 <= r["no_candidate"]["rate"] <= 1
    assert r["no_candidate"]["count"] == sum(1 for t in r["per_target"] if t["candidates"] == 0)
    sp = r["selected_perceptual_similarity"]
    if sp["n"]:
        assert r["band"]["lo"] <= sp["min"] <= sp["max"] <= r["band"]["hi"]
    assert main(["select", str(folder), "--gallery", str(built["gallery"]), "--summary", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "confused with target    0 (0.00%)" in text and "no candidate" in text
    # --same: a target whose gender nobody knows (not in the gallery, no label file) is counted, not selected
    (folder / "stranger").mkdir(exist_ok=True)
    (folder / "stranger" / "x.jpg").write_bytes((lfw / "images" / "Zico" / "Zico_0001.jpg").read_bytes())
    g = _json(capsys, ["select", str(folder), "--gallery", str(built["gallery"]), "--summary", "--json",
                       "--same", "gender"])
    assert g["unusable"]["by_status"]["attribute_unknown"] == 1 and g["n_usable"] == r["n_usable"]
    assert g["confusion"]["confused"] == 0 and g["same"] == ["gender"]

    # --report DIR: the same summary in metrics.json, every target in selections.parquet, report.md and a plot
    out = built["tmp"] / "report"
    rep = _json(capsys, ["select", str(folder), "--gallery", str(built["gallery"]), "--report", str(out), "--json",
                         "--same", "gender"])
    assert rep == json.loads((out / "metrics.json").read_text())
    assert rep == g
    table = pd.read_parquet(out / "selections.parquet")
    ok = table[table["status"] == "ok"]
    assert len(ok) == rep["n_selections"] and table["target"].nunique() == rep["n_targets"]
    assert (table["status"] == "no_candidate").sum() == rep["no_candidate"]["count"]
    assert table.loc[table["status"] == "attribute_unknown", "target"].str.endswith("stranger/x.jpg").tolist() == [True]
    assert (ok["identity_similarity"] < rep["threshold"]["value"]).all()
    assert ok["perceptual_similarity"].between(rep["band"]["lo"], rep["band"]["hi"]).all()
    assert (ok["candidate_gender"].notna()).all() and (ok["identity"] != ok["target_identity"]).all()
    assert all(list(r) == list(range(1, len(r) + 1)) for _, r in ok.groupby("target")["rank"])
    md = (out / "report.md").read_text()
    assert md.startswith("# perface select") and "confused with target    0 (0.00%)" in md
    assert "selected_similarity.png" in md and (out / "selected_similarity.png").stat().st_size > 10_000
    assert "wall.png: no_face" in md


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["select", "{target}", "--gallery", "{tmp}/missing.parquet"], 1, "missing.parquet"),
        (["select", "{target}", "--gallery", "{tmp}/pairs.csv"], 1, "not a readable Parquet"),
        (["select", "{target}", "--gallery", "{gallery}", "--band", "0.9"], 2, "LO:HI"),
        (["select", "{target}", "--gallery", "{gallery}", "--band", "0.9:0.8"], 2, "band"),
        (["select", "{target}", "--gallery", "{gallery}", "--same", "race"], 2, "its attributes: gender"),
        (["select", "{target}", "--gallery", "{gallery}", "--top", "0"], 2, "--top"),
        (["select", "{target}", "--gallery", "{gallery}", "--max-identity-sim", "2"], 2, "[-1, 1]"),
        (["select", "{target}", "{target}", "--gallery", "{gallery}"], 2, "--report"),
        (["select", "{tmp}/nope.jpg", "--gallery", "{gallery}"], 1, "nope.jpg"),
        (["select", "{tmp}/wall.png", "--gallery", "{gallery}"], 1, "no face"),
        (["select", "{target}", "--gallery", "{gallery}", "--target-attr", "gender"], 2, "KEY=VALUE"),
        (["select", "{tmp}/wall_dir", "--gallery", "{gallery}"], 2, "folder"),
        (["select", "{target}", "--gallery", "{gallery}", "--model", "{tmp}/head.pt"], 1,
         "built with perceptual model"),
        (["select", "{target}", "--gallery", "{gallery}", "--same", "gender", "--target-identity", ""], 1,
         "--target-attr gender=VALUE"),
        (["gallery", "build", "{target}", "--out", "{tmp}/g.csv"], 2, ".parquet"),
        (["gallery", "build", "{tmp}/wall_dir", "--out", "{tmp}/g.parquet"], 2, "no image files"),
        (["gallery", "build", "{tmp}/wall.png", "--out", "{tmp}/g.parquet", "--max-identity-sim", "0.9"], 1,
         "none of the 1 images has a usable face"),
        (["gallery", "build", "{target}", "--out", "{tmp}/g.parquet", "--far", "0"], 2, "--far"),
        (["gallery"], 2, "build or info"),
    ],
)
def test_errors_are_one_line(built, lfw, lfw_people, args, code, needle, capsys):
    from PIL import Image

    tmp = built["tmp"]
    Image.new("RGB", (250, 250), "white").save(tmp / "wall.png")
    (tmp / "wall_dir").mkdir(exist_ok=True)
    if not (tmp / "head.pt").exists():
        import torch

        from perface.model import PerFace

        torch.manual_seed(0)
        PerFace(head_dim=32, name="head").save(tmp / "head.pt")
    target = str(lfw / "images" / lfw_people[0] / f"{lfw_people[0]}_0003.jpg")
    args = [a.format(target=target, tmp=tmp, gallery=built["gallery"]) for a in args]
    assert main(args) == code
    err = capsys.readouterr().err
    assert err.startswith("perface:") and err.count("\n") == 1 and needle in err, err
