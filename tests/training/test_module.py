"""PerFaceModule's staged, cached embedding path against the inference model's own."""

import numpy as np
import pytest
import torch

from perface.errors import SettingsError
from perface.training.module import PerFaceModule
from perface.training.triplet_dataset import mirror_key


def _chips(model, lfw, n=3):
    """uint8 (n, S, S, 3) chips of real photos, as the training batches carry them."""
    files = sorted((lfw / "images" / "Colin_Powell").iterdir())[:n]
    return torch.from_numpy(np.stack([model.faces(f)[0].chip for f in files]))


def _normalized(model, chips):
    return torch.from_numpy(model.preprocessing.normalize(chips.numpy()))


def test_cached_validation_embeddings_match_inference_with_flip_tta(lfw):
    module = PerFaceModule(trainable_stages=2, flip_tta=True, identity_weight=1.0).eval()
    chips = _chips(module.model, lfw)
    x = _normalized(module.model, chips)
    ids = torch.arange(len(x))
    with torch.no_grad():
        expected = module.model.embed_tensor(x)
        torch.testing.assert_close(module._embed(chips, ids, use_cache=True), expected, atol=1e-5, rtol=0)
        assert set(module._features) == {0, 1, 2, mirror_key(0), mirror_key(1), mirror_key(2)}
        torch.testing.assert_close(module._embed(chips, ids, use_cache=True), expected, atol=1e-5, rtol=0)  # cached
        torch.testing.assert_close(module._embed(chips, ids, use_cache=False), expected, atol=1e-5, rtol=0)
    module.train()
    with torch.no_grad():
        one_side = module._embed(chips, ids, use_cache=True)  # training embeds the orientation it is given
        torch.testing.assert_close(one_side, module.base_top.embed_tensor(x), atol=1e-5, rtol=0)
    assert not module.base_top.flip_tta and module.model.flip_tta


def test_cached_training_steps_normalise_only_chips_not_seen_before(lfw, monkeypatch):
    """Batches carry uint8 chips; with cached frozen features a chip is normalised and run through the frozen
    stages once per orientation, the first time it is embedded, and the base model's embedding (for
    retention) is the base model's top on those same features."""
    module = PerFaceModule(trainable_stages=2, identity_weight=1.0)
    chips = _chips(module.model, lfw)
    ids = torch.arange(len(chips))
    normalized = []
    inputs = module._inputs
    monkeypatch.setattr(module, "_inputs", lambda c: normalized.append(len(c)) or inputs(c))
    with torch.no_grad():
        module._base_embeddings(chips[:2], ids[:2], use_cache=True)
        module._embed(chips[:2], ids[:2], use_cache=True)
        assert normalized == [2]  # the frozen stages ran once for both
        z = module._embed(chips, ids, use_cache=True)
        base = module._base_embeddings(chips, ids, use_cache=True)
        assert normalized == [2, 1]  # only the new chip
        module._embed(chips, ids, use_cache=False)
        assert normalized == [2, 1, 3]  # no cache: every chip
        whole = module.base_top.embed_tensor(inputs(chips))  # the base model end to end
    torch.testing.assert_close(base, whole, atol=1e-6, rtol=0)
    torch.testing.assert_close(z, base, atol=1e-6, rtol=0)  # untrained: the base model's embeddings


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_validation_credit_is_evaluations_triplet_credit(lfw):
    """val_agreement / val_agreement_hard are the mean 2AFC credit `perface eval agreement` computes
    (perface.evaluation.agreement.triplet_credit), ties included."""
    from perface.evaluation.agreement import triplet_credit

    module = PerFaceModule(trainable_stages=1).eval()
    chips = _chips(module.model, lfw, n=3)
    order = torch.tensor([[0, 1, 2], [1, 0, 2], [2, 0, 1], [0, 1, 1]])  # last triplet: a == b, a tie
    p_a = torch.tensor([0.8, 0.3, 1.0, 0.9])
    batch = {"chips": chips[order], "ids": order, "p_a": p_a}
    with torch.no_grad():
        module.validation_step(batch, 0)
        z = module.model.embed_tensor(_normalized(module.model, chips))[order]
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


def test_two_branch_module_trains_only_the_perceptual_branch_and_caches_the_identity_branch(lfw):
    module = PerFaceModule(trainable_stages=2, flip_tta=True, perceptual_weight=0.4, identity_weight=1.0,
                           retention="similarity")
    model = module.model
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(k.startswith("perceptual.net.stages.") or k == "perceptual.net.fc.weight" for k in trainable)
    assert not any(k.endswith(("affine1.weight", "affine2.weight")) for k in trainable)  # freeze_affine
    assert module.frozen_stages == 3 and module.base_top is None  # the identity branch is the base model
    chips = _chips(model, lfw)
    x = _normalized(model, chips)
    ids = torch.arange(len(x))
    module.eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in model.perceptual.parameters():
            p.add_(0.05 * p.abs().mean() * torch.randn(p.shape, generator=g))
        expected = model.embed_tensor(x)
        torch.testing.assert_close(module._embed(chips, ids, use_cache=True), expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(module._embed(chips, ids, use_cache=True), expected, atol=1e-5, rtol=0)  # cached
        assert set(module._base) == set(module._features) == {0, 1, 2, mirror_key(0), mirror_key(1), mirror_key(2)}
    module.train()
    z = module._embed(chips, ids, use_cache=True)  # one orientation, with gradients into the branch only
    learned, base = module._learned_and_base(z, chips, ids, use_cache=True)
    with torch.no_grad():
        reference = PerFaceModule(trainable_stages=2).model  # the untouched base model, one orientation
        torch.testing.assert_close(base, reference.embed_tensor(x), atol=1e-5, rtol=0)
        torch.testing.assert_close(learned, torch.nn.functional.normalize(model.perceptual(model.trunk(x, 3)), dim=1),
                                   atol=1e-5, rtol=0)
    learned.sum().backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.perceptual.net.fc.weight.grad is not None


def test_two_branch_settings_errors():
    with pytest.raises(SettingsError, match="needs the number of stages"):
        PerFaceModule(trainable_stages=None, perceptual_weight=0.3)
    with pytest.raises(SettingsError, match="retention must be one of"):
        PerFaceModule(retention="distance")


def test_view_invariance_settings_errors():
    with pytest.raises(SettingsError, match="model.invariance must be one of keep, pull, got 'hold'"):
        PerFaceModule(invariance_weight=1.0, invariance="hold")
    with pytest.raises(SettingsError, match="two-branch model's identity branch is the base model"):
        PerFaceModule(invariance_weight=1.0, perceptual_weight=0.3)
    keep, pull = PerFaceModule(invariance_weight=1.0), PerFaceModule(invariance_weight=1.0, invariance="pull")
    assert keep.base_top is not None and pull.base_top is None  # only "keep" compares with the base model
