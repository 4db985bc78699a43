"""scripts/sweep.py without training: a trial's settings become LightningCLI arguments the shipped config
accepts, Optuna's search space, the LFW development-view metrics and the report."""

import subprocess
import sys
import warnings
from argparse import Namespace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
optuna = pytest.importorskip("optuna")


@pytest.fixture(scope="module")
def sweep(script):
    return script("sweep")


def test_designed_trials_are_valid_train_arguments(sweep):
    """Every designed trial lies in the search space and its overrides parse with the acceptance config."""
    for p in sweep.DESIGNED:
        assert sweep.recorded(p) == p  # a design names every parameter its trial suggests
        trial = optuna.trial.FixedTrial(p)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # optuna warns when a value lies outside the search space
            settings = sweep.suggest(trial)
        assert settings["arch"] == p["arch"] and settings["lr"] == p["lr"]
        weight = p.get("embedding_weight", p.get("similarity_weight"))
        assert settings["identity_weight"] == weight
    dual = sweep.suggest(optuna.trial.FixedTrial(next(p for p in sweep.DESIGNED if p["arch"] == "dual")))
    args = sweep.overrides(dual)
    assert "--model.perceptual_weight=0.3" in args and "--model.retention=similarity" in args
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "fit", "--config",
                          str(REPO / "configs" / "proxy_attributes.yaml"), *args, "--print_config"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "perceptual_weight: 0.3" in res.stdout and "max_epochs: 3" in res.stdout
    # the view-invariance term brings its views; trials without it run without them
    views = sweep.suggest(optuna.trial.FixedTrial(next(p for p in sweep.DESIGNED if p.get("invariance_weight"))))
    args = sweep.overrides(views)
    assert f"--data.views={sweep.VIEWS}" in args and "--model.invariance_weight=10.0" in args
    plain = sweep.overrides(sweep.suggest(optuna.trial.FixedTrial(sweep.DESIGNED[0])))
    assert "--model.invariance_weight=0.0" in plain and not any(a.startswith("--data.views") for a in plain)
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "fit", "--config",
                          str(REPO / "configs" / "proxy_attributes.yaml"), *args, "--print_config"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "invariance_weight: 10.0" in res.stdout and "views: 2" in res.stdout
    # reference images come with their weight; trials without it run without them
    assert "--model.reference_weight=0.0" in plain and "--data.reference_images=null" in plain
    args = sweep.overrides(sweep.suggest(optuna.trial.FixedTrial(sweep.design(2.0, margin=0.2, reference=2.0))))
    assert f"--data.reference_images={sweep.REFERENCE}" in args and sweep.REFERENCE.is_file()
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "fit", "--config",
                          str(REPO / "configs" / "proxy_attributes.yaml"), *args, "--print_config"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "reference_weight: 2.0" in res.stdout and f"reference_images: {sweep.REFERENCE}" in res.stdout


def test_lfw_dev_metrics(sweep):
    """Accuracy at the dev-train threshold and TAR@FAR over all different-person pairs, on embeddings built so
    that the answer is known."""
    dev = object.__new__(sweep.LfwDev)
    names = ["A/A_1.jpg", "A/A_2.jpg", "B/B_1.jpg", "B/B_2.jpg", "C/C_1.jpg"]
    dev.names, dev.index = names, {n: i for i, n in enumerate(names)}
    dev.identity = np.array([n.split("/")[0] for n in names])
    angle = np.array([0.0, 0.1, 1.5, 1.6, 3.0])  # same person: 0.1 rad apart; different: >= 1.4 rad
    emb = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    dev.train = pd.DataFrame({"a": ["A/A_1.jpg", "A/A_1.jpg"], "b": ["A/A_2.jpg", "B/B_1.jpg"], "same": [True, False]})
    dev.test = pd.DataFrame({"a": ["B/B_1.jpg", "B/B_2.jpg"], "b": ["B/B_2.jpg", "C/C_1.jpg"], "same": [True, False]})
    m = dev.metrics(emb)
    assert m["lfw_dev_accuracy"] == 1.0 and m["lfw_dev_tar_far1e-3"] == 1.0
    assert m["lfw_dev_genuine"] == 2 and m["lfw_dev_impostors"] == 8  # 10 pairs of 5 images, 2 of them same-person
    emb[1] = [np.cos(1.0), np.sin(1.0)]  # A_2 moves towards B: its genuine pair (cos 0.54) falls below an impostor
    m = dev.metrics(emb)
    assert m["lfw_dev_tar_far1e-3"] == 0.5


