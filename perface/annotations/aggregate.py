"""From judgments to triplets, and how much the judges agree.

**Votes.** Judgments on the same anchor and the same pair of candidates count as one triplet, whatever the
order in which the candidates were shown; the triplet keeps the orientation of its first judgment (input
order), ``n_a`` / ``n_b`` count the judges who picked ``a`` / ``b`` and ``p_a = n_a / (n_a + n_b)``.

**Per annotator** (:func:`annotator_quality`):

* ``loo_agreement``: share of the annotator's judgments that agree with the majority of the *other*
  annotators on the same triplet (leave-one-out). Triplets where the others tie or nobody else answered are
  not counted (``n_compared`` says how many were).
* ``gold_accuracy``: share of correct answers on gold triplets (``is_gold`` with a ``gold_choice``).

:func:`filter_annotators` drops every judgment of annotators below a threshold and reports them; annotators
with fewer than ``min_compared`` comparisons (or no gold answers) are kept, since there is no evidence.

**Overall** (:func:`agreement`): on triplets with two or more judgments,

* ``mean_pairwise_agreement``: for each triplet the share of pairs of judgments that agree,
  ``(n_a(n_a-1) + n_b(n_b-1)) / (m(m-1))`` with ``m = n_a + n_b``, averaged over triplets;
* ``krippendorff_alpha``: Krippendorff's alpha for nominal data, units = triplets, values = ``a`` / ``b`` in
  the triplet's orientation (that of its first judgment, as :func:`aggregate` writes it):
  ``1 - (n - 1) * sum_u n_a,u n_b,u / (m_u - 1) / (N_a N_b)`` with ``n`` the pairable values (judgments on
  triplets with two or more) and ``N_a``, ``N_b`` their totals. 1 = perfect agreement, 0 = chance level.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from perface.annotations.schema import read_judgments, write_table, write_triplets
from perface.errors import AnnotationError, SettingsError

__all__ = ["AggregateRun", "Filtered", "aggregate", "aggregate_file", "agreement", "annotator_quality",
           "check_threshold", "filter_and_aggregate", "filter_annotators", "vote_table"]


def vote_table(judgments: pd.DataFrame) -> pd.DataFrame:
    """Judgments with a canonical triplet key: adds ``lo``, ``hi`` (sorted candidates), ``vote_lo`` (bool)."""
    j = judgments.reset_index(drop=True)
    a = j["a"].astype(str).to_numpy()
    b = j["b"].astype(str).to_numpy()
    choice = j["choice"].astype(str).str.lower().to_numpy()
    lo = np.where(a <= b, a, b)
    hi = np.where(a <= b, b, a)
    chosen = np.where(choice == "a", a, b)
    out = j.copy()
    out["lo"], out["hi"], out["vote_lo"] = lo, hi, chosen == lo
    return out


def aggregate(judgments: pd.DataFrame) -> pd.DataFrame:
    """Votes -> one row per triplet: ``anchor, a, b, n_a, n_b, p_a`` (+ ``split``, ``source`` when present).

    ``split`` / ``source`` of a triplet are those of its first judgment.
    """
    if len(judgments) == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                             (("anchor", str), ("a", str), ("b", str), ("n_a", "Int64"), ("n_b", "Int64"),
                              ("p_a", float))})
    v = vote_table(judgments)
    v["_order"] = np.arange(len(v))
    keys = ["anchor", "lo", "hi"]
    grouped = v.groupby(keys, sort=False)
    first = grouped.first()
    n_lo = grouped["vote_lo"].sum().astype(int)
    n = grouped.size()
    out = first[["a", "b", "_order"]].copy()
    a_is_lo = (out["a"].astype(str) == out.index.get_level_values("lo")).to_numpy()
    n_lo_v, n_v = n_lo.to_numpy(), n.to_numpy()
    out["n_a"] = np.where(a_is_lo, n_lo_v, n_v - n_lo_v)
    out["n_b"] = n_v - out["n_a"].to_numpy()
    out["p_a"] = out["n_a"] / (out["n_a"] + out["n_b"])
    for col in ("split", "source"):
        if col in first.columns:
            out[col] = first[col].to_numpy()
    out = out.reset_index().sort_values("_order")
    cols = ["anchor", "a", "b", "n_a", "n_b", "p_a"] + [c for c in ("split", "source") if c in out.columns]
    out = out[cols].reset_index(drop=True)
    out["n_a"] = out["n_a"].astype("Int64")
    out["n_b"] = out["n_b"].astype("Int64")
    return out


def annotator_quality(judgments: pd.DataFrame) -> pd.DataFrame:
    """Per annotator: ``n_judgments, n_compared, loo_agreement, n_gold, gold_accuracy`` (NaN when undefined)."""
    cols = ["annotator_id", "n_judgments", "n_compared", "loo_agreement", "n_gold", "gold_accuracy"]
    if len(judgments) == 0:
        return pd.DataFrame(columns=cols)
    v = vote_table(judgments)
    keys = ["anchor", "lo", "hi"]
    v["vote_lo_i"] = v["vote_lo"].astype(int)
    tot = v.groupby(keys, sort=False)["vote_lo_i"].agg(["sum", "size"]).rename(columns={"sum": "t_lo", "size": "t_n"})
    own = v.groupby(keys + ["annotator_id"], sort=False)["vote_lo_i"].agg(["sum", "size"]).rename(
        columns={"sum": "u_lo", "size": "u_n"})
    v = v.join(tot, on=keys).join(own, on=keys + ["annotator_id"])
    others_lo = v["t_lo"] - v["u_lo"]
    others_hi = (v["t_n"] - v["u_n"]) - others_lo
    majority_lo = others_lo > others_hi
    compared = others_lo != others_hi
    agree = compared & (majority_lo == v["vote_lo"])
    v["_compared"], v["_agree"] = compared.astype(int), agree.astype(int)
    if "is_gold" in v.columns and "gold_choice" in v.columns:
        gold_choice = v["gold_choice"].fillna("").astype(str).str.lower()
        is_gold = v["is_gold"].fillna(False).astype(bool) & gold_choice.isin(["a", "b"])
        v["_gold"] = is_gold.astype(int)
        v["_gold_ok"] = (is_gold & (v["choice"].astype(str).str.lower() == gold_choice)).astype(int)
    else:
        v["_gold"], v["_gold_ok"] = 0, 0
    g = v.groupby("annotator_id", sort=True)
    out = pd.DataFrame({
        "n_judgments": g.size(),
        "n_compared": g["_compared"].sum(),
        "_agree": g["_agree"].sum(),
        "n_gold": g["_gold"].sum(),
        "_gold_ok": g["_gold_ok"].sum(),
    })
    out["loo_agreement"] = (out["_agree"] / out["n_compared"].where(out["n_compared"] > 0)).astype(float)
    out["gold_accuracy"] = (out["_gold_ok"] / out["n_gold"].where(out["n_gold"] > 0)).astype(float)
    return out.reset_index()[cols]


def filter_annotators(judgments: pd.DataFrame, *, min_agreement: float | None = None,
                      min_gold_accuracy: float | None = None, min_compared: int = 5,
                      quality: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop all judgments of annotators below a threshold.

    Args:
        min_agreement: Minimum leave-one-out agreement (only for annotators with ``n_compared >= min_compared``).
        min_gold_accuracy: Minimum gold accuracy (only for annotators with gold answers).
        quality: Precomputed :func:`annotator_quality` table.

    Returns:
        ``(kept_judgments, dropped)`` where ``dropped`` is the quality table of the dropped annotators plus a
        ``reason`` column.
    """
    q = annotator_quality(judgments) if quality is None else quality
    reasons = pd.Series("", index=q.index, dtype=object)
    if min_agreement is not None:
        low = (q["n_compared"] >= min_compared) & (q["loo_agreement"] < min_agreement)
        reasons[low] = reasons[low] + f"loo_agreement < {min_agreement:g}"
    if min_gold_accuracy is not None:
        low = (q["n_gold"] > 0) & (q["gold_accuracy"] < min_gold_accuracy)
        sep = reasons[low].map(lambda r: "; " if r else "")
        reasons[low] = reasons[low] + sep + f"gold_accuracy < {min_gold_accuracy:g}"
    dropped = q[reasons != ""].copy()
    dropped["reason"] = reasons[reasons != ""]
    kept = judgments[~judgments["annotator_id"].isin(set(dropped["annotator_id"]))].reset_index(drop=True)
    return kept, dropped.reset_index(drop=True)


