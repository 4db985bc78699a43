"""Training losses: triplet losses on cosine distance with soft (agreement-weighted) labels, and the identity
retention terms that keep what the base model knows.

Each triplet (anchor, a, b) is oriented by its majority (``p_a >= 0.5``: a is the positive) and weighted by
the judges' agreement ``|2 p_a - 1|`` (ties carry no weight).
"""

from __future__ import annotations

import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.reducers import DoNothingReducer

LOSSES = ("triplet", "hinge")
#: Identity retention terms (``PerFaceModule(retention=...)``).
RETENTIONS = ("embedding", "similarity")
#: What the view-invariance term asks of two views of one face (``PerFaceModule(invariance=...)``).
INVARIANCES = ("keep", "pull")


def embedding_retention(z: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cos(z_i, base_i)``: keeps each embedding near the base model's embedding of the same image.

    Args:
        z: (M, D) L2-normalised learned embeddings.
        base: (M, D) L2-normalised base-model embeddings of the same images.

    Returns:
        Scalar in [0, 2].
    """
    return (1 - (z * base).sum(1)).mean()


def similarity_retention(z: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """Similarity-preserving distillation on cosine similarities: the mean over all pairs ``i != j`` of
    ``(cos(z_i, z_j) - cos(base_i, base_j))^2``.

    It keeps the base model's similarity *structure* (which faces are close to which) and leaves the
    embeddings free to move as a whole (a rotation costs nothing), unlike :func:`embedding_retention`.
    Tung & Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019, use the row-normalised Gram
    matrix of a batch; here the embeddings are unit vectors, so the Gram matrix is the cosine matrix itself.

    Args:
        z: (M, D) L2-normalised learned embeddings (M >= 2).
        base: (M, D') L2-normalised base-model embeddings of the same images (D' may differ from D).

    Returns:
        Scalar in [0, 4].
    """
    m = len(z)
    diff = z @ z.T - base @ base.T
    off = ~torch.eye(m, dtype=torch.bool, device=z.device)
    return diff[off].pow(2).mean()


def view_invariance(z: torch.Tensor, z_view: torch.Tensor, base: torch.Tensor | None = None,
                    base_view: torch.Tensor | None = None) -> torch.Tensor:
    """Same-face similarity of two views of one face (another light, crop or orientation).

    With the base model's embeddings (``keep``): the mean ``max(0, cos(base_i, base_view_i) - cos(z_i,
    z_view_i))``, i.e. the views stay at least as similar as the base model finds them (more invariant costs
    nothing). Without them (``pull``): the mean ``1 - cos(z_i, z_view_i)``, i.e. the views are pulled together
    beyond the base model's similarity.

    The per-image and similarity-preserving terms see different people only; this one speaks for same-person
    similarity, which is what verification at a strict threshold loses when a model learns how faces differ.

    Args:
        z, z_view: (B, D) L2-normalised learned embeddings of the images and of their views.
        base, base_view: (B, D') L2-normalised base-model embeddings of the same, or None.

    Returns:
        Scalar in [0, 2].
    """
    learned = (z * z_view).sum(1)
    if base is None:
        return (1 - learned).mean()
    return torch.relu((base * base_view).sum(1) - learned).mean()


class SoftTripletLoss(torch.nn.Module):
    """Agreement-weighted triplet loss.

    Args:
        kind: ``"triplet"``: pytorch-metric-learning ``TripletMarginLoss`` with cosine similarity on the
            precomputed triplets (``indices_tuple``); ``"hinge"``: DreamSim's hinge on the distance difference,
            ``max(0, margin - y * (d(anchor, b) - d(anchor, a)))`` with y = +1 when a is preferred.
        margin: Margin in cosine-distance units.
    """

    def __init__(self, kind: str = "triplet", margin: float = 0.05):
        super().__init__()
        if kind not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")
        self.kind = kind
        self.margin = margin
        self.triplet = TripletMarginLoss(margin=margin, distance=CosineSimilarity(), reducer=DoNothingReducer())

    def forward(self, anchor: torch.Tensor, a: torch.Tensor, b: torch.Tensor, p_a: torch.Tensor) -> torch.Tensor:
        """Weighted mean loss.

        Args:
            anchor, a, b: (B, D) L2-normalised embeddings.
            p_a: (B,) share of judges preferring ``a``.
        """
        weight = (2 * p_a - 1).abs()
        a_wins = p_a >= 0.5
        if self.kind == "hinge":
            d_a = 1 - (anchor * a).sum(1)
            d_b = 1 - (anchor * b).sum(1)
            y = torch.where(a_wins, 1.0, -1.0)
            losses = torch.clamp(self.margin - y * (d_b - d_a), min=0)
        else:
            n = len(anchor)
            pos = torch.where(a_wins[:, None], a, b)
            neg = torch.where(a_wins[:, None], b, a)
            emb = torch.cat([anchor, pos, neg])
            idx = torch.arange(n, device=emb.device)
            out = self.triplet(emb, indices_tuple=(idx, idx + n, idx + 2 * n))["loss"]
            losses = torch.zeros(n, device=emb.device, dtype=emb.dtype)
            if torch.is_tensor(out["losses"]) and out["losses"].numel() == n:
                losses = out["losses"]
            elif torch.is_tensor(out["losses"]) and out["losses"].numel():
                losses = losses.index_put((out["indices"][0],), out["losses"])
        return (weight * losses).sum() / weight.sum().clamp_min(1e-8)