def test_report_lists_trials_and_keeps_notes(sweep, tmp_path):
    out = tmp_path / "report.md"
    out.write_text("old table\n\n<!-- notes -->\nhand-written notes\n")
    base = {"val_agreement": 0.8, "val_agreement/gender": 0.7, "lfw_dev_accuracy": 0.98,
            "lfw_dev_tar_far1e-3": 0.94, "lfw_dev_impostors": 1000}
    rows = [{"number": 0, "settings": {"arch": "finetune", "lr": 3e-5, "identity_weight": 3.0},
             "val_agreement": 0.88, "val_agreement/gender": 0.79, "lfw_dev_accuracy": 0.978,
             "lfw_dev_tar_far1e-3": 0.938, "feasible": True, "fit_s": 600.0},
            {"number": 1, "settings": {"arch": "dual", "perceptual_weight": 0.3}, "val_agreement": 0.92,
             "val_agreement/gender": 0.83, "lfw_dev_accuracy": 0.917, "lfw_dev_tar_far1e-3": 0.777,
             "feasible": False, "fit_s": 626.0}]
    args = Namespace(config=REPO / "configs" / "proxy_attributes.yaml", seed=0, min_tar=0.92, max_acc_drop=0.01,
                     study_name="x", train="data/annotations/x.parquet")
    sweep.write_report(out, rows, base, args)
    text = out.read_text()
    assert "configs/proxy_attributes.yaml" in text and str(REPO) not in text
    assert "| 1 | dual | 0.300 |" in text and "| base |" in text
    assert "Best feasible trial by val agreement: **0**" in text  # trial 1 scores higher but is infeasible
    assert text.endswith("<!-- notes -->\nhand-written notes\n") and "old table" not in text


def test_command_line_rewrites_the_report_without_training(tmp_path):
    """``--n-trials 0`` parses the command line, opens (here: creates) the study and writes the report; the base
    model's measurement is read from the work folder, so nothing is trained or embedded."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "base.json").write_text('{"val_agreement": 0.8, "lfw_dev_accuracy": 0.98, "lfw_dev_tar_far1e-3": 0.94, '
                                    '"lfw_dev_impostors": 1000}')
    out = tmp_path / "report.md"
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "sweep.py"), "--n-trials", "0", "--workdir", str(work),
                          "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert "; 0 completed trials" in text and "| base |" in text and "0.800" in text
    assert "study `proxy_attributes_visible_30k`, training file `data/annotations/proxy_attributes_visible_30k" in text
    assert (work / "optuna.db").is_file()
    # the study remembers its training file: trials of another one (another val split) are refused
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "sweep.py"), "--n-trials", "0", "--workdir", str(work),
                          "--study-name", "proxy_attributes_visible_30k", "--out", str(out),
                          "--override=--data.train=data/annotations/proxy_attributes_utkface_fairface_30k.parquet"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "was made on data/annotations/proxy_attributes_visible_30k.parquet" in res.stderr


def test_study_names_follow_the_training_file(sweep):
    args = sweep.parse([])
    assert args.train == "data/annotations/proxy_attributes_visible_30k.parquet"
    assert args.study_name == "proxy_attributes_visible_30k"
    assert args.workdir == REPO / "checkpoints" / "sweep_proxy_attributes_visible_30k"
    assert args.out == REPO / "reports" / "sweep_proxy_attributes_visible_30k.md"
    other = sweep.parse(["--override=--data.train=data/annotations/proxy_attributes_utkface_fairface_30k.parquet"])
    assert other.out == REPO / "reports" / "sweep_proxy_attributes_utkface_fairface_30k.md"


def test_designed_trials_run_first_in_order_a_few_at_a_time(sweep, tmp_path, monkeypatch):
    """Each run queues only the designed trials it will take, in DESIGNED's order (a design added later is not
    stuck behind a long queue); a trial's measurement decides feasibility. Training is replaced by a stub."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "base.json").write_text('{"val_agreement": 0.8, "lfw_dev_accuracy": 0.98, "lfw_dev_tar_far1e-3": 0.94}')
    ran = []

    class Measured:  # stands in for Runner: no training, a TAR that falls with the retention weight
        def __init__(self, *args, **kwargs):
            pass

        def run(self, number, p):
            ran.append(p)
            return {"val_agreement": 0.9, "lfw_dev_accuracy": 0.98, "lfw_dev_tar_far1e-3": 0.9 + p["identity_weight"] / 100}

    monkeypatch.setattr(sweep, "Runner", Measured)
    monkeypatch.setattr(sys, "argv", ["sweep.py"])
    common = ["--workdir", str(work), "--out", str(tmp_path / "r.md"), "--study-name", "t"]
    assert sweep.main(["--n-trials", "2", *common]) == 0
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{work / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]  # nothing left waiting
    assert sweep.main(["--n-trials", "1", *common]) == 0
    designed = []
    for p in sweep.DESIGNED:
        if p not in designed:
            designed.append(p)
    weight = [p.get("embedding_weight", p.get("similarity_weight")) for p in designed[:3]]
    assert [p["identity_weight"] for p in ran] == weight
    trials = optuna.load_study(study_name="t", storage=f"sqlite:///{work / 'optuna.db'}").trials
    feasible = [t.user_attrs["feasible"] for t in trials]
    assert feasible == [w >= 2.0 for w in weight]  # TAR 0.9 + w/100 >= 0.92
    # ... and TPE sees the same through the trials' constraints (<= 0: feasible)
    assert [max(t.constraints.values()) <= 1e-12 for t in trials] == feasible
