"""The ArcFace path end to end: configs/perface_arcface_r50.yaml (smoke-sized overrides) fine-tunes an iResNet-50
initialised from an insightface-format recognition ONNX, and the checkpoint scores with ``perface score`` and
exports to ONNX with parity.

No insightface weights exist offline, so the test makes its own ``w600k_r50.onnx`` look-alike: a random
arcface_torch iResNet-50 (random BN and PReLU parameters, statistics calibrated on LFW photos) exported the
way insightface exported buffalo_l (tests/helpers/insightface.py). Numbers from it mean nothing; the test
checks plumbing and numerics (weights arrive, frozen parts stay frozen, parity), never accuracy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import perface
from perface.backbones.insightface_import import load_insightface_onnx
from perface.backbones.iresnet import build_iresnet
from perface.cli.main import main as perface_main
from perface.preprocessing import ARCFACE, FaceOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.insightface import export_insightface_onnx, randomise  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "perface_arcface_r50.yaml"
#: Smoke-sized overrides of the config: a handful of triplets, one epoch, fast chips, no worker processes.
SMOKE = ["--data.max_train=4", "--data.max_val=4", "--data.batch_size=4", "--data.num_workers=0",
         "--data.prep_workers=0", "--data.detector=hog", "--data.upsample=0", "--trainer.max_epochs=1",
         "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.num_sanity_val_steps=0",
         "--trainer.enable_progress_bar=false", "--trainer.log_every_n_steps=1"]


@pytest.fixture(scope="module")
def pair(lfw) -> list[Path]:
    return [lfw / "images/Aaron_Peirsol/Aaron_Peirsol_0001.jpg", lfw / "images/AJ_Cook/AJ_Cook_0001.jpg"]


@pytest.fixture(scope="module")
def insightface_r50(tmp_path_factory, pair) -> Path:
    """A random iResNet-50 in insightface's ONNX format (BN statistics calibrated on two LFW photos)."""
    photos = [cv2.cvtColor(cv2.resize(cv2.imread(str(p)), (112, 112), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
              for p in pair]
    model = randomise(build_iresnet(50), seed=7, calibration=ARCFACE.normalize(np.stack(photos)))
    path = tmp_path_factory.mktemp("insightface") / "w600k_r50.onnx"
    export_insightface_onnx(model, path, torch.zeros(1, 3, 112, 112))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, insightface_r50, data_root, script):
    out = tmp_path_factory.mktemp("arcface")
    cli = script("train").main(["fit", "--config", str(CONFIG), f"--model.backbone_weights={insightface_r50}",
                                f"--data.root={data_root}", f"--trainer.logger.init_args.save_dir={out}", *SMOKE])
    best = Path(cli.trainer.checkpoint_callback.best_model_path)
    assert best.name == "best.ckpt" and cli.trainer.global_step == 1
    return cli, best


def test_config_fine_tunes_the_imported_iresnet(trained, insightface_r50):
    _, best = trained
    model = perface.load(best, engine="torch")
    imported = load_insightface_onnx(insightface_r50)
    assert model.backbone_name == "iresnet50" and model.name == "perface-arcface-r50"
    assert model.preprocessing == ARCFACE and model.embedding_dim == 512
    tuned, start = model.backbone.state_dict(), imported.state_dict()
    # trainable_stages 1: stem and layer1-3 are the imported weights, layer4 and fc moved
    for key, value in start.items():
        if key.startswith(("conv1.", "bn1.", "prelu.", "layer1.", "layer2.", "layer3.")):
            torch.testing.assert_close(tuned[key], value, rtol=0, atol=0, msg=key)
    assert not torch.equal(tuned["layer4.2.conv2.weight"], start["layer4.2.conv2.weight"])
    assert not torch.equal(tuned["fc.weight"], start["fc.weight"])
    # freeze_affine: batch norm kept its parameters and running statistics, also in the trained stage
    for key in ("layer4.0.bn1.running_mean", "layer4.1.bn3.running_var", "bn2.running_mean", "features.bias",
                "features.running_var", "layer4.0.bn2.weight"):
        torch.testing.assert_close(tuned[key], start[key], rtol=0, atol=0, msg=key)


def test_checkpoint_scores_and_exports_with_parity(trained, pair, tmp_path, capsys):
    cli, best = trained
    assert perface_main(["score", "--model", str(best), *map(str, pair)]) == 0
    assert -1 <= float(capsys.readouterr().out) <= 1
    out = tmp_path / "perface_arcface.onnx"
    assert perface_main(["export", "--model", str(best), "--out", str(out), "--check-images", *map(str, pair),
                         "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_real_chips"] == 2 and result["max_abs_diff"] <= 1e-4
    assert result["metadata"]["perface.backbone"] == "iresnet50"
    exported = perface.load(out)
    # the chips training used (the config's data section with the smoke overrides) travel into the export
    assert exported.face_options == cli.datamodule.face_options == FaceOptions(
        detector="hog", upsample=0, on_no_face="whole-image")


def test_missing_backbone_weights_is_a_one_line_error(tmp_path, data_root, monkeypatch, capsys, script):
    monkeypatch.setattr(sys, "argv", ["train.py"])
    missing = tmp_path / "w600k_r50.onnx"
    code = script("train").run(["fit", "--config", str(CONFIG), f"--model.backbone_weights={missing}",
                                f"--data.root={data_root}", f"--trainer.logger.init_args.save_dir={tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1  # a ModelLoadError: exit code 1, as the perface CLI
    assert err[-1] == f"train.py: {missing}: ONNX file not found; check the path"
