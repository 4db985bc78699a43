"""``perface ingest`` and ``perface triplets ...`` end to end through ``perface.cli.main.main``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from perface.annotations.aggregate import aggregate_file
from perface.annotations.ingest import ingest_folder
from perface.annotations.schema import read_judgments, read_triplets
from perface.annotations.split import check_disjoint, split_file
from perface.annotations.stats import file_stats, format_stats
from perface.cli.main import main
from perface.errors import AnnotationError, SettingsError

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs" / "triplets").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _data_env(monkeypatch, data_root):
    monkeypatch.setenv("PERFACE_DATA", str(data_root))


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("perface:"), err
    return lines[0]


def _export(tmp_path, faces) -> Path:
    f = faces
    rows = ["query,left,right,answer,worker"]
    for w, picks in {"w1": "LLRL", "w2": "LLRR", "w3": "RLRL", "w4": "RRLR"}.items():
        for (q, a, b), pick in zip([(0, 1, 2), (0, 2, 3), (4, 5, 6), (7, 8, 9)], picks):
            rows.append(f"{f[q]},{f[a]},{f[b]},{'left' if pick == 'L' else 'right'},{w}")
    rows += [f"{f[0]},{f[1]},faces/missing.jpg,left,w5", f"{f[0]},{f[0]},{f[1]},left,w5", "broken,row"]
    path = tmp_path / "export.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_ingest_stats_aggregate(face_root, tmp_path, capsys):
    root, faces = face_root
    export = _export(tmp_path, faces)
    out = tmp_path / "ingested"
    argv = ["ingest", "--format", "generic", str(export), "--root", str(root), "--out", str(out),
            "--map", "anchor=query,a=left,b=right", "--map", "choice=answer,annotator_id=worker",
            "--choice-map", "left=a,right=b"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "read 19  accepted 16  rejected 3" in text
    assert "missing-image  1" in text and "same-image     1" in text and "malformed-row  1" in text
    j = read_judgments(out / "judgments.csv")
    assert len(j) == 16
    t = read_triplets(out / "triplets.csv")
    assert len(t) == 4 and (t["n_a"] + t["n_b"]).tolist() == [4, 4, 4, 4]
    assert t["n_a"].tolist() == [2, 3, 1, 2]     # votes per triplet: LLRR, LLLR, RRRL, LRLR
    assert len(pd.read_csv(out / "rejects.csv")) == 3
    assert json.loads((out / "ingest_summary.json").read_text())["accepted"] == 16

    assert main(["triplets", "stats", str(out / "judgments.csv")]) == 0
    text = capsys.readouterr().out
    assert "judgments 16  annotators 4  triplets 4" in text and "Krippendorff's alpha" in text and "w4" in text
    assert main(["triplets", "stats", "--json", str(out / "triplets.csv")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "triplets" and info["triplets"] == 4 and info["images"]["images"] == 10

    assert main(["triplets", "aggregate", str(out / "judgments.csv"), "--out", str(tmp_path / "t.csv"),
                 "--min-agreement", "0.5", "--min-compared", "1"]) == 0
    text = capsys.readouterr().out
    assert "dropped" in text and "w4" in text
    assert len(read_triplets(tmp_path / "t.csv")) == 4

    # the library calls behind the commands
    info = file_stats(out / "judgments.csv")
    text = json.dumps(info)                                      # plain JSON types, no default= needed
    assert json.dumps(json.loads(text)) == text and '"gold_accuracy": NaN' in text
    assert [a["annotator_id"] for a in info["per_annotator"]] == ["w1", "w2", "w3", "w4"]
    text = format_stats(info, top=2)
    assert "annotators (2 of 4)" in text and "w4" not in text.split("annotators (2 of 4)")[1]
    run = aggregate_file(out / "judgments.csv", tmp_path / "t2.parquet", min_agreement=0.5, min_compared=1)
    assert run.to_dict()["dropped_annotators"] == [{"annotator_id": "w4", "reason": "loo_agreement < 0.5"}]
    assert run.dropped_path == tmp_path / "t2_dropped_annotators.csv" and run.dropped_path.is_file()
    with pytest.raises(AnnotationError, match="no judgments left"):
        aggregate_file(out / "judgments.csv", tmp_path / "t3.csv", min_gold_accuracy=0.5, min_agreement=1.0,
                       min_compared=0)
    with pytest.raises(SettingsError, match=r"--min-agreement must be between 0 and 1 \(got 1.5\)"):
        aggregate_file(out / "judgments.csv", tmp_path / "t3.csv", min_agreement=1.5)
    assert main(["triplets", "aggregate", str(out / "judgments.csv"), "--out", str(tmp_path / "t3.csv"),
                 "--min-gold-accuracy", "-1"]) == 2
    assert "--min-gold-accuracy must be between 0 and 1" in _one_line_error(capsys.readouterr().err)
    with pytest.raises(SettingsError, match="--choice-map values must be a or b"):
        ingest_folder([export], "generic", tmp_path / "x", root=root, choice_map={"left": "l"})
    assert not (tmp_path / "x").exists()                         # checked before anything is written

    # thresholds during ingest leave the dropped annotator's judgments out of triplets.csv
    assert main(argv + ["--min-agreement", "0.5", "--min-compared", "1", "--out", str(tmp_path / "strict")]) == 0
    assert (read_triplets(tmp_path / "strict" / "triplets.csv")[["n_a", "n_b"]].sum().sum()) < 16
    assert (tmp_path / "strict" / "dropped_annotators.csv").is_file()


def test_ingest_errors(face_root, tmp_path, capsys):
    root, faces = face_root
    bad = tmp_path / "ooo.json"
    bad.write_text('{"0": {"triplet_questions": [[1, 2, 3]],\n "odd_one_out_positions": [0}')
    assert main(["ingest", "--format", "avfs", str(bad), "--root", str(root), "--out", str(tmp_path / "o")]) == 1
    line = _one_line_error(capsys.readouterr().err)
    assert f"{bad}:2: not valid JSON" in line
    # nothing accepted: exit 1, but the rejects are written
    only_bad = tmp_path / "bad.csv"
    only_bad.write_text(f"anchor,a,b,choice,annotator_id\n{faces[0]},{faces[1]},x.jpg,a,w\n")
    assert main(["ingest", "-f", "generic", str(only_bad), "--root", str(root), "--out", str(tmp_path / "o2")]) == 1
    assert "no answer accepted" in _one_line_error(capsys.readouterr().err)
    assert len(pd.read_csv(tmp_path / "o2" / "rejects.csv")) == 1
    # usage errors: exit 2
    assert main(["ingest", str(only_bad), "--out", str(tmp_path / "o3")]) == 2
    assert "--format" in _one_line_error(capsys.readouterr().err)
    assert main(["ingest", "-f", "generic", str(only_bad), "--out", str(tmp_path / "o3"), "--map", "anchor"]) == 2
    assert "NAME=VALUE" in _one_line_error(capsys.readouterr().err)
    assert main(["ingest", "-f", "generic", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o4")]) == 1
    assert "none.csv" in _one_line_error(capsys.readouterr().err)


def test_split_and_sample(data_root, tmp_path, capsys):
    tri_path = tmp_path / "lfw.csv"
    assert main(["triplets", "from-labels", "--kind", "identity", "--labels", "lfw/gender.csv", "--n", "600",
                 "--out", str(tri_path)]) == 0
    capsys.readouterr()
    out = tmp_path / "split.csv"
    assert main(["triplets", "split", str(tri_path), "--out", str(out), "--identities", "lfw/gender.csv",
                 "--seed", "3", "--dropped", str(tmp_path / "dropped.csv")]) == 0
    text = capsys.readouterr().out
    assert "dropped" in text and "identities:" in text
    split = read_triplets(out)
    labels = pd.read_csv(data_root / "lfw" / "gender.csv")
    identities = dict(zip("lfw/" + labels["path"], labels["identity"]))
    assert check_disjoint(split, identities) == []
    assert main(["triplets", "split", str(tri_path), "--out", str(out), "--fractions", "1,2"]) == 2
    assert "three" in _one_line_error(capsys.readouterr().err)
    run = split_file(tri_path, tmp_path / "again.csv", seed=3, identities="lfw/gender.csv")
    assert run.by_identity and run.counts["total"] == 600
    assert run.counts["dropped"] + sum(run.counts[k] for k in ("train", "val", "test")) == 600
    assert read_triplets(tmp_path / "again.csv").equals(split)   # the command is this one call
    with pytest.raises(SettingsError, match="has no 'person' column"):
        split_file(tri_path, tmp_path / "x.csv", identities="lfw/gender.csv", identity_column="person")

    tasks = tmp_path / "tasks.json"
    assert main(["triplets", "sample", "--images", str(data_root / "fairface" / "images"), "--n", "50",
                 "--strategy", "stratified", "--labels", "fairface/labels.csv", "--attributes", "gender,age",
                 "--out", str(tmp_path / "s.csv"), "--label-studio", str(tasks)]) == 0
    s = pd.read_csv(tmp_path / "s.csv")
    assert len(s) == 50 and s["anchor"].str.startswith("fairface/images/").all()
    assert all((data_root / p).is_file() for p in s["a"])
    assert len(json.loads(tasks.read_text())) == 50
    assert main(["triplets", "sample", "--images", str(data_root / "fairface" / "images"), "--n", "5",
                 "--strategy", "uncertain", "--out", str(tmp_path / "u.csv")]) == 2
    assert "--model" in _one_line_error(capsys.readouterr().err)


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_from_labels_configs(config, data_root, tmp_path, capsys):
    out = tmp_path / "proxy.csv"
    assert main(["triplets", "from-labels", "--config", str(config), "--n", "300", "--out", str(out)]) == 0
    assert "made 300 of 300" in capsys.readouterr().out
    tri = read_triplets(out)
    assert len(tri) == 300 and tri["source"].str.startswith("proxy-").all()
    assert tri["split"].isin(["train", "val", "test"]).all() and check_disjoint(tri) == []
    for col in ("anchor", "a", "b"):
        assert all((data_root / p).is_file() for p in tri[col])


def test_from_labels_and_labeling_config_errors(tmp_path, capsys):
    assert main(["triplets", "from-labels", "--labels", "fairface/labels.csv", "--out", str(tmp_path / "x.csv")]) == 2
    assert "--kind" in _one_line_error(capsys.readouterr().err)
    assert main(["triplets", "from-labels", "--kind", "attribute", "--labels", "nowhere/labels.csv",
                 "--out", str(tmp_path / "x.csv")]) == 1
    assert "nowhere/labels.csv" in _one_line_error(capsys.readouterr().err)
    assert main(["triplets", "from-labels", "--kind", "attribute", "--labels", "fairface/labels.csv",
                 "--attributes", "race", "--out", str(tmp_path / "x.csv")]) == 2
    assert "no race" in _one_line_error(capsys.readouterr().err)
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: attribute\nsources: [\n")
    assert main(["triplets", "from-labels", "--config", str(bad)]) == 1
    assert f"{bad}:" in _one_line_error(capsys.readouterr().err)
    assert main(["triplets", "stats", str(tmp_path / "missing.csv")]) == 1
    assert "missing.csv" in _one_line_error(capsys.readouterr().err)
    assert main(["triplets"]) == 2
    capsys.readouterr()
    assert main(["triplets", "labeling-config"]) == 0
    assert '<Choices name="choice"' in capsys.readouterr().out
