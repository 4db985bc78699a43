"""Finding the gallery identities whose perceptual similarity to a target is at least the band's lower edge.

* :class:`ExactSearch`: every similarity with numpy (blocked matrix products); the default up to
  :data:`EXACT_LIMIT` identities.
* :class:`FaissSearch`: a FAISS inverted-file index (``IndexIVFFlat``, inner product, ``nlist = 4 sqrt(N)``
  lists) searched with ``range_search``; beyond :data:`EXACT_LIMIT` identities when ``faiss-cpu`` is installed
  (``pip install faiss-cpu``), or when asked for.

The band is a *ring* around the target (similar, but not too similar), not a nearest-neighbour ball, so an
index must visit many lists to find its members. The number of lists visited (``nprobe``) is therefore
**calibrated on the gallery itself**: for the band searched, 200 gallery identities (fixed seed) are used as
queries and ``nprobe`` is doubled until the index finds at least ``target_recall`` (0.99) of the in-band
identities exact search finds; the measured recall is reported with every selection. The trained index is
kept beside the gallery file (``gallery.parquet.faiss``, tied to the gallery's content hash) so it is trained
once, by ``perface gallery build --index faiss`` or by the first selection. Either way the rows
found are re-scored exactly (float64) before any decision, so both searches rank and filter identically and
can only differ by rows the index missed.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from perface.errors import GalleryError

__all__ = ["EXACT_LIMIT", "ExactSearch", "FaissSearch", "faiss_available", "make_search"]

#: Galleries up to this many identities are searched exactly by default.
EXACT_LIMIT = 100_000

#: Slack below the band's lower edge when searching in float32, so float64 re-scoring decides the edge.
MARGIN = 1e-4


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class ExactSearch:
    """Brute-force search over all rows."""

    kind = "exact"

    def __init__(self, embeddings: np.ndarray):
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)

    def info(self) -> dict:
        return {"kind": self.kind}

    def at_least(self, queries: np.ndarray, lo: float, hi: float | None = None) -> list[np.ndarray]:
        """Row ids (sorted) whose similarity to each query is ``>= lo - MARGIN`` (float32 screening)."""
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        out: list[np.ndarray] = []
        for start in range(0, len(q), 256):
            block = q[start : start + 256] @ self.embeddings.T
            out.extend(np.flatnonzero(row >= lo - MARGIN) for row in block)
        return out


class FaissSearch:
    """FAISS IVF index with ``nprobe`` calibrated per band (see the module docstring).

    Args:
        embeddings: (N, D) float32 L2-normalised rows.
        nlist: Inverted lists (default ``4 sqrt(N)``, at most N / 39 so k-means has enough points).
        nprobe: Fixed lists visited per query; None calibrates it for each band.
        target_recall: Recall of in-band rows the calibration aims for.
        seed: k-means and calibration seed.

    Raises:
        GalleryError: faiss is not installed.
    """

    kind = "faiss"

    def __init__(self, embeddings: np.ndarray, nlist: int | None = None, nprobe: int | None = None,
                 target_recall: float = 0.99, seed: int = 0, calibration_queries: int = 200):
        try:
            import faiss
        except ImportError:
            raise GalleryError("the FAISS index needs faiss: pip install faiss-cpu (or use --index exact)") from None
        self._setup(embeddings, nprobe, target_recall, seed, calibration_queries)
        n, d = self.embeddings.shape
        if nlist is None:
            nlist = int(round(4 * math.sqrt(n)))
            nlist = max(1, min(nlist, n // 39))
        self.nlist = int(max(1, min(nlist, n)))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, self.nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = self.seed
        index.train(self.embeddings)
        index.add(self.embeddings)
        self._quantizer = quantizer  # keep alive (the index does not own it)
        self.index = index

    def _setup(self, embeddings, nprobe, target_recall, seed, calibration_queries) -> None:
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.fixed_nprobe = nprobe
        self.target_recall = float(target_recall)
        self.seed = int(seed)
        self.calibration_queries = int(calibration_queries)
        self._calibrated: dict[tuple[float, float], tuple[int, float]] = {}

    # --- persistence (a sidecar file beside the gallery) ---------------------------------------------------
    def save(self, path: str | os.PathLike, content_sha256: str) -> Path:
        """Write the trained index to ``path`` and its description to ``path + ".json"``."""
        import faiss

        path = Path(path)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, path)
        meta = {"content_sha256": content_sha256, "nlist": self.nlist, "seed": self.seed,
                "ntotal": int(self.index.ntotal)}
        path.with_name(path.name + ".json").write_text(json.dumps(meta))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, embeddings: np.ndarray, content_sha256: str,
             **options) -> "FaissSearch | None":
        """The index saved at ``path`` if it was built from these embeddings (same content hash), else None."""
        import faiss

        path = Path(path)
        try:
            meta = json.loads(path.with_name(path.name + ".json").read_text())
            if meta.get("content_sha256") != content_sha256 or meta.get("ntotal") != len(embeddings):
                return None
            index = faiss.read_index(str(path))
        except (OSError, ValueError, RuntimeError):
            return None
        self = cls.__new__(cls)
        self._setup(embeddings, options.get("nprobe"), options.get("target_recall", 0.99), meta.get("seed", 0),
                    options.get("calibration_queries", 200))
        self.nlist = int(meta["nlist"])
        self.index = index
        self._quantizer = None
        return self

    def info(self, lo: float | None = None, hi: float | None = None) -> dict:
        out = {"kind": self.kind, "nlist": self.nlist}
        if lo is not None and hi is not None:
            nprobe, recall = self.calibrate(lo, hi)
            out.update(nprobe=nprobe, calibrated_recall=recall)
        return out

    def _search(self, q: np.ndarray, radius: float, nprobe: int) -> list[np.ndarray]:
        self.index.nprobe = int(nprobe)
        lims, _, ids = self.index.range_search(np.ascontiguousarray(q, dtype=np.float32), float(radius))
        return [np.sort(ids[lims[i] : lims[i + 1]]).astype(np.int64) for i in range(len(q))]

    def calibrate(self, lo: float, hi: float) -> tuple[int, float]:
        """``(nprobe, recall)``: the smallest doubling of ``nprobe`` reaching ``target_recall`` of the rows with
        similarity in ``[lo, hi]``, measured on gallery rows used as queries."""
        key = (float(lo), float(hi))
        if key in self._calibrated:
            return self._calibrated[key]
        n = len(self.embeddings)
        rng = np.random.default_rng(self.seed)
        rows = np.sort(rng.choice(n, size=min(self.calibration_queries, n), replace=False))
        q = self.embeddings[rows]
        exact = ExactSearch(self.embeddings).at_least(q, lo - MARGIN)  # rows >= lo - 2 MARGIN
        sims = [self.embeddings[e] @ qi for e, qi in zip(exact, q)]
        wanted = [e[(s >= lo - MARGIN) & (s <= hi)] for e, s in zip(exact, sims)]
        total = sum(len(w) for w in wanted)
        candidates = [self.fixed_nprobe] if self.fixed_nprobe else []
        p = 1
        while p < self.nlist:
            candidates.append(p)
            p *= 2
        candidates.append(self.nlist)
        result = (self.nlist, 1.0)
        for nprobe in candidates:
            found = self._search(q, lo - MARGIN, nprobe)
            hit = sum(len(np.intersect1d(w, f, assume_unique=True)) for w, f in zip(wanted, found))
            recall = hit / total if total else 1.0
            if self.fixed_nprobe or recall >= self.target_recall:
                result = (int(nprobe), float(recall))
                break
        self._calibrated[key] = result
        return result

    def at_least(self, queries: np.ndarray, lo: float, hi: float | None = None) -> list[np.ndarray]:
        """Row ids (sorted) the index finds with similarity ``>= lo - MARGIN`` (``hi`` selects the calibration)."""
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        nprobe, _ = self.calibrate(lo, hi if hi is not None else 1.0)
        return self._search(q, lo - MARGIN, nprobe)


def make_search(embeddings: np.ndarray, kind: str = "auto", **options):
    """``"exact"``, ``"faiss"`` or ``"auto"`` (FAISS beyond :data:`EXACT_LIMIT` rows when installed)."""
    if kind not in ("auto", "exact", "faiss"):
        raise GalleryError(f"index {kind!r}: expected auto, exact or faiss")
    if kind == "auto":
        kind = "faiss" if len(embeddings) > EXACT_LIMIT and faiss_available() else "exact"
    if kind == "faiss":
        return FaissSearch(embeddings, **options)
    return ExactSearch(embeddings)