def agreement(judgments: pd.DataFrame) -> dict:
    """Overall agreement: ``n_judgments, n_triplets, n_multi, mean_pairwise_agreement, krippendorff_alpha``.

    ``n_multi`` counts triplets with at least two judgments (only those carry agreement information); the two
    agreement numbers are NaN when there are none (alpha also when every judgment picks the same category).
    """
    out = {"n_judgments": int(len(judgments)), "n_triplets": 0, "n_multi": 0,
           "mean_pairwise_agreement": float("nan"), "krippendorff_alpha": float("nan")}
    if len(judgments) == 0:
        return out
    tri = aggregate(judgments)
    out["n_triplets"] = int(len(tri))
    m_all = (tri["n_a"] + tri["n_b"]).to_numpy(dtype=float)
    multi = m_all >= 2
    out["n_multi"] = int(multi.sum())
    if not multi.any():
        return out
    n_lo = tri["n_a"].to_numpy(dtype=float)[multi]
    m = m_all[multi]
    n_hi = m - n_lo
    per_item = (n_lo * (n_lo - 1) + n_hi * (n_hi - 1)) / (m * (m - 1))
    out["mean_pairwise_agreement"] = float(per_item.mean())
    n_total = m.sum()
    big_lo, big_hi = n_lo.sum(), n_hi.sum()
    if big_lo > 0 and big_hi > 0:
        disagree = (n_lo * n_hi / (m - 1)).sum()
        out["krippendorff_alpha"] = float(1.0 - (n_total - 1) * disagree / (big_lo * big_hi))
    return out


