import pytest
import torch
import torch.nn.functional as F

from perface.training.losses import SoftTripletLoss, embedding_retention, similarity_retention, view_invariance


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


def test_similarity_retention_is_the_mean_squared_change_of_pairwise_cosines():
    z, base, _ = _emb(4, n=5, d=8)
    expected = sum((float(z[i] @ z[j]) - float(base[i] @ base[j])) ** 2
                   for i in range(5) for j in range(5) if i != j) / 20
    assert similarity_retention(z, base).item() == pytest.approx(expected, rel=1e-5)
    # it keeps the similarity structure, not the embeddings: a rotation of all embeddings costs nothing,
    # whereas the per-image term sees it; different widths are fine
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(5)))
    assert similarity_retention(base @ q, base).item() < 1e-10
    assert similarity_retention(base @ q, F.normalize(base[:, :4], dim=1)).item() > 0
    assert embedding_retention(base @ q, base).item() > 0.1
    torch.testing.assert_close(embedding_retention(z, base), (1 - (z * base).sum(1)).mean())


def test_view_invariance_charges_only_lost_same_face_similarity():
    z, z_view, _ = _emb(6, n=5, d=8)
    base, base_view, _ = _emb(7, n=5, d=8)
    learned = (z * z_view).sum(1)
    kept = (base * base_view).sum(1)
    expected = torch.clamp(kept - learned, min=0).mean()
    torch.testing.assert_close(view_invariance(z, z_view, base, base_view), expected)
    # a model that keeps (or raises) the base model's view similarity pays nothing; losing it all costs 1 - cos
    assert view_invariance(base, base_view, base, base_view).item() == 0
    assert view_invariance(base, base, base, base_view).item() == 0  # views identical: more invariant than base
    loss = view_invariance(base, -base_view, base, base_view)
    torch.testing.assert_close(loss, (2 * (base * base_view).sum(1)).clamp(min=0).mean())
    # the gradient pulls the two views together
    z_req = z.clone().requires_grad_(True)
    view_invariance(z_req, z_view, z_view, z_view).backward()  # base finds the views identical: any gap costs
    step = F.normalize(z_req.detach() - 0.1 * z_req.grad, dim=1)
    assert ((step * z_view).sum(1) >= (z * z_view).sum(1) - 1e-6).all()


def test_view_invariance_pull_asks_for_identical_views():
    z, z_view, _ = _emb(8, n=5, d=8)
    torch.testing.assert_close(view_invariance(z, z_view), (1 - (z * z_view).sum(1)).mean())
    assert view_invariance(z, z).item() == pytest.approx(0, abs=1e-6)
