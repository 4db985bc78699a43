"""Evaluate face swaps: did the result take the source's identity, keep the target's pose and expression,
and look as sharp as the target? (``perface eval swap``)

Protocol, per row ``(source, target, result)`` (faces measured by :class:`~perface.evaluation.face_analysis.
FaceAnalyzer`: one detection per image, aligned per model):

* ``identity_similarity``: cosine of the identity model's (``id_model``, default ``base``) embeddings of
  source and result; ``identity_score_100 = 100 * max(0, cos)``, the cosine in percent as face-swap and
  face-similarity tables report it (negative cosines count as 0). Its range depends on the identity model:
  dlib's ResNet puts different people near 0.8-0.9 (its re-identification threshold is 0.922 at FAR 1e-3),
  ArcFace near 0-0.3, so compare scores only under one identity model.
* ``target_leakage``: identity cosine of target and result; ``identity_margin`` = identity_similarity -
  target_leakage (> 0: the result is closer to the source than to the target).
* ``id_retrieval_top1`` / ``top5``: each result is compared with every source identity (a ``source_identity``
  column when the file has one, else each distinct source image is an identity; an identity's similarity is
  its best image); hit when the row's own source identity ranks first / in the first five. Only computed
  when there are at least 2 source identities.
* ``perceptual_to_source`` / ``perceptual_to_target``: cosine of the PerFace model's (``model``) embeddings.
* ``pose_error_deg``: absolute yaw, pitch and roll difference between target and result
  (:func:`perface.face.pose.head_pose`); ``expression_error``: :func:`perface.face.pose.expression_distance`
  of result against target; ``attribute_score_100 = 100 * exp(-(mean(|d yaw|, |d pitch|, |d roll|) / 30 +
  expression_error / 0.1))``.
* ``clarity_ratio``: variance of the Laplacian of the result's chip divided by the target's (1 = as sharp).

Aggregates: ``{mean, std, median, ci95, n}`` per measure (``ci95``: percentile bootstrap of the mean, seeded).
A row whose source, target or result cannot be read or has no usable face is listed in ``unusable`` with the
reason and left out of every aggregate (``n`` vs ``n_total``).
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

__all__ = ["COLUMNS", "SUMMARY_KEYS", "SwapReport", "evaluate"]

COLUMNS = ("source", "target", "result")
#: Keys of ``summary`` (``pose_error_deg`` holds ``yaw``, ``pitch``, ``roll``).
SUMMARY_KEYS = ("identity_similarity", "identity_score_100", "target_leakage", "identity_margin", "id_retrieval_top1",
                "id_retrieval_top5", "perceptual_to_source", "perceptual_to_target", "pose_error_deg",
                "expression_error", "attribute_score_100", "clarity_ratio")


@dataclass
class SwapReport:
    """Result of :func:`evaluate`.

    Attributes:
        summary: ``{key: {mean, std, median, ci95, n}}`` for :data:`SUMMARY_KEYS` (``pose_error_deg``:
            ``{yaw: {...}, pitch: {...}, roll: {...}}``).
        rows: One flat dict per usable row (see README for the columns).
        unusable: ``[{row, source, target, result, reason}]``.
        info: Inputs and settings (``pairs``, ``root``, ``model``, ``id_model``, ``n``, ``n_total``, ...).
        records: ``{image name: FaceRecord}`` (thumbnails for contact sheets; not serialised).
    """

    summary: dict
    rows: list[dict]
    unusable: list[dict]
    info: dict
    records: dict[str, FaceRecord] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        """JSON-ready: ``{command, ..., summary, rows, unusable: {count, rows}}``."""
        return {"command": "swap", **self.info, "summary": self.summary, "rows": self.rows,
                "unusable": {"count": len(self.unusable), "rows": self.unusable}}


def _retrieval(rows: list[dict], records: dict[str, FaceRecord], identities: list[str]) -> tuple[list, int]:
    """Rank of each row's own source identity among all source identities (by best-image similarity)."""
    gallery: dict[str, list[np.ndarray]] = {}
    for row, ident in zip(rows, identities):
        rec = records[row["source"]]
        gallery.setdefault(ident, [])
        if not any(rec.embeddings["identity"] is e for e in gallery[ident]):
            gallery[ident].append(rec.embeddings["identity"])
    names = list(gallery)
    if len(names) < 2:
        return [None] * len(rows), len(names)
    mats = [np.stack(gallery[n]).astype(np.float64) for n in names]
    ranks = []
    for row, ident in zip(rows, identities):
        q = records[row["result"]].embeddings["identity"].astype(np.float64)
        scores = np.array([float((m @ q).max()) for m in mats])
        own = scores[names.index(ident)]
        ranks.append(int(1 + (scores > own).sum()))
    return ranks, len(names)


