"""Evaluate face swaps: did the result take the source's identity, keep the target's pose and expression,
and look as sharp as the target? (``perface eval swap``)

Protocol, per row ``(source, target, result)`` (faces measured by :class:`~perface.evaluation.face_analysis.
FaceAnalyzer`: one detection per image, aligned per model):

Inputs: a pairs file (CSV/TSV/Parquet) or DataFrame with columns ``source,target,result`` (optional
``source_identity``), or three folders matched by file name. Faces are found with the perceptual model's face
options (``face`` / ``on_no_face`` override them).

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
from functools import partial
from typing import Any, Callable, Mapping

import numpy as np

from perface.evaluation.face_analysis import (FaceAnalyzer, FaceRecord, analyze_images, check_bootstrap,
                                              column_summary, identity_score_100, load_models, model_info,
                                              preservation, preservation_summary, row_table, split_rows,
                                              summary_table, unusable_warnings)
from perface.progress import ProgressFactory

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
        info: Inputs and settings (``pairs``, ``folders``, ``root``, ``model``, ``id_model``, ``face_options``,
            ``n``, ``n_total``, ``source_identities``).
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

    def table(self) -> list[str]:
        """The text ``perface eval swap`` prints: a head line and the summary table."""
        i = self.info
        return [f"face swaps: {i['n']} of {i['n_total']} rows evaluated; identity model {i['id_model']}, perceptual "
                f"model {i['model']}; {i['source_identities']} source identities"] + summary_table(self.summary)

    def warnings(self) -> list[str]:
        """Lines about rows left out (for stderr)."""
        return unusable_warnings(self.unusable, self.info["n_total"])


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


def evaluate(pairs: Any = None, root: str | os.PathLike | None = None, model: Any = "base", id_model: Any = "base",
             *, folders: Mapping[str, str | os.PathLike | None] | None = None, face: str | int | None = None,
             on_no_face: str | None = None, n_boot: int = 2000, seed: int = 0, batch_size: int = 32,
             load: Callable[[str], Any] | None = None, progress: ProgressFactory | None = None) -> SwapReport:
    """Evaluate face swaps.

    Args:
        pairs: CSV/TSV/Parquet path or DataFrame with columns ``source,target,result`` (optional
            ``source_identity``).
        root: Folder the file's relative paths start from (default: :func:`perface.io.files.resolve_root`: the
            file's folder, its ``images/`` or the dataset root, whichever holds the images; for a DataFrame,
            None keeps the paths as given).
        model: The PerFace (perceptual) model: loaded, or a name/path for ``load``; its face options find faces.
        id_model: The identity model (loaded or name/path), default ``base`` (dlib ResNet).
        folders: ``{"source": DIR, "target": DIR, "result": DIR}`` instead of ``pairs``: rows matched by file
            name (the result folder's names define the rows).
        face, on_no_face: Override the perceptual model's choice of face (``largest``, ``center``, index) and
            no-face policy (``skip``: list the row as unusable, ``whole-image``: tight crops, ``error``).
        n_boot, seed: Bootstrap of the CIs (``n_boot`` >= 100).
        batch_size: Chips per network call.
        load: Loads model names (default :func:`perface.load`).
        progress: ``(label, total) -> advance`` progress-bar factory (:func:`perface.progress.bars`).

    Returns:
        :class:`SwapReport`.

    Raises:
        UsageError: both or neither of ``pairs`` and ``folders``.
        SettingsError: ``n_boot`` < 100, a bad face option or batch size, ``root`` not a folder.
        TableError, GeneratedEvalError, FileCollectionError: a malformed pairs file or bad folders. Rows without
            usable faces never raise (unless ``on_no_face="error"``): they are listed in ``unusable``; with none
            usable, every statistic has ``n`` 0.
    """
    table = row_table(pairs, folders, COLUMNS, optional=("source_identity",), root=root)
    check_bootstrap(n_boot)
    models = load_models(model, id_model, load)
    analyzer = FaceAnalyzer(models, face=face, on_no_face=on_no_face, batch_size=batch_size)
    frame = table.frame
    records = analyze_images(analyzer, [*frame["source"], *frame["target"], *frame["result"]], table.root, progress)
    usable, unusable = split_rows(frame, COLUMNS, records)
    rows, identities = [], []
    for i, roles, (s, t, x) in usable:
        id_src = float(np.dot(s.embeddings["identity"], x.embeddings["identity"]))
        id_tgt = float(np.dot(t.embeddings["identity"], x.embeddings["identity"]))
        rows.append({"row": i, **roles,
                     "identity_similarity": id_src, "identity_score_100": identity_score_100(id_src),
                     "target_leakage": id_tgt, "identity_margin": id_src - id_tgt,
                     "id_retrieval_rank": None, "id_retrieval_top1": None, "id_retrieval_top5": None,
                     "perceptual_to_source": float(np.dot(s.embeddings["perceptual"], x.embeddings["perceptual"])),
                     "perceptual_to_target": float(np.dot(t.embeddings["perceptual"], x.embeddings["perceptual"])),
                     **preservation(t, x, "target", "result")})
        ident = frame.at[i, "source_identity"] if "source_identity" in frame.columns else ""
        identities.append(ident or roles["source"])
    ranks, n_identities = _retrieval(rows, records, identities) if rows else ([], 0)
    for row, rank in zip(rows, ranks):
        if rank is not None:
            row.update(id_retrieval_rank=rank, id_retrieval_top1=rank == 1, id_retrieval_top5=rank <= 5)
    stat = partial(column_summary, rows, n_boot=n_boot, seed=seed)
    summary = {k: stat(k) for k in SUMMARY_KEYS[:6]}
    if n_identities < 2:
        for k in ("id_retrieval_top1", "id_retrieval_top5"):
            summary[k]["reason"] = f"needs at least 2 source identities, the file has {n_identities}"
    summary.update({k: stat(k) for k in ("perceptual_to_source", "perceptual_to_target")})
    summary.update(preservation_summary(rows, n_boot=n_boot, seed=seed))
    info = {**table.info(), **model_info(models, analyzer), "n": len(rows), "n_total": int(len(frame)),
            "source_identities": n_identities}
    return SwapReport(summary, rows, unusable, info, records)
