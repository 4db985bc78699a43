"""Evaluate anonymised faces: would the identity model still match each anonymised face to its original, and
how natural (similar-looking, same pose and expression) is it? (``perface eval anonymization``)

Inputs: a pairs file (CSV/TSV/Parquet) or DataFrame with columns ``original,anonymized``, or two folders
matched by file name. Per row ``(original, anonymized)``, measured as in :mod:`perface.evaluation.swap`:

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
from functools import partial
from typing import Any, Callable, Mapping

import numpy as np

from perface.errors import GeneratedEvalError, SelectionError
from perface.evaluation.face_analysis import (FaceAnalyzer, FaceRecord, analyze_images, check_bootstrap,
                                              column_summary, identity_score_100, load_models, model_info,
                                              preservation, preservation_summary, row_table, split_rows,
                                              summary_table, unusable_warnings)
from perface.progress import ProgressFactory
from perface.selection.threshold import ReidThreshold, default_lfw_pairs, reid_threshold

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

    def table(self) -> list[str]:
        """The text ``perface eval anonymization`` prints: the verdict and the summary table."""
        return [self.verdict] + summary_table(self.summary)

    def warnings(self) -> list[str]:
        """Lines about rows left out (for stderr)."""
        return unusable_warnings(self.unusable, self.info["n_total"])


def _threshold(threshold: float | ReidThreshold | None, id_model) -> ReidThreshold:
    if isinstance(threshold, ReidThreshold):
        return threshold
    if threshold is not None:
        return ReidThreshold.given(float(threshold), model=id_model.name)
    try:
        lfw_pairs, lfw_images = default_lfw_pairs()
    except SelectionError as exc:
        raise GeneratedEvalError(f"{str(exc).split(';')[0]}; set PERFACE_DATA to the shared data folder (with "
                                 "lfw/pairs.txt) or pass --threshold T") from None
    return reid_threshold(id_model, pairs=lfw_pairs, root=lfw_images)


def evaluate(pairs: Any = None, root: str | os.PathLike | None = None, model: Any = "base", id_model: Any = "base",
             *, threshold: float | ReidThreshold | None = None,
             folders: Mapping[str, str | os.PathLike | None] | None = None, face: str | int | None = None,
             on_no_face: str | None = None, n_boot: int = 2000, seed: int = 0, batch_size: int = 32,
             load: Callable[[str], Any] | None = None, progress: ProgressFactory | None = None) -> AnonymizationReport:
    """Evaluate anonymised faces against their originals.

    Args:
        pairs: CSV/TSV/Parquet path or DataFrame with columns ``original,anonymized``.
        root: Folder the file's relative paths start from (as :func:`perface.evaluation.swap.evaluate`).
        model, id_model: Perceptual and identity models (loaded, or names/paths for ``load``).
        threshold: The re-identification threshold: None measures (or reads from the cache) the identity
            model's T at FAR 1e-3 on ``$PERFACE_DATA/lfw/pairs.txt``; a float is taken as given; a
            :class:`~perface.selection.threshold.ReidThreshold` is used as is.
        folders: ``{"original": DIR, "anonymized": DIR}`` instead of ``pairs`` (matched by file name).
        face, on_no_face, n_boot, seed, batch_size, load, progress: as :func:`perface.evaluation.swap.evaluate`.

    Returns:
        :class:`AnonymizationReport`.

    Raises:
        UsageError, SettingsError, TableError, GeneratedEvalError, FileCollectionError: as
            :func:`perface.evaluation.swap.evaluate`; GeneratedEvalError also when T must be measured and
            ``$PERFACE_DATA`` has no LFW ``pairs.txt``.
    """
    table = row_table(pairs, folders, COLUMNS, root=root)
    check_bootstrap(n_boot)
    models = load_models(model, id_model, load)
    analyzer = FaceAnalyzer(models, face=face, on_no_face=on_no_face, batch_size=batch_size)
    t = _threshold(threshold, models["identity"])
    frame = table.frame
    records = analyze_images(analyzer, [*frame["original"], *frame["anonymized"]], table.root, progress)
    usable, unusable = split_rows(frame, COLUMNS, records)
    rows = []
    for i, roles, (o, a) in usable:
        cos = float(np.dot(o.embeddings["identity"], a.embeddings["identity"]))
        rows.append({"row": i, **roles, "identity_similarity": cos, "identity_score_100": identity_score_100(cos),
                     "reidentified": bool(cos >= t.value),
                     "perceptual_similarity": float(np.dot(o.embeddings["perceptual"], a.embeddings["perceptual"])),
                     **preservation(o, a, "original", "anonymized")})
    stat = partial(column_summary, rows, n_boot=n_boot, seed=seed)
    summary = {"reidentification_rate": stat("reidentified"), "threshold": t.to_dict(),
               **{k: stat(k) for k in ("identity_similarity", "identity_score_100", "perceptual_similarity")},
               **preservation_summary(rows, n_boot=n_boot, seed=seed)}
    n_re = sum(row["reidentified"] for row in rows)
    id_name = models["identity"].name
    verdict = (f"{n_re} of {len(rows)} anonymised faces ({100.0 * n_re / len(rows):.1f}%) would still be matched to "
               f"their original by {id_name} at {t.describe()}" if rows else
               f"no row could be evaluated ({len(unusable)} unusable)")
    if unusable and rows:
        verdict += f"; {len(unusable)} of {len(frame)} rows unusable"
    info = {**table.info(), **model_info(models, analyzer), "n": len(rows), "n_total": int(len(frame))}
    return AnonymizationReport(summary, rows, unusable, info, verdict, records)
