"""The whole loop: ``perface triplets sample --strategy uncertain`` -> serve -> simulated annotators following a
known rule -> ``perface annotate export`` -> ``perface triplets aggregate`` -> the expected ``p_a``; plus ``status``
and ``triplets stats`` on the export. Real UTKFace images and the real base model."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from perface.annotations.schema import read_judgments, read_triplets
from perface.campaign import CampaignConfig, campaign_status
from perface.campaign.simulate import run_annotators
from perface.cli.main import main


def test_sample_serve_export_aggregate(tmp_path, data_root, serve_thread, capsys):
    tasks = tmp_path / "tasks.csv"
    code = main(["triplets", "sample", "--images", str(data_root / "utkface" / "images"), "--root", str(data_root),
                 "--n", "10", "--strategy", "uncertain", "--model", "base", "--max-images", "30",
                 "--pool-factor", "10", "--seed", "3", "--out", str(tasks)])
    assert code == 0, capsys.readouterr().err
    sampled = pd.read_csv(tasks)
    assert len(sampled) == 10 and {"sim_a", "sim_b"} <= set(sampled.columns)
    assert (sampled["sim_a"] != sampled["sim_b"]).all()
    model_pick = {(r.anchor, r.a, r.b): (r.a if r.sim_a > r.sim_b else r.b) for r in sampled.itertuples()}
    used = set(sampled["anchor"]) | set(sampled["a"]) | set(sampled["b"])
    others = sorted(p.relative_to(data_root).as_posix() for p in (data_root / "utkface" / "images").iterdir())
    others = [p for p in others[::97] if p not in used][:9]
    gold = tmp_path / "gold.csv"
    pd.DataFrame({"anchor": others[0::3], "a": others[1::3], "b": others[2::3], "gold_choice": ["a", "b", "a"]}
                 ).to_csv(gold, index=False)
    gold_pick = {(r.anchor, r.a, r.b): getattr(r, r.gold_choice) for r in pd.read_csv(gold).itertuples()}

    db = tmp_path / "campaign.sqlite"
    cfg = CampaignConfig(tasks=tasks, root=data_root, db=db, judgments_per_triplet=3, gold=gold, gold_rate=0.5,
                         catch_rate=0.2, per_annotator=40)
    with serve_thread(cfg) as server:
        paths = {f"/img/{i}": p for i, p in server.campaign.store.query("SELECT id, path FROM images")}

        def choose(name: str, a: dict) -> str:
            """Two annotators follow the model's similarity, one picks the other face; all pass catch and gold."""
            anchor, left, right = paths[a["anchor"]], paths[a["left"]], paths[a["right"]]
            if anchor in (left, right):
                return "left" if left == anchor else "right"
            for (ta, x, y), pick in list(gold_pick.items()) + list(model_pick.items()):
                if ta == anchor and {x, y} == {left, right}:
                    if name == "contrarian" and (ta, x, y) in model_pick:
                        pick = y if pick == x else x
                    return "left" if left == pick else "right"
            raise AssertionError(f"unknown triplet {anchor} {left} {right}")

        result = run_annotators(server.url, ["model-1", "model-2", "contrarian"], choose, fetch_images=False,
                                time_limit_s=60)
    assert not result.errors and not result.refused and len(result.completed) == 3

    out = tmp_path / "judgments.csv"
    assert main(["annotate", "export", "--db", str(db), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "judgments_catch.csv" in printed and "catch-trial judgments" in printed
    judgments = read_judgments(out)
    assert set(judgments["source"]) == {"perface-annotate"}
    n_gold = int(judgments["is_gold"].sum())
    assert len(judgments) == 30 + n_gold and n_gold >= 1  # every triplet judged by all three annotators
    assert (judgments.loc[judgments["is_gold"], "choice"] == judgments.loc[judgments["is_gold"], "gold_choice"]).all()

    tri_path = tmp_path / "triplets.csv"
    assert main(["triplets", "aggregate", str(out), "--out", str(tri_path)]) == 0
    capsys.readouterr()
    tri = read_triplets(tri_path)
    by_key = {(r.anchor, r.a, r.b): r for r in tri.itertuples()}
    for (anchor, a, b), pick in model_pick.items():
        row = by_key[(anchor, a, b)]  # orientation of the task file is kept
        assert (row.n_a, row.n_b) == ((2, 1) if pick == a else (1, 2))
        assert row.p_a == pytest.approx(2 / 3 if pick == a else 1 / 3)
    for (anchor, a, b), pick in gold_pick.items():
        if (anchor, a, b) in by_key:
            assert by_key[(anchor, a, b)].p_a == (1.0 if pick == a else 0.0)

    assert main(["triplets", "stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats  # the export is a judgments file the stats command reads unchanged

    status = campaign_status(db)
    assert status["flagged"] == [] and status["triplets"]["complete"] == 10
    for a in status["annotators"]:
        assert a["catch_accuracy"] == 1.0 and a["n_catch"] >= 1
        assert a["completed"] and a["completion_code"] == result.completed[a["annotator_id"]]
        if a["n_gold"]:
            assert a["gold_accuracy"] == 1.0
    assert main(["annotate", "status", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "flagged 0" in text and "catch accuracy <" in text and "complete 10" in text
