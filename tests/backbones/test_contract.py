"""The backbone contract (perface.backbones.base.Backbone) for every registered backbone: stem / stages / head
partition the parameters, forward is head(stages(stem(x))), set_trainable freezes by parts (no layer names),
frozen batch norm keeps its running statistics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from perface.backbones import build_backbone, get_backbone_spec, list_backbones
from perface.backbones.base import Backbone
from perface.errors import SettingsError


def _ids(modules) -> set[int]:
    return {id(p) for m in modules for p in m.parameters()}


@pytest.fixture(scope="module")
def small():
    """The two kinds of backbone, random weights: dlib ResNet and iResNet-18."""
    return {name: build_backbone(name, pretrained=False) for name in ("dlib_resnet", "iresnet18")}


@pytest.mark.parametrize("name", list_backbones())
def test_every_registered_backbone_partitions_its_parameters(name):
    model = build_backbone(name, pretrained=False)
    assert isinstance(model, Backbone)
    stem, stages, head = _ids(model.stem_modules()), _ids(model.stages), _ids(model.head_modules())
    everything = {id(p) for p in model.parameters()}
    assert stem | stages | head == everything  # every parameter belongs to a part ...
    assert len(stem) + len(stages) + len(head) == len(everything)  # ... and to one only
    assert model.num_stages == len(list(model.stages)) >= 2
    assert {id(p) for p in model.fixed_parameters()} <= everything
    assert model.normalization_modules() and all(m in set(model.modules()) for m in model.normalization_modules())


@pytest.mark.parametrize("name", ["dlib_resnet", "iresnet18"])
def test_forward_is_head_of_stages_of_stem(small, name):
    spec = get_backbone_spec(name)
    model = small[name].train()  # batch statistics: a random iResNet's activations overflow in eval mode
    size = spec.preprocessing.size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        staged = model.stem(x)
        for stage in model.stages:
            staged = stage(staged)
        staged = model.head(staged)
        out = model(x)
    assert out.shape == (2, spec.embedding_dim) and torch.isfinite(out).all()
    torch.testing.assert_close(out, staged, rtol=1e-5, atol=0)  # same ops; CPU kernels may reorder sums


@pytest.mark.parametrize("name", ["dlib_resnet", "iresnet18"])
@pytest.mark.parametrize("freeze_affine", [False, True])
@pytest.mark.parametrize("last_n", [None, "all", 2, 1, 0])
def test_set_trainable_freezes_by_parts(small, name, freeze_affine, last_n):
    model = small[name]
    n = model.num_stages
    last = n if last_n == "all" else last_n
    frozen = model.set_trainable(last, freeze_affine=freeze_affine)
    if last is None or last == n:
        expected = {id(p) for p in model.parameters()}
        assert frozen == 0
    elif last == 0:
        expected = set()
        assert frozen == n
    else:
        expected = _ids(list(model.stages)[n - last:]) | _ids(model.head_modules())
        assert frozen == n - last
    if freeze_affine:
        expected -= _ids(model.normalization_modules())
    expected -= {id(p) for p in model.fixed_parameters()}
    assert {id(p) for p in model.parameters() if p.requires_grad} == expected


def test_trainable_names_for_the_usual_recipe(small):
    """Last stage + head, normalisation frozen: the names the training recipe used to hard-code."""
    dlib, iresnet = small["dlib_resnet"], small["iresnet18"]
    dlib.set_trainable(1, freeze_affine=True)
    names = {k for k, p in dlib.named_parameters() if p.requires_grad}
    assert names == {"fc.weight"} | {f"stages.4.0.{c}.{w}" for c in ("conv1", "conv2") for w in ("weight", "bias")}
    iresnet.set_trainable(1, freeze_affine=True)
    names = {k for k, p in iresnet.named_parameters() if p.requires_grad}
    block = {f"layer4.{i}.{m}.weight" for i in (0, 1) for m in ("conv1", "prelu", "conv2")}
    assert names == block | {"layer4.0.downsample.0.weight", "fc.weight", "fc.bias"}
    iresnet.set_trainable(None, freeze_affine=False)
    assert not iresnet.features.weight.requires_grad and iresnet.features.bias.requires_grad  # arcface_torch's fixed scale


def test_out_of_range_is_a_settings_error(small):
    with pytest.raises(SettingsError, match=r"0\.\.5"):
        small["dlib_resnet"].set_trainable(6)
    with pytest.raises(SettingsError, match=r"0\.\.4"):
        small["iresnet18"].set_trainable(-1)


@pytest.mark.parametrize("freeze_affine", [False, True])
def test_frozen_batch_norm_keeps_running_statistics(freeze_affine):
    model = build_backbone("iresnet18")
    model.set_trainable(1, freeze_affine=freeze_affine)
    model.train()
    frozen_bn, last_bn = model.layer1[0].bn1, model.layer4[0].bn1
    assert not frozen_bn.training and model.bn1.training is False
    assert last_bn.training is (not freeze_affine) and model.bn2.training is (not freeze_affine)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
    model(torch.randn(4, 3, 112, 112, generator=torch.Generator().manual_seed(1)))
    after = model.state_dict()
    changed = {k for k, v in before.items() if not torch.equal(v, after[k])}
    stats_of = {k.rsplit(".", 1)[0] for k in changed}
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            assert (name in stats_of) is module.training, name  # statistics move only where the BN trains
    assert bool(changed) is (not freeze_affine)
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()  # the rule holds on every later switch to training mode
    assert not frozen_bn.training