def check_threshold(name: str, value: float | None) -> None:
    """Raise :class:`SettingsError` unless ``value`` (a share such as ``--min-agreement``) is None or in [0, 1].

    Args:
        name: The option, e.g. ``"--min-agreement"``.
    """
    if value is not None and not 0.0 <= value <= 1.0:
        raise SettingsError(f"{name} must be between 0 and 1 (got {value:g})")


@dataclass
class Filtered:
    """Judgments after leaving out low-quality annotators, and the triplets they give.

    Attributes:
        quality: :func:`annotator_quality` of all judgments.
        judgments: The judgments kept.
        dropped: Quality rows of the annotators left out, with ``reason`` (empty when no threshold was given).
        triplets: :func:`aggregate` of the kept judgments.
        thresholds: Whether any threshold was given.
    """

    quality: pd.DataFrame
    judgments: pd.DataFrame
    dropped: pd.DataFrame
    triplets: pd.DataFrame
    thresholds: bool = False


def filter_and_aggregate(judgments: pd.DataFrame, *, min_agreement: float | None = None,
                         min_gold_accuracy: float | None = None, min_compared: int = 5) -> Filtered:
    """:func:`annotator_quality`, :func:`filter_annotators` (when a threshold is given) and :func:`aggregate`.

    Raises:
        SettingsError: a threshold outside [0, 1].
    """
    check_threshold("--min-agreement", min_agreement)
    check_threshold("--min-gold-accuracy", min_gold_accuracy)
    quality = annotator_quality(judgments)
    thresholds = min_agreement is not None or min_gold_accuracy is not None
    kept, dropped = filter_annotators(judgments, min_agreement=min_agreement, min_gold_accuracy=min_gold_accuracy,
                                      min_compared=min_compared, quality=quality)
    return Filtered(quality, kept, dropped, aggregate(kept), thresholds)


@dataclass
class AggregateRun:
    """What :func:`aggregate_file` read, kept and wrote."""

    source: Path
    out: Path
    n_judgments: int
    n_kept: int
    n_triplets: int
    dropped: pd.DataFrame = field(default_factory=pd.DataFrame)
    dropped_path: Path | None = None

    def lines(self) -> list[str]:
        """What ``perface triplets aggregate`` prints."""
        out = [f"judgments {self.n_judgments}  kept {self.n_kept}  triplets {self.n_triplets}  -> {self.out}"]
        if len(self.dropped):
            out.append(f"dropped {len(self.dropped)} annotator(s):")
            out += [f"  {row.annotator_id}: {row.reason}" for row in self.dropped.itertuples(index=False)]
        return out

    def to_dict(self) -> dict:
        return {"file": str(self.source), "out": str(self.out), "judgments": self.n_judgments, "kept": self.n_kept,
                "triplets": self.n_triplets,
                "dropped_annotators": [{"annotator_id": str(r.annotator_id), "reason": str(r.reason)}
                                       for r in self.dropped.itertuples(index=False)],
                "dropped_annotators_file": str(self.dropped_path) if self.dropped_path else None}


def aggregate_file(path: str | os.PathLike, out: str | os.PathLike, *, min_agreement: float | None = None,
                   min_gold_accuracy: float | None = None, min_compared: int = 5) -> AggregateRun:
    """Read a judgments file, leave out annotators below the thresholds, write the triplets.

    Args:
        path: Judgments file (CSV or Parquet).
        out: Triplets file to write (``.csv`` / ``.parquet``). The annotators left out are also written beside
            it, to ``<out stem>_dropped_annotators.csv``.
        min_agreement, min_gold_accuracy, min_compared: See :func:`filter_annotators`.

    Raises:
        SettingsError: a threshold outside [0, 1].
        AnnotationError: a malformed judgments file, or no judgment left after filtering.
    """
    check_threshold("--min-agreement", min_agreement)
    check_threshold("--min-gold-accuracy", min_gold_accuracy)
    judgments = read_judgments(path)
    result = filter_and_aggregate(judgments, min_agreement=min_agreement, min_gold_accuracy=min_gold_accuracy,
                                  min_compared=min_compared)
    if not len(result.triplets):
        raise AnnotationError(f"no judgments left in {path} after filtering; lower the thresholds")
    out = Path(out)
    write_triplets(result.triplets, out)
    dropped_path = None
    if len(result.dropped):
        dropped_path = write_table(result.dropped, out.with_name(out.stem + "_dropped_annotators.csv"))
    return AggregateRun(Path(path), out, len(judgments), len(result.judgments), len(result.triplets),
                        result.dropped, dropped_path)
