"""The perceptual-similarity band replacement identities are chosen from.

**Default band (documented rule).** At build time the gallery measures its own similarity distribution as a
new target photo meets it: the perceptual similarity of each gallery *image* to the (mean) embeddings of the
*other* gallery identities (all such pairs up to 2,000,000 of them, otherwise 2,000,000 pairs drawn with a fixed
seed). The default band runs from its quantile ``1 - min(10%, 1000/N)`` to its quantile ``1 - min(1%, 100/N)``
(N = number of identities):

* up to 10,000 identities: the 90th to 99th percentile: a typical target finds about 9% of the gallery in the
  band, i.e. identities that look more alike than 90% of the gallery's (photo, other person) pairs, but not
  its top 1%;
* bigger galleries: a typical target finds about 900 identities in the band, pushed towards the top of the
  distribution, so a bigger gallery gives closer look-alikes (and the band stays a small neighbourhood of the
  target, which an index can search).

The band is one pair of numbers per gallery, the same for every target: a target with an unusual face may find
few or no identities in it, which ``perface select --summary`` counts (the no-candidate rate) instead of hiding.
Candidates are ranked by ``|similarity - centre|``, the centre being the band's midpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perface.errors import SelectionError

__all__ = ["Band", "MAX_PAIRS", "QUANTILE_LEVELS", "default_band_levels", "gallery_band", "pair_similarities",
           "parse_band"]

#: Pairs used to estimate the between-identity distribution (all pairs when there are fewer).
MAX_PAIRS = 2_000_000

#: Quantiles of the between-identity distribution stored in every gallery (for reports and other bands).
QUANTILE_LEVELS = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999)


@dataclass(frozen=True)
class Band:
    """Inclusive similarity interval ``[lo, hi]``; ``source`` says where it came from."""

    lo: float
    hi: float
    source: str = "given"
    levels: tuple[float, float] | None = None  # quantile levels of a default band

    def __post_init__(self):
        lo, hi = float(self.lo), float(self.hi)
        if not (np.isfinite(lo) and np.isfinite(hi)) or not -1.0 <= lo < hi <= 1.0:
            raise SelectionError(f"band {lo:g}:{hi:g} is not an interval LO:HI with -1 <= LO < HI <= 1 "
                                 "(cosine similarities, higher = more similar)")

    @property
    def centre(self) -> float:
        return (float(self.lo) + float(self.hi)) / 2.0

    def to_dict(self) -> dict:
        out = {"lo": float(self.lo), "hi": float(self.hi), "centre": self.centre, "source": self.source}
        if self.levels is not None:
            out["levels"] = [float(v) for v in self.levels]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Band":
        levels = d.get("levels")
        return cls(float(d["lo"]), float(d["hi"]), d.get("source", "given"), tuple(levels) if levels else None)


def parse_band(text: str) -> Band:
    """``"0.55:0.7"`` -> :class:`Band` (raises :class:`SelectionError` on anything else)."""
    parts = str(text).split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise SelectionError(f"band {text!r}: expected LO:HI, two similarities such as 0.55:0.70") from None
    return Band(lo, hi, source="given")


def default_band_levels(n_identities: int) -> tuple[float, float]:
    """Quantile levels ``(lo, hi)`` of the default band for a gallery of ``n_identities``."""
    n = max(int(n_identities), 1)
    return 1.0 - min(0.10, 1000.0 / n), 1.0 - min(0.01, 100.0 / n)


def pair_similarities(embeddings: np.ndarray, images: np.ndarray | None = None, owners: np.ndarray | None = None,
                      max_pairs: int = MAX_PAIRS, seed: int = 0) -> np.ndarray:
    """Between-identity similarities, float64 (P,).

    With ``images`` (M, D) and ``owners`` (M,) (the row of ``embeddings`` each image belongs to): the similarity
    of every image to every *other* identity's row. Without: the similarity of every pair of distinct rows.
    All pairs when there are at most ``max_pairs``, else ``max_pairs`` pairs drawn with ``seed`` (deterministic).
    """
    x = np.asarray(embeddings, dtype=np.float32)
    n = len(x)
    if n < 2:
        return np.zeros(0)
    left = x if images is None else np.asarray(images, dtype=np.float32)
    owner = np.arange(n) if images is None else np.asarray(owners, dtype=np.int64)
    n_possible = n * (n - 1) // 2 if images is None else len(left) * (n - 1)
    if n_possible <= max_pairs:
        out = []
        for start in range(0, len(left), 1024):
            block = left[start : start + 1024] @ x.T
            rows = np.arange(len(block))
            if images is None:  # each unordered pair once: j > i
                keep = np.arange(n)[None, :] > (start + rows)[:, None]
            else:  # every other identity
                keep = np.ones(block.shape, dtype=bool)
                keep[rows, owner[start : start + len(block)]] = False
            out.append(block[keep])
        return np.concatenate(out).astype(np.float64)
    rng = np.random.default_rng(seed)
    sims = np.empty(max_pairs, dtype=np.float64)
    for start in range(0, max_pairs, 1 << 18):
        m = min(1 << 18, max_pairs - start)
        i = rng.integers(0, len(left), m)
        j = (owner[i] + rng.integers(1, n, m)) % n  # never the image's own identity
        sims[start : start + m] = np.einsum("ij,ij->i", left[i], x[j])
    return sims


def gallery_band(embeddings: np.ndarray, images: np.ndarray | None = None, owners: np.ndarray | None = None,
                 levels=QUANTILE_LEVELS, max_pairs: int = MAX_PAIRS) -> tuple[Band | None, dict]:
    """The documented default band of a gallery with these (per-identity) perceptual embeddings, and a summary
    of its between-identity similarity distribution (image-to-other-identity when ``images``/``owners`` are
    given, see :func:`pair_similarities`).

    Returns:
        ``(band, summary)``: ``band`` is None with fewer than 2 identities (or a degenerate distribution);
        ``summary`` is ``{"n_pairs", "sampled", "quantiles": {"0.9": value, ...}}``.
    """
    sims = pair_similarities(embeddings, images, owners, max_pairs=max_pairs)
    n = len(embeddings)
    lo_level, hi_level = default_band_levels(n)
    all_levels = sorted(set(float(v) for v in levels) | {lo_level, hi_level})
    values = np.quantile(sims, all_levels) if len(sims) else [float("nan")] * len(all_levels)
    q = dict(zip(all_levels, (float(v) for v in values)))
    n_possible = n * (n - 1) // 2 if images is None else len(images) * (n - 1)
    summary = {"pairs": "image-to-other-identity" if images is not None else "identity-to-identity",
               "n_pairs": int(len(sims)), "sampled": bool(n_possible > max_pairs),
               "quantiles": {repr(lv): v for lv, v in q.items()}}
    band = None
    if len(sims) and q[hi_level] > q[lo_level]:
        band = Band(q[lo_level], q[hi_level], levels=(lo_level, hi_level),
                    source=f"gallery default: quantiles {lo_level:.4g} to {hi_level:.4g} of the gallery's "
                           f"{summary['pairs']} similarities")
    return band, summary
