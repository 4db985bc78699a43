"""Evaluate anonymised faces: would the identity model still match each anonymised face to its original, and
how natural (similar-looking, same pose and expression) is it? (``perface eval anonymization``)

Per row ``(original, anonymized)``, measured as in :mod:`perface.evaluation.swap`:

* ``identity_similarity``: identity-model cosine of original and anonymised face; the row is
  **re-identified** when it is ``>= T``, T being the identity model's re-identification threshold
  (:func:`perface.selection.threshold.reid_threshold`: its threshold at FAR 1e-3 on LFW ``pairs.txt``, the
  same T ``perface select`` uses; or a threshold given by hand);
* ``identity_score_100 = 100 * max(0, cos)``;
* ``perceptual_similarity``: the PerFace model's cosine of the two faces (naturalness: high = looks alike);
* ``pose_error_deg``, ``expression_error``, ``attribute_score_100``, ``clarity_ratio`` (anonymised / original)
  as for swaps.

``summary`` holds ``reidentification_rate`` (mean of the per-row 0/1 with bootstrap CI), ``threshold`` (the
:class:`~perface.selection.threshold.ReidThreshold` as a dict) and ``{mean, std, median, ci95, n}`` for
every measure above; ``verdict`` is one line per file. Unusable rows are listed with the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from perface.errors import GeneratedEvalError
from perface.evaluation.face_analysis import (FaceRecord, analyze_images, attribute_score, expression_error,
                                              identity_score_100, load_models, pose_errors, read_rows, summarize,
                                              unusable_reason)

__all__ = ["AnonymizationReport", "COLUMNS", "evaluate"]

COLUMNS = ("original", "anonymized")


@dataclass
class AnonymizationReport:
    """Result of :func:`evaluate` (``summary``, ``rows``, ``unusable``, ``info`` and ``verdict``)."""

    summary: dict
    rows: list[dict]
    unusable: list[dict]
    info: dict
    verdict: str
    records: dict[str, FaceRecord] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return {"command": "anonymization", **self.info, "verdict": self.verdict, "summary": self.summary,
                "rows": self.rows, "unusable": {"count": len(self.unusable), "rows": self.unusable}}


def evaluate(pairs: Any, root: str | os.PathLike | None = None, model: Any = "base", id_model: Any = "base",
             threshold: float | Any | None = None, face: str | int = "largest", on_no_face: str = "skip",
             n_boot: int = 2000, seed: int = 0, batch_size: int = 32, detector: str = "hog", upsample: int = 0,
             progress: Callable[[int], None] | None = None) -> AnonymizationReport:
    """Evaluate anonymised faces against their originals.

    Args:
        pairs: CSV/TSV/Parquet path or DataFrame with columns ``original,anonymized``.
        root: Folder relative paths start from (default: the pairs file's folder).
        model, id_model: Perceptual and identity models (names/paths or loaded models).
        threshold: The re-identification threshold: None measures (or reads from the cache) the identity
            model's T at FAR 1e-3 on ``$PERFACE_DATA/lfw/pairs.txt``; a float is taken as given; a
            :class:`~perface.selection.threshold.ReidThreshold` is used as is.
        face, on_no_face, n_boot, seed, batch_size, detector, upsample, progress: as
            :func:`perface.evaluation.swap.evaluate`.

    Returns:
        :class:`AnonymizationReport`.
    """
    from perface.errors import SelectionError
    from perface.selection.threshold import ReidThreshold, default_lfw_pairs, reid_threshold

    table = read_rows(pairs, COLUMNS, what="pairs file",
                      allow_empty=not isinstance(pairs, (str, os.PathLike)))
    if root is None and isinstance(pairs, (str, os.PathLike)):
        root = Path(pairs).resolve().parent
    root_path = Path(root) if root is not None else None
    if root_path is not None and not root_path.is_dir():
        raise GeneratedEvalError(f"root {root}: not a folder")
    models = load_models(model, id_model, detector=detector, upsample=upsample)
    if threshold is None:
        try:
            lfw_pairs, lfw_images = default_lfw_pairs()
        except SelectionError as exc:
            raise GeneratedEvalError(f"{str(exc).split(';')[0]}; set PERFACE_DATA to the shared data folder (with "
                                     "lfw/pairs.txt) or pass --threshold T") from None
        t = reid_threshold(models["identity"], pairs=lfw_pairs, root=lfw_images)
    elif isinstance(threshold, ReidThreshold):
        t = threshold
    else:
        t = ReidThreshold.given(float(threshold), model=getattr(models["identity"], "name", ""))
    records = analyze_images(models, [*table["original"], *table["anonymized"]], root_path, face, on_no_face,
                             batch_size, progress)
    rows, unusable = [], []
    for i, r in table.iterrows():
        roles = {c: r[c] for c in COLUMNS}
        why = unusable_reason(roles, records)
        if why:
            unusable.append({"row": int(i), **roles, "reason": why})
            continue
        o, a = records[r["original"]], records[r["anonymized"]]
        cos = float(np.dot(o.embeddings["identity"], a.embeddings["identity"]))
        perr = pose_errors(o.pose, a.pose)
        expr = expression_error(o, a)
        rows.append({"row": int(i), **roles, "identity_similarity": cos, "identity_score_100": identity_score_100(cos),
                     "reidentified": bool(cos >= t.value),
                     "perceptual_similarity": float(np.dot(o.embeddings["perceptual"], a.embeddings["perceptual"])),
                     **{f"original_{k}": float(getattr(o.pose, k)) for k in ("yaw", "pitch", "roll")},
                     **{f"anonymized_{k}": float(getattr(a.pose, k)) for k in ("yaw", "pitch", "roll")},
                     **{f"{k}_error": v for k, v in perr.items()},
                     "expression_error": expr, "attribute_score_100": attribute_score(perr, expr),
                     "clarity_original": o.clarity, "clarity_anonymized": a.clarity,
                     "clarity_ratio": a.clarity / o.clarity if o.clarity and o.clarity > 0 else None})

    def stat(key: str) -> dict:
        return summarize([row[key] for row in rows if row[key] is not None], n_boot=n_boot, seed=seed)

    summary = {"reidentification_rate": summarize([float(row["reidentified"]) for row in rows], n_boot=n_boot, seed=seed),
               "threshold": t.to_dict()}
    summary.update({k: stat(k) for k in ("identity_similarity", "identity_score_100", "perceptual_similarity")})
    summary["pose_error_deg"] = {a: stat(f"{a}_error") for a in ("yaw", "pitch", "roll")}
    summary.update({k: stat(k) for k in ("expression_error", "attribute_score_100", "clarity_ratio")})
    n_re = sum(row["reidentified"] for row in rows)
    id_name = getattr(models["identity"], "name", str(id_model))
    verdict = (f"{n_re} of {len(rows)} anonymised faces ({100.0 * n_re / len(rows):.1f}%) would still be matched to "
               f"their original by {id_name} at {t.describe()}" if rows else
               f"no row could be evaluated ({len(unusable)} unusable)")
    if unusable and rows:
        verdict += f"; {len(unusable)} of {len(table)} rows unusable"
    info = {"pairs": os.fspath(pairs) if isinstance(pairs, (str, os.PathLike)) else "<DataFrame>",
            "root": None if root_path is None else str(root_path),
            "model": getattr(models["perceptual"], "name", str(model)), "id_model": id_name,
            "face": face, "on_no_face": on_no_face, "n": len(rows), "n_total": int(len(table))}
    return AnonymizationReport(summary, rows, unusable, info, verdict, records)