def evaluate(pairs: Any, root: str | os.PathLike | None = None, model: Any = "base", id_model: Any = "base",
             face: str | int = "largest", on_no_face: str = "skip", n_boot: int = 2000, seed: int = 0,
             batch_size: int = 32, detector: str = "hog", upsample: int = 0,
             progress: Callable[[int], None] | None = None) -> SwapReport:
    """Evaluate face swaps.

    Args:
        pairs: CSV/TSV/Parquet path or DataFrame with columns ``source,target,result`` (optional
            ``source_identity``); or the DataFrame of :func:`~perface.evaluation.face_analysis.rows_from_folders`.
        root: Folder relative paths start from (default: the pairs file's folder, or the working directory for
            DataFrames).
        model: The PerFace (perceptual) model: a name/path for :func:`perface.load` or a loaded model.
        id_model: The identity model (name/path or loaded), default ``base`` (dlib ResNet).
        face: Which face per image (``largest``, ``center``, index).
        on_no_face: ``skip`` (list the row as unusable), ``whole-image`` (tight crops) or ``error``.
        n_boot, seed: Bootstrap of the CIs.
        batch_size: Chips per network call.
        detector, upsample: Face detector settings for models loaded here.
        progress: Called with the number of images measured.

    Returns:
        :class:`SwapReport`.

    Raises:
        GeneratedEvalError: malformed pairs file or ``root`` not a folder. Rows without usable faces never raise
            (unless ``on_no_face="error"``): they are listed in ``unusable``; with none usable, every statistic
            has ``n`` 0.
    """
    table = read_rows(pairs, COLUMNS, optional=("source_identity",), what="pairs file",
                      allow_empty=not isinstance(pairs, (str, os.PathLike)))
    if root is None and isinstance(pairs, (str, os.PathLike)):
        root = Path(pairs).resolve().parent
    root_path = Path(root) if root is not None else None
    if root_path is not None and not root_path.is_dir():
        raise GeneratedEvalError(f"root {root}: not a folder")
    models = load_models(model, id_model, detector=detector, upsample=upsample)
    records = analyze_images(models, [*table["source"], *table["target"], *table["result"]], root_path, face,
                             on_no_face, batch_size, progress)
    rows, unusable, identities = [], [], []
    for i, r in table.iterrows():
        roles = {c: r[c] for c in COLUMNS}
        why = unusable_reason(roles, records)
        if why:
            unusable.append({"row": int(i), **roles, "reason": why})
            continue
        s, t, x = (records[r[c]] for c in COLUMNS)
        id_src = float(np.dot(s.embeddings["identity"], x.embeddings["identity"]))
        id_tgt = float(np.dot(t.embeddings["identity"], x.embeddings["identity"]))
        perr = pose_errors(t.pose, x.pose)
        expr = expression_error(t, x)
        row = {"row": int(i), **roles,
               "identity_similarity": id_src, "identity_score_100": identity_score_100(id_src),
               "target_leakage": id_tgt, "identity_margin": id_src - id_tgt,
               "id_retrieval_rank": None, "id_retrieval_top1": None, "id_retrieval_top5": None,
               "perceptual_to_source": float(np.dot(s.embeddings["perceptual"], x.embeddings["perceptual"])),
               "perceptual_to_target": float(np.dot(t.embeddings["perceptual"], x.embeddings["perceptual"])),
               **{f"target_{k}": float(getattr(t.pose, k)) for k in ("yaw", "pitch", "roll")},
               **{f"result_{k}": float(getattr(x.pose, k)) for k in ("yaw", "pitch", "roll")},
               **{f"{k}_error": v for k, v in perr.items()},
               "expression_error": expr, "attribute_score_100": attribute_score(perr, expr),
               "clarity_target": t.clarity, "clarity_result": x.clarity,
               "clarity_ratio": x.clarity / t.clarity if t.clarity and t.clarity > 0 else None}
        rows.append(row)
        identities.append(r["source_identity"] if "source_identity" in table.columns and r["source_identity"]
                          else r["source"])
    ranks, n_identities = _retrieval(rows, records, identities) if rows else ([], 0)
    for row, rank in zip(rows, ranks):
        if rank is not None:
            row.update(id_retrieval_rank=rank, id_retrieval_top1=rank == 1, id_retrieval_top5=rank <= 5)

    def stat(key: str) -> dict:
        return summarize([row[key] for row in rows if row[key] is not None], n_boot=n_boot, seed=seed)

    summary = {k: stat(k) for k in ("identity_similarity", "identity_score_100", "target_leakage", "identity_margin")}
    for k in ("id_retrieval_top1", "id_retrieval_top5"):
        summary[k] = summarize([float(row[k]) for row in rows if row[k] is not None], n_boot=n_boot, seed=seed)
        if n_identities < 2:
            summary[k]["reason"] = f"needs at least 2 source identities, the file has {n_identities}"
    summary.update({k: stat(k) for k in ("perceptual_to_source", "perceptual_to_target")})
    summary["pose_error_deg"] = {a: stat(f"{a}_error") for a in ("yaw", "pitch", "roll")}
    summary.update({k: stat(k) for k in ("expression_error", "attribute_score_100", "clarity_ratio")})
    info = {"pairs": os.fspath(pairs) if isinstance(pairs, (str, os.PathLike)) else "<DataFrame>",
            "root": None if root_path is None else str(root_path),
            "model": getattr(models["perceptual"], "name", str(model)),
            "id_model": getattr(models["identity"], "name", str(id_model)),
            "face": face, "on_no_face": on_no_face, "n": len(rows), "n_total": int(len(table)),
            "source_identities": n_identities}
    return SwapReport(summary, rows, unusable, info, records)
