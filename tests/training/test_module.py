"""PerFaceModule's staged, cached embedding path against the inference model's own."""

import numpy as np
import pytest
import torch

from perface.errors import SettingsError
from perface.training.module import PerFaceModule
from perface.training.triplet_dataset import mirror_key


def _chips(model, lfw, n=3):
    files = sorted((lfw / "images" / "Colin_Powell").iterdir())[:n]
    return torch.from_numpy(model.preprocessing.normalize(np.stack([model.faces(f)[0].chip for f in files])))


def test_cached_validation_embeddings_match_inference_with_flip_tta(lfw):
    module = PerFaceModule(trainable_stages=2, flip_tta=True, identity_weight=1.0).eval()
    x = _chips(module.model, lfw)
    ids = torch.arange(len(x))
    with torch.no_grad():
        expected = module.model.embed_tensor(x)
        torch.testing.assert_close(module._embed(x, ids, use_cache=True), expected, atol=1e-5, rtol=0)
        assert set(module._features) == {0, 1, 2, mirror_key(0), mirror_key(1), mirror_key(2)}
        torch.testing.assert_close(module._embed(x, ids, use_cache=True), expected, atol=1e-5, rtol=0)  # from cache
        torch.testing.assert_close(module._embed(x, ids, use_cache=False), expected, atol=1e-5, rtol=0)
    module.train()
    with torch.no_grad():
        one_side = module._embed(x, ids, use_cache=True)  # training embeds the orientation it is given
        torch.testing.assert_close(one_side, module.base_top.embed_tensor(x), atol=1e-5, rtol=0)
    assert not module.base_top.flip_tta and module.model.flip_tta


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_validation_credit_is_evaluations_triplet_credit(lfw):
    """val_agreement / val_agreement_hard are the mean 2AFC credit `perface eval agreement` computes
    (perface.evaluation.agreement.triplet_credit), ties included."""
    from perface.evaluation.agreement import triplet_credit

    module = PerFaceModule(trainable_stages=1).eval()
    x = _chips(module.model, lfw, n=3)
    order = torch.tensor([[0, 1, 2], [1, 0, 2], [2, 0, 1], [0, 1, 1]])  # last triplet: a == b, a tie
    p_a = torch.tensor([0.8, 0.3, 1.0, 0.9])
    batch = {"images": x[order], "ids": order, "p_a": p_a}
    with torch.no_grad():
        module.validation_step(batch, 0)
        z = module.model.embed_tensor(x)[order]
    sim_a, sim_b = (z[:, 0] * z[:, 1]).sum(1).numpy(), (z[:, 0] * z[:, 2]).sum(1).numpy()
    soft = triplet_credit(sim_a, sim_b, p_a.numpy())
    hard = triplet_credit(sim_a, sim_b, (p_a.numpy() >= 0.5).astype(float))
    assert soft[3] == hard[3] == 0.5 and sim_a[3] == sim_b[3]
    assert float(module.val_soft.compute()) == pytest.approx(soft.mean(), abs=1e-6)
    assert float(module.val_hard.compute()) == pytest.approx(hard.mean(), abs=1e-6)


def test_iresnet_training_freezes_through_the_backbone_contract():
    module = PerFaceModule(backbone="iresnet18", trainable_stages=1, head_dim=512)
    backbone = module.model.backbone
    trainable = {k for k, p in module.model.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "backbone.fc.weight", "backbone.fc.bias"} | {
        f"backbone.layer4.{i}.{m}.weight" for i in (0, 1) for m in ("conv1", "prelu", "conv2")} | {
        "backbone.layer4.0.downsample.0.weight"}
    assert module.frozen_stages == 3 and module.training
    assert not any(m.training for m in backbone.normalization_modules())  # freeze_affine: statistics fixed
    assert backbone.layer4.training and backbone.dropout.training
    with pytest.raises(SettingsError, match="trainable_stages must be in 0..4 for iresnet18"):
        PerFaceModule(backbone="iresnet18", trainable_stages=5)
