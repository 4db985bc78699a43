"""``selection_report``: how a selection policy behaves over many targets.

* **confusion share**: of all selected (target, candidate) pairs, the share the identity model would take for
  the same person, i.e. identity similarity ``>= T``, recomputed here from the target's and the gallery's
  identity embeddings, independently of the selection code. It must be 0 at the threshold used.
* **own identity selected**: selections whose identity name is the target's (must be 0).
* the **distribution of selected perceptual similarities** (and of their identity similarities);
* the **no-candidate rate**: the share of usable targets for which no gallery identity qualified;
* exclusion counts per reason, summed over targets, and how many targets had no usable face.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from perface.selection.band import Band
from perface.selection.gallery import Gallery
from perface.selection.select import EXCLUSION_REASONS, Selection
from perface.selection.threshold import ReidThreshold

__all__ = ["distribution", "selection_report"]


def distribution(values, bins: int = 10, range_: tuple[float, float] | None = None) -> dict:
    """Summary statistics and a histogram of ``values`` (empty -> ``{"n": 0}``)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return {"n": 0}
    q = np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95])
    lo, hi = range_ if range_ else (float(v.min()), float(v.max()))
    if not hi > lo:
        hi = lo + 1e-9
    counts, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    return {"n": int(len(v)), "mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
            "p05": float(q[0]), "p25": float(q[1]), "median": float(q[2]), "p75": float(q[3]), "p95": float(q[4]),
            "max": float(v.max()),
            "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}}


def selection_report(selections: Sequence[Selection], gallery: Gallery, failures: Sequence[dict] = (),
                     per_target: bool = True, *, band: Band | None = None, threshold: ReidThreshold | None = None,
                     same: Sequence[str] = (), top: int | None = None) -> dict:
    """Aggregate :class:`Selection` results of many targets (see the module docstring).

    Args:
        selections: One per usable target (from :func:`perface.selection.select_many`).
        gallery: The gallery they were selected from.
        failures: Targets without a usable face (``{"path", "status", "error"}``), counted, not scored.
        per_target: Include one short row per target.
        band, threshold, same, top: The policy, reported when there is no selection to take it from.

    Returns:
        JSON-ready dict: ``n_targets``, ``n_usable``, ``unusable``, ``n_selections``, ``confusion``
        (``threshold``, ``confused``, ``share``), ``own_identity_selected``, ``no_candidate`` (``count``,
        ``rate``), ``selected_perceptual_similarity``, ``selected_identity_similarity``, ``qualified``,
        ``excluded``, ``band``, ``threshold``, ``same``, ``top``, ``gallery_size``, ``search`` and ``per_target``.
    """
    n_usable = len(selections)
    first = selections[0] if selections else None
    if first is not None:
        band, threshold, same, top = first.band, first.threshold, first.same, first.top
    t = threshold.value if threshold is not None else None
    perceptual, identity, confused, own, n_sel = [], [], 0, 0, 0
    excluded = dict.fromkeys(EXCLUSION_REASONS, 0)
    no_candidate = 0
    rows = []
    for sel in selections:
        tg = sel.target
        idx = np.array([c.row for c in sel.candidates], dtype=np.int64)
        if len(idx):
            # independent re-computation from the gallery, not the candidates' recorded values
            p = np.array([float(np.dot(gallery.perceptual[i].astype(np.float64), tg.perceptual.astype(np.float64)))
                          for i in idx])
            s = np.array([float(np.dot(gallery.identity[i].astype(np.float64),
                                       tg.identity_embedding.astype(np.float64))) for i in idx])
            perceptual.extend(p.tolist())
            identity.extend(s.tolist())
            confused += int((s >= sel.threshold.value).sum())
            own += sum(1 for c in sel.candidates if tg.identity is not None and c.identity == tg.identity)
            n_sel += len(idx)
        else:
            no_candidate += 1
        for k, v in sel.excluded.items():
            excluded[k] = excluded.get(k, 0) + int(v)
        if per_target:
            best = sel.candidates[0] if sel.candidates else None
            rows.append({"target": tg.name, "target_identity": tg.identity, "qualified": sel.qualified,
                         "candidates": len(sel.candidates), "best": best.identity if best else None,
                         "best_perceptual_similarity": best.perceptual_similarity if best else None})
    by_status: dict[str, int] = {}
    for f in failures:
        by_status[f.get("status", "error")] = by_status.get(f.get("status", "error"), 0) + 1
    report = {
        "n_targets": n_usable + len(failures),
        "n_usable": n_usable,
        "unusable": {"count": len(failures), "by_status": by_status, "files": [f.get("path") for f in failures]},
        "n_selections": n_sel,
        "confusion": {"threshold": t, "confused": confused, "share": (confused / n_sel) if n_sel else 0.0},
        "own_identity_selected": own,
        "no_candidate": {"count": no_candidate, "rate": (no_candidate / n_usable) if n_usable else None},
        "selected_perceptual_similarity": distribution(perceptual, range_=(band.lo, band.hi) if band else None),
        "selected_identity_similarity": distribution(identity),
        "qualified": distribution([s.qualified for s in selections]) if selections else {"n": 0},
        "excluded": excluded,
        "band": band.to_dict() if band else None,
        "threshold": threshold.to_dict() if threshold is not None else None,
        "same": list(same),
        "top": top,
        "gallery_size": len(gallery),
        "search": dict(first.search) if first else {},
    }
    if per_target:
        report["per_target"] = rows
    return report
