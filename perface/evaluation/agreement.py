"""Two-alternative forced choice (2AFC) agreement with human (or proxy) triplet judgments.

For a triplet ``(anchor, a, b)`` with ``p_a`` = share of judges who found ``a`` more similar to the anchor,
a model earns ``p_a`` when it finds ``a`` more similar (``sim(anchor, a) > sim(anchor, b)``), ``1 - p_a``
when it finds ``b`` more similar, and ``0.5`` on an exact tie: the 2AFC score of LPIPS / DreamSim. With hard
labels (``p_a`` 0 or 1) this is plain accuracy. A perfect model scores ``mean(max(p_a, 1 - p_a))``, not 1,
when judges disagree.

Confidence intervals are percentile bootstrap intervals over triplets (seeded, so results repeat).
Only numpy; no torch.
"""

from __future__ import annotations

import numpy as np

__all__ = ["agreement", "bootstrap_ci", "bootstrap_means", "paired_difference", "triplet_credit"]

#: Bootstrap resamples unless told otherwise.
N_BOOT = 2000
_CHUNK_ELEMENTS = 4_000_000  # bootstrap index chunk (int64 elements) to bound memory


def triplet_credit(sim_a: np.ndarray, sim_b: np.ndarray, p_a: np.ndarray) -> np.ndarray:
    """Per-triplet 2AFC credit in [0, 1].

    Args:
        sim_a: (N,) similarity of anchor and ``a`` (higher = more similar).
        sim_b: (N,) similarity of anchor and ``b``.
        p_a: (N,) share of judges preferring ``a`` (0/1 for hard labels).

    Returns:
        (N,) float64: ``p_a`` where ``sim_a > sim_b``, ``1 - p_a`` where ``sim_a < sim_b``, 0.5 on ties.
    """
    sa = np.asarray(sim_a, dtype=np.float64).ravel()
    sb = np.asarray(sim_b, dtype=np.float64).ravel()
    p = np.asarray(p_a, dtype=np.float64).ravel()
    if not (sa.shape == sb.shape == p.shape):
        raise ValueError(f"sim_a, sim_b and p_a must have the same length, got {sa.shape}, {sb.shape}, {p.shape}")
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError("p_a must be in [0, 1]")
    return np.where(sa > sb, p, np.where(sa < sb, 1.0 - p, 0.5))


def bootstrap_means(values: np.ndarray, n_boot: int = N_BOOT, seed: int = 0, paired: np.ndarray | None = None
                    ) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``values``; with ``paired``, the means of
    ``values - paired`` over the same resampled indices (a paired bootstrap)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if paired is not None:
        v = v - np.asarray(paired, dtype=np.float64).ravel()
    n = len(v)
    if n == 0:
        raise ValueError("bootstrap needs at least one value")
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = v[idx].mean(axis=1)
    return out


def bootstrap_ci(values: np.ndarray, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values``."""
    means = bootstrap_means(values, n_boot=n_boot, seed=seed)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def _summary(credit: np.ndarray, n_boot: int, seed: int) -> dict:
    return {"agreement": float(np.mean(credit)), "ci95": list(bootstrap_ci(credit, n_boot=n_boot, seed=seed)),
            "n": int(len(credit))}


def agreement(sim_a: np.ndarray, sim_b: np.ndarray, p_a: np.ndarray, strata: np.ndarray | None = None,
              n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """2AFC agreement of one model with the judgments.

    Returns:
        ``{"agreement": mean credit, "ci95": [lo, hi], "n": triplets, "ceiling": mean(max(p_a, 1 - p_a)),
        "by_stratum": {stratum: {"agreement", "ci95", "n"}}}`` (``by_stratum`` is empty without strata).
    """
    credit = triplet_credit(sim_a, sim_b, p_a)
    if len(credit) == 0:
        raise ValueError("agreement needs at least one triplet")
    p = np.asarray(p_a, dtype=np.float64).ravel()
    out = _summary(credit, n_boot, seed)
    out["ceiling"] = float(np.mean(np.maximum(p, 1 - p)))
    out["by_stratum"] = {}
    if strata is not None:
        strata = np.asarray(strata, dtype=object).ravel()
        if len(strata) != len(credit):
            raise ValueError("strata must have one entry per triplet")
        for s in sorted({str(x) for x in strata}):
            out["by_stratum"][s] = _summary(credit[strata.astype(str) == s], n_boot, seed)
    return out


def paired_difference(credit: np.ndarray, baseline_credit: np.ndarray, n_boot: int = N_BOOT, seed: int = 0,
                      strata: np.ndarray | None = None) -> dict:
    """Difference in agreement of two models scored on the same triplets, with a paired bootstrap CI.

    Args:
        credit: (N,) per-triplet credit of the model (:func:`triplet_credit`).
        baseline_credit: (N,) credit of the model it is compared with, same triplets in the same order.

    Returns:
        ``{"difference": mean(credit - baseline), "ci95": [lo, hi], "n", "by_stratum": {...}}``; the CI
        excluding 0 means the difference is unlikely to be resampling noise.
    """
    c = np.asarray(credit, dtype=np.float64).ravel()
    b = np.asarray(baseline_credit, dtype=np.float64).ravel()
    if c.shape != b.shape:
        raise ValueError("paired_difference needs both models' credit on the same triplets")
    if len(c) == 0:
        raise ValueError("paired_difference needs at least one triplet")

    def one(mask) -> dict:
        means = bootstrap_means(c[mask], n_boot=n_boot, seed=seed, paired=b[mask])
        lo, hi = np.quantile(means, [0.025, 0.975])
        return {"difference": float(np.mean(c[mask] - b[mask])), "ci95": [float(lo), float(hi)],
                "n": int(mask.sum())}

    out = one(np.ones(len(c), dtype=bool))
    out["by_stratum"] = {}
    if strata is not None:
        strata = np.asarray(strata, dtype=object).ravel().astype(str)
        for s in sorted(set(strata)):
            out["by_stratum"][s] = one(strata == s)
    return out
