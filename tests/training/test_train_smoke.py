"""Smoke training with configs/smoke.yaml through scripts/train.py (LightningCLI), on real proxy triplets."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_root, script):
    out = tmp_path_factory.mktemp("smoke")
    main = script("train").main
    common = ["--config", str(REPO / "configs" / "smoke.yaml"), f"--data.root={data_root}",
              f"--trainer.logger.init_args.save_dir={out}"]
    cli = main(["validate", *common])
    before = float(cli.trainer.callback_metrics["val_agreement"])
    cli = main(["fit", *common])
    return out, before, cli


def test_training_lowers_loss_and_raises_val_agreement(run):
    out, before, cli = run
    metrics = pd.read_csv(Path(cli.trainer.logger.log_dir) / "metrics.csv")
    loss = metrics["train_loss_epoch"].dropna().to_numpy()
    agreement = metrics["val_agreement"].dropna().to_numpy()
    assert len(loss) == 3 and loss[-1] < loss[0]
    assert agreement.max() > before


def test_val_agreement_is_logged_per_stratum(run):
    """val_agreement/<stratum> for every stratum of the val split; weighted by their triplet counts they give
    the overall val_agreement of the same epoch."""
    _, _, cli = run
    dm, metrics = cli.datamodule, cli.trainer.callback_metrics
    codes = dm.val_set.strata
    assert dm.strata and codes is not None and (codes >= 0).all()
    counts = np.bincount(codes, minlength=len(dm.strata))
    logged = {name: float(metrics[f"val_agreement/{name}"]) for name, n in zip(dm.strata, counts) if n}
    assert len(logged) >= 3 and all(0 <= v <= 1 for v in logged.values())
    weighted = sum(logged[name] * n for name, n in zip(dm.strata, counts) if n) / counts.sum()
    assert weighted == pytest.approx(float(metrics["val_agreement"]), abs=1e-5)


def test_checkpoint_loads_without_lightning_and_scores(run, lfw):
    out, _, cli = run
    best = Path(cli.trainer.checkpoint_callback.best_model_path)
    assert best.name == "best.ckpt" and (best.parent.parent / "config.yaml").is_file()
    code = ("import sys, json, perface; m = perface.load(sys.argv[1]); "
            "print(json.dumps([m.name, m.preprocessing.to_dict(), m.face_options.to_dict(), 'lightning' in sys.modules]))")
    name, prep, faces, lightning_loaded = json.loads(subprocess.run([sys.executable, "-c", code, str(best)], check=True,
                                                                    capture_output=True, text=True).stdout)
    assert name == "perface-smoke" and prep["size"] == 150 and not lightning_loaded
    # the checkpoint records the chip settings it was trained on (configs/smoke.yaml's data section)
    assert faces == {"detector": "hog", "upsample": 0, "max_side": 1024, "face": "largest", "on_no_face": "whole-image"}
    a = lfw / "images/Aaron_Peirsol/Aaron_Peirsol_0001.jpg"
    b = lfw / "images/Aaron_Peirsol/Aaron_Peirsol_0002.jpg"
    res = subprocess.run([sys.executable, "-m", "perface", "score", "--model", str(best), str(a), str(b)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert -1 <= float(res.stdout) <= 1
    # the trained weights are the ones loaded: they differ from the base model's
    import perface

    tuned, base = perface.load(best), perface.load("base")
    assert not np.allclose(tuned.embed([a]), base.embed([a]), atol=1e-4)


def test_resume_from_checkpoint(run, data_root, script):
    out, _, cli = run
    last = Path(cli.trainer.checkpoint_callback.last_model_path)
    main = script("train").main
    resumed = main(["fit", "--config", str(REPO / "configs" / "smoke.yaml"), f"--data.root={data_root}",
                    f"--trainer.logger.init_args.save_dir={out}", "--trainer.max_epochs=4", f"--ckpt_path={last}"])
    assert resumed.trainer.current_epoch == 4 and resumed.trainer.global_step > cli.trainer.global_step


def test_print_config():
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "fit", "--config",
                          str(REPO / "configs" / "smoke.yaml"), "--print_config"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "trainable_stages: 1" in res.stdout and "max_train: 96" in res.stdout


@pytest.mark.parametrize("name", ["proxy_attributes", "perface_dlib", "perface_arcface_r50"])
def test_shipped_configs_parse(name):
    """Every shipped recipe is a valid LightningCLI config (keys the module and data module know)."""
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "fit", "--config",
                          str(REPO / "configs" / f"{name}.yaml"), "--print_config"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "retention:" in res.stdout and "identity_weight:" in res.stdout


def test_wandb_logger_offline(tmp_path, data_root, monkeypatch, script):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    main = script("train").main
    cli = main(["fit", "--config", str(REPO / "configs" / "smoke.yaml"), f"--data.root={data_root}",
                "--trainer.max_epochs=1", "--trainer.logger=lightning.pytorch.loggers.WandbLogger",
                f"--trainer.logger.init_args.save_dir={tmp_path}", "--trainer.logger.init_args.offline=true",
                "--trainer.logger.init_args.project=perface-test"])
    assert type(cli.trainer.logger).__name__ == "WandbLogger"
    runs = list(tmp_path.rglob("offline-run-*"))
    assert runs, "no offline wandb run written"
    assert Path(cli.trainer.checkpoint_callback.best_model_path).is_file()


def test_identity_retention_term(tmp_path, data_root, script):
    main = script("train").main
    cli = main(["fit", "--config", str(REPO / "configs" / "smoke.yaml"), f"--data.root={data_root}",
                "--trainer.max_epochs=1", f"--trainer.logger.init_args.save_dir={tmp_path}",
                "--model.identity_weight=1.0", "--model.lr=1.0e-4"])
    metrics = pd.read_csv(Path(cli.trainer.logger.log_dir) / "metrics.csv")
    steps = metrics["train_retention_step"].dropna().to_numpy()
    assert steps[0] < 1e-5  # before the first update the model is the base model: same embeddings, same order
    retention = metrics["train_retention_epoch"].dropna().to_numpy()
    assert len(retention) == 1 and 0 < retention[0] < 0.5  # embeddings moved, but stayed near the base model's
    # the frozen copy of the base model is not part of the saved PerFace model
    import perface

    loaded = perface.load(cli.trainer.checkpoint_callback.best_model_path, engine="torch")
    assert sum(p.numel() for p in loaded.parameters()) == 5_614_592


def test_view_invariance_term(tmp_path, data_root, script):
    main = script("train").main
    cli = main(["fit", "--config", str(REPO / "configs" / "smoke.yaml"), f"--data.root={data_root}",
                "--trainer.max_epochs=1", f"--trainer.logger.init_args.save_dir={tmp_path}", "--data.augment=0",
                "--data.views=2", "--model.invariance_weight=10", "--model.lr=1.0e-4"])
    metrics = pd.read_csv(Path(cli.trainer.logger.log_dir) / "metrics.csv")
    steps = metrics["train_invariance_step"].dropna().to_numpy()
    assert steps[0] == 0  # before the first update the model is the base model: nothing lost
    epoch = metrics["train_invariance_epoch"].dropna().to_numpy()
    assert len(epoch) == 1 and 0 <= epoch[0] < 0.05
    # the views' frozen features are cached under their own keys, beside the images' (no augmentation per step)
    from perface.training.triplet_dataset import VIEW_STRIDE

    keys = list(cli.model._features)
    assert any(k >= VIEW_STRIDE for k in keys) and any(0 <= k < VIEW_STRIDE for k in keys)


def test_reference_retention_term(tmp_path, data_root, script):
    listed = (REPO / "data" / "reference" / "lfw_outside_protocols.txt").read_text().splitlines()
    reference = tmp_path / "reference.txt"
    reference.write_text("\n".join([ln for ln in listed if not ln.startswith("#")][:12]) + "\n")
    main = script("train").main
    cli = main(["fit", "--config", str(REPO / "configs" / "smoke.yaml"), f"--data.root={data_root}",
                "--trainer.max_epochs=1", f"--trainer.logger.init_args.save_dir={tmp_path}", "--data.augment=0",
                f"--data.reference_images={reference}", "--model.reference_weight=5", "--model.reference_batch=3",
                "--model.lr=1.0e-4"])
    metrics = pd.read_csv(Path(cli.trainer.logger.log_dir) / "metrics.csv")
    steps = metrics["train_reference_retention_step"].dropna().to_numpy()
    assert steps[0] == pytest.approx(0, abs=1e-6)  # before the first update the model is the base model
    epoch = metrics["train_reference_retention_epoch"].dropna().to_numpy()
    assert len(epoch) == 1 and 0 < epoch[0] < 0.05  # the photos drift once training moves, and are held near
    # their frozen features are cached under the reference keys, beside the training images'
    from perface.training.triplet_dataset import REFERENCE_START

    keys = list(cli.model._features)
    reference = [k for k in keys if REFERENCE_START <= k < REFERENCE_START + 12]
    assert reference and any(k >= 0 for k in keys)
    assert len(reference) <= 3 * 3  # reference_batch: at most 3 of each step's (3 steps of 32 triplets) are used


def test_reference_images_without_their_weight_are_a_settings_error(tmp_path, data_root, script):
    from perface.errors import SettingsError

    listed = (REPO / "data" / "reference" / "lfw_outside_protocols.txt").read_text().splitlines()
    reference = tmp_path / "reference.txt"
    reference.write_text("\n".join([ln for ln in listed if not ln.startswith("#")][:2]) + "\n")
    with pytest.raises(SettingsError, match="data.reference_images is set but model.reference_weight is 0"):
        script("train").main(["fit", "--config", str(REPO / "configs" / "smoke.yaml"), f"--data.root={data_root}",
                              "--trainer.max_epochs=1", f"--trainer.logger.init_args.save_dir={tmp_path}",
                              f"--data.reference_images={reference}", "--model.reference_weight=0"])


@pytest.mark.parametrize("option, needle", [
    ("--model.reference_weight=1", "model.reference_weight needs reference images: set data.reference_images"),
    ("--model.invariance_weight=1", "model.invariance_weight needs augmented views of the training images: set data.views"),
    ("--data.face=centre", "face 'centre' is not a valid choice; use largest, center"),
    ("--data.detector=hog+haar", "detector 'hog+haar' is not known; use one of hog, cnn, hog+cnn"),
])
def test_bad_settings_are_one_line_errors(option, needle, tmp_path, data_root):
    args = [sys.executable, str(REPO / "scripts" / "train.py"), "fit", "--config", str(REPO / "configs" / "smoke.yaml"),
            f"--data.root={data_root}", f"--trainer.logger.init_args.save_dir={tmp_path}", option]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2  # a SettingsError: exit code 2, as the perface CLI (perface.cli.main.report_error)
    last = done.stderr.splitlines()[-1]  # Lightning may log before ("Seed set to 0"); no traceback
    assert last.startswith("train.py: ") and needle in last and "Traceback" not in done.stderr
    debug = subprocess.run(args + ["--debug"], capture_output=True, text=True, timeout=300)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and needle in debug.stderr
