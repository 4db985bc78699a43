import pytest
import torch
import torch.nn.functional as F

from perface.training.losses import SoftTripletLoss


def _emb(seed: int, n: int = 6, d: int = 16):
    g = torch.Generator().manual_seed(seed)
    return [F.normalize(torch.randn(n, d, generator=g), dim=1) for _ in range(3)]


def test_triplet_loss_matches_formula_with_soft_labels():
    anchor, a, b = _emb(0)
    p_a = torch.tensor([1.0, 0.0, 0.8, 0.5, 0.3, 1.0])
    margin = 0.1
    sa, sb = (anchor * a).sum(1), (anchor * b).sum(1)
    a_wins = p_a >= 0.5
    pos, neg = torch.where(a_wins, sa, sb), torch.where(a_wins, sb, sa)
    per = torch.clamp(neg - pos + margin, min=0)
    w = (2 * p_a - 1).abs()
    expected = (w * per).sum() / w.sum()
    got = SoftTripletLoss("triplet", margin)(anchor, a, b, p_a)
    torch.testing.assert_close(got, expected)


def test_tie_has_no_weight_and_orientation_follows_majority():
    anchor, a, b = _emb(1, n=2)
    loss = SoftTripletLoss("triplet", 0.2)
    tie_only = loss(anchor, a, b, torch.tensor([0.5, 0.5]))
    assert tie_only.item() == 0.0
    # swapping a and b together with p_a -> 1 - p_a gives the same loss
    p = torch.tensor([0.9, 0.2])
    torch.testing.assert_close(loss(anchor, a, b, p), loss(anchor, b, a, 1 - p))


def test_hinge_on_distance_difference():
    anchor, a, b = _emb(2)
    p_a = torch.ones(6)
    d_a, d_b = 1 - (anchor * a).sum(1), 1 - (anchor * b).sum(1)
    expected = torch.clamp(0.05 - (d_b - d_a), min=0).mean()
    torch.testing.assert_close(SoftTripletLoss("hinge", 0.05)(anchor, a, b, p_a), expected)


def test_gradient_pulls_positive_closer():
    anchor, a, b = _emb(3, n=1)
    a = a.clone().requires_grad_(True)
    loss = SoftTripletLoss("triplet", 2.0)(anchor, a, b, torch.ones(1))  # large margin: always active
    loss.backward()
    # moving a along -grad raises its similarity to the anchor
    assert (anchor * (-a.grad)).sum() > 0


def test_unknown_loss():
    with pytest.raises(ValueError, match="triplet"):
        SoftTripletLoss("contrastive")
