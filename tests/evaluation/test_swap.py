"""``perface eval swap`` / ``anonymization`` on real LFW photos: (a) "perfect identity transfer" rows whose
result is another photo of the source person, (b) "no-op" rows whose result is the target itself, (c) real
swaps made by a classical landmark face swap (perface.evaluation.classical_swap)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import perface
from perface.cli.main import main
from perface.errors import GeneratedEvalError, UsageError
from perface.evaluation import anonymization, swap
from perface.evaluation.classical_swap import face_swap
from perface.evaluation.generated_report import write_report
from perface.io.image import load_image

SOURCES = ["Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon", "Hugo_Chavez",
           "Junichiro_Koizumi", "Jean_Chretien"]
TARGETS = ["George_W_Bush", "Jacques_Chirac", "Vladimir_Putin", "Laura_Bush", "Hans_Blix", "Andre_Agassi",
           "Kofi_Annan", "Bill_Clinton"]


@pytest.fixture(scope="module")
def model():
    return perface.load("base")


@pytest.fixture(scope="module")
def rows(lfw, tmp_path_factory):
    """24 rows (kinds a, b, c), paths relative to a root folder that links LFW and holds the swaps."""
    root = tmp_path_factory.mktemp("swaps")
    (root / "lfw").symlink_to(lfw / "images")
    (root / "swaps").mkdir()
    out = []
    for i, (s, t) in enumerate(zip(SOURCES, TARGETS)):
        src, other, tgt = f"lfw/{s}/{s}_0001.jpg", f"lfw/{s}/{s}_0003.jpg", f"lfw/{t}/{t}_0002.jpg"
        result = f"swaps/swap_{i}.png"
        Image.fromarray(face_swap(load_image(root / src), load_image(root / tgt))).save(root / result)
        out += [dict(source=src, target=tgt, result=other, kind="a"), dict(source=src, target=tgt, result=tgt, kind="b"),
                dict(source=src, target=tgt, result=result, kind="c")]
    return root, pd.DataFrame(out)


@pytest.fixture(scope="module")
def report(rows, model):
    root, table = rows
    return swap.evaluate(table[["source", "target", "result"]], root=root, model=model, id_model=model, n_boot=500)


def _by_kind(report, table, key):
    r = pd.DataFrame(report.rows)
    r["kind"] = table["kind"].to_numpy()[r["row"]]
    return r.groupby("kind")[key].mean()


def test_metrics_rank_the_kinds_of_swap(report, rows):
    _, table = rows
    assert report.info["n"] == 24 and not report.unusable
    ident = _by_kind(report, table, "identity_similarity")
    assert ident["a"] > ident["c"] > ident["b"]  # identity transfer: other photo > real swap > no-op
    leak = _by_kind(report, table, "target_leakage")
    assert leak["b"] > leak["c"] > leak["a"]
    assert leak["b"] == pytest.approx(1.0, abs=1e-5)
    margin = _by_kind(report, table, "identity_margin")
    assert margin["a"] > 0 > margin["b"]
    pose = pd.DataFrame(report.rows).assign(kind=table["kind"].to_numpy())
    b = pose[pose.kind == "b"]
    assert (b[["yaw_error", "pitch_error", "roll_error"]].to_numpy() == 0).all()  # same landmarks: same pose
    assert b["expression_error"].max() < 1e-12
    assert np.allclose(b["attribute_score_100"], 100) and (b["clarity_ratio"] == 1).all()
    a = pose[pose.kind == "a"]
    assert a["yaw_error"].mean() > 5  # other photos of the source are in other poses than the targets
    assert _by_kind(report, table, "attribute_score_100")["a"] < 60
    assert _by_kind(report, table, "id_retrieval_top1")["a"] >= 7 / 8  # results of (a) retrieve their source
    assert _by_kind(report, table, "id_retrieval_top5")["a"] == 1.0


def test_summary_json_keys_and_statistics(report):
    d = json.loads(json.dumps(report.to_dict()))
    assert list(d["summary"]) == list(swap.SUMMARY_KEYS)
    for key, s in d["summary"].items():
        for stat in ([s] if key != "pose_error_deg" else [s["yaw"], s["pitch"], s["roll"]]):
            assert set(stat) >= {"mean", "std", "median", "ci95", "n"} and stat["n"] == 24
    ident = np.array([r["identity_similarity"] for r in d["rows"]])
    s = d["summary"]["identity_similarity"]
    assert s["mean"] == pytest.approx(ident.mean()) and s["median"] == pytest.approx(np.median(ident))
    assert s["ci95"][0] < s["mean"] < s["ci95"][1]
    assert d["summary"]["identity_score_100"]["mean"] == pytest.approx(100 * np.maximum(ident, 0).mean())
    assert d["unusable"] == {"count": 0, "rows": []}
    for r in d["rows"]:
        assert r["attribute_score_100"] == pytest.approx(100 * np.exp(-(np.mean(
            [r["yaw_error"], r["pitch_error"], r["roll_error"]]) / 30 + r["expression_error"] / 0.1)))


def test_unusable_rows_are_listed_with_reasons(rows, model, tmp_path):
    root, table = rows
    Image.fromarray(np.full((200, 200, 3), 127, np.uint8)).save(root / "blank.png")
    bad = pd.concat([table[["source", "target", "result"]].iloc[:3],
                     pd.DataFrame([dict(source=table.source[0], target=table.target[0], result="blank.png"),
                                   dict(source="missing.jpg", target=table.target[0], result=table.result[0])])],
                    ignore_index=True)
    rep = swap.evaluate(bad, root=root, model=model, id_model=model, n_boot=200)
    assert rep.info["n"] == 3 and rep.info["n_total"] == 5
    assert [u["row"] for u in rep.unusable] == [3, 4]
    assert "result: no face found" in rep.unusable[0]["reason"]
    assert rep.unusable[1]["reason"].startswith("source: could not read") and "no such file" in rep.unusable[1]["reason"]
    assert rep.to_dict()["unusable"]["count"] == 2
    path = write_report(rep, tmp_path / "rep")
    text = path.read_text()
    assert "row 3: result: no face found" in text
    for name in ("metrics.json", "rows.parquet", "identity.png", "attributes.png", "contact_sheet.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    assert len(pd.read_parquet(tmp_path / "rep" / "rows.parquet")) == 3


def test_cli_swap_pairs_and_folders(rows, tmp_path, capsys):
    root, table = rows
    table.iloc[:6][["source", "target", "result"]].to_csv(root / "pairs.csv", index=False)
    assert main(["eval", "swap", "--pairs", str(root / "pairs.csv"), "--json", "--bootstrap", "200"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["command"] == "swap" and d["summary"]["identity_similarity"]["n"] == 6 and len(d["rows"]) == 6
    for col in ("source", "target", "result"):  # folders matched by file name
        (tmp_path / col).mkdir()
    for i in range(3):
        for col, name in (("source", table.source[3 * i]), ("target", table.target[3 * i]),
                          ("result", table.result[3 * i + 2])):
            (tmp_path / col / f"case{i}{Path(name).suffix}").symlink_to(root / name)
    (tmp_path / "result" / "orphan.png").symlink_to(root / table.result[2])
    assert main(["eval", "swap", "--source", str(tmp_path / "source"), "--target", str(tmp_path / "target"),
                 "--result", str(tmp_path / "result"), "--bootstrap", "200"]) == 0
    out, err = capsys.readouterr()
    assert "3 of 4 rows evaluated" in out and "identity_similarity" in out
    assert "1 of 4 rows unusable" in err and "no source with this name" in err
    assert main(["eval", "swap", "--pairs", str(root / "nope.csv")]) == 1
    assert "nope.csv" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    assert main(["eval", "swap", "--pairs", str(tmp_path / "bad.csv")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing column(s) source, target, result" in err
    assert main(["eval", "swap", "--source", str(tmp_path)]) == 2
    assert "give --pairs FILE or all of --source DIR --target DIR --result DIR" in capsys.readouterr().err


def test_cli_tsv_pairs_in_a_subfolder(rows, tmp_path, capsys):
    """A tab-separated pairs file whose paths are relative to the dataset folder, not to the file's folder."""
    root, table = rows
    (root / "lists").mkdir(exist_ok=True)
    table.iloc[3:6][["source", "target", "result"]].to_csv(root / "lists" / "pairs.tsv", sep="\t", index=False)
    assert main(["eval", "swap", "--pairs", str(root / "lists" / "pairs.tsv"), "--root", str(root), "--json",
                 "--bootstrap", "100"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["n"] == 3 and d["root"] == str(root.resolve()) and d["face_options"]["detector"] == "hog+cnn"
    assert [r["result"] for r in d["rows"]] == list(table.result[3:6])


@pytest.mark.parametrize("args, message", [
    (["--pairs", "p.csv", "--source", "s"], "give --pairs or --source --target --result, not both"),
    (["--pairs", "PAIRS", "--bootstrap", "50"], "--bootstrap 50: use at least 100 resamples"),
    (["--pairs", "PAIRS", "--root", "no/such/dir"], "--root no/such/dir: not a folder"),
    (["--pairs", "PAIRS", "--face", "all"], "--face"),
])
def test_cli_swap_usage_errors_before_any_model_is_loaded(rows, args, message, capsys, monkeypatch):
    root, table = rows
    table.iloc[:1][["source", "target", "result"]].to_csv(root / "one.csv", index=False)
    monkeypatch.setattr("perface.cli.eval_generated.load_model", lambda *a, **k: pytest.fail("model loaded"))
    assert main(["eval", "swap", *[str(root / "one.csv") if a == "PAIRS" else a for a in args]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_read_rows_errors(tmp_path):
    (tmp_path / "p.csv").write_text("source,target,result\na.jpg,,c.jpg\n")
    with pytest.raises(GeneratedEvalError, match="empty path"):
        swap.evaluate(tmp_path / "p.csv")
    with pytest.raises(UsageError, match="not both"):
        swap.evaluate(tmp_path / "p.csv", folders={"source": tmp_path})


def test_anonymization_reidentification(rows, model, capsys):
    root, table = rows
    # "anonymised" by another photo of the same person (should re-identify) or by a real swap of another face
    pairs = pd.DataFrame({"original": list(table.source[table.kind == "a"]) + list(table.target[table.kind == "c"]),
                          "anonymized": list(table.result[table.kind == "a"]) + list(table.result[table.kind == "c"])})
    rep = anonymization.evaluate(pairs, root=root, model=model, id_model=model, threshold=0.92195, n_boot=200)
    d = rep.to_dict()
    assert d["summary"]["threshold"]["value"] == 0.92195 and d["summary"]["threshold"]["source"] == "given"
    for key in ("reidentification_rate", "identity_similarity", "perceptual_similarity", "expression_error",
                "attribute_score_100", "clarity_ratio"):
        assert d["summary"][key]["n"] == 16
    same = np.mean([r["reidentified"] for r in rep.rows[:8]])
    swapped = np.mean([r["reidentified"] for r in rep.rows[8:]])
    assert same >= 0.75 and same > swapped
    n_re = sum(r["reidentified"] for r in rep.rows)
    assert rep.verdict.startswith(f"{n_re} of 16 anonymised faces") and "T=0.92195" in rep.verdict
    assert d["summary"]["reidentification_rate"]["mean"] == pytest.approx(n_re / 16)
    assert all(r["reidentified"] == (r["identity_similarity"] >= 0.92195) for r in rep.rows)
    pairs.to_csv(root / "anon.csv", index=False)
    assert main(["eval", "anonymization", "--pairs", str(root / "anon.csv"), "--threshold", "0.92195",
                 "--bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == rep.verdict
