"""What is in a judgments or triplets file (``perface triplets stats``): counts, agreement, the per-annotator
table and how often images repeat.

:func:`file_stats` returns the numbers as a JSON-ready dict; :func:`format_stats` turns that dict into the text
the command prints.

* **judgments** files: judgments, annotators, triplets (votes grouped as :func:`perface.annotations.aggregate`
  does), judgments per triplet, overall agreement (mean pairwise and Krippendorff's alpha, see
  :func:`perface.annotations.agreement`), gold judgments, counts per ``source`` / ``split`` and one row per
  annotator (:func:`perface.annotations.annotator_quality`);
* **triplets** files: triplets, mean ``p_a`` and the share of unanimous ones (``p_a`` 0 or 1), a ``p_a``
  histogram (bins of 0.2), votes per triplet where ``n_a`` / ``n_b`` are given, counts per ``source`` /
  ``stratum`` / ``split``;
* both: images (distinct paths in ``anchor``, ``a``, ``b``), how often each appears (min, median, mean, max),
  how many appear once, how many are anchors, and the five most repeated.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from perface.annotations.aggregate import aggregate, agreement, annotator_quality
from perface.annotations.schema import is_judgments_table, read_table, validate_judgments, validate_triplets

__all__ = ["ANNOTATOR_COLUMNS", "file_stats", "format_stats"]

#: Columns of the per-annotator table, in print order.
ANNOTATOR_COLUMNS = ("annotator_id", "n_judgments", "n_compared", "loo_agreement", "n_gold", "gold_accuracy")


def _repetition(frame: pd.DataFrame) -> dict:
    counts = pd.concat([frame["anchor"], frame["a"], frame["b"]]).value_counts()
    if not len(counts):
        return {"images": 0}
    values = counts.to_numpy()
    return {"images": int(len(counts)), "appearances_min": int(values.min()),
            "appearances_median": float(np.median(values)), "appearances_mean": float(values.mean()),
            "appearances_max": int(values.max()), "images_once": int((values == 1).sum()),
            "as_anchor": int(frame["anchor"].nunique()),
            "most_repeated": {str(k): int(v) for k, v in counts.head(5).items()}}


def _describe(values) -> dict:
    values = np.asarray(values, dtype=float)
    if not len(values):
        return {"n": 0}
    return {"n": int(len(values)), "min": float(values.min()), "median": float(np.median(values)),
            "mean": float(values.mean()), "max": float(values.max())}


def _histogram(p) -> dict:
    edges = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    counts, _ = np.histogram(p, bins=edges)
    return {f"{lo:.1f}-{hi:.1f}": int(c) for lo, hi, c in zip(edges[:-1], edges[1:], counts)}


def file_stats(path: str | os.PathLike) -> dict:
    """The numbers ``perface triplets stats`` prints, as a JSON-ready dict (see the module docstring).

    Args:
        path: A judgments or triplets file (CSV or Parquet); the kind is told by its columns.

    Returns:
        ``file``, ``kind`` (``judgments`` / ``triplets``), the counts above, ``images`` and, for judgments,
        ``agreement`` and ``per_annotator`` (one dict per annotator, most judgments first).

    Raises:
        AnnotationError: a malformed file (names the file and line).
        FileNotFoundError: no such file.
    """
    frame, kind = read_table(path)
    if is_judgments_table(frame.columns):
        j = validate_judgments(frame, path, kind)
        quality = annotator_quality(j)
        tri = aggregate(j)
        out = {"file": str(path), "kind": "judgments", "judgments": int(len(j)),
               "annotators": int(j["annotator_id"].nunique()), "triplets": int(len(tri)),
               "agreement": agreement(j), "judgments_per_triplet": _describe((tri["n_a"] + tri["n_b"]).to_numpy()),
               "images": _repetition(j)}
        if "is_gold" in j.columns:
            out["gold_judgments"] = int(j["is_gold"].sum())
        for col in ("source", "split"):
            if col in j.columns:
                out[f"by_{col}"] = {k or "(empty)": int(v) for k, v in j[col].value_counts().items()}
        ordered = quality.sort_values("n_judgments", ascending=False, kind="stable")
        out["per_annotator"] = [{"annotator_id": str(r.annotator_id), "n_judgments": int(r.n_judgments),
                                 "n_compared": int(r.n_compared), "loo_agreement": float(r.loo_agreement),
                                 "n_gold": int(r.n_gold), "gold_accuracy": float(r.gold_accuracy)}
                                for r in ordered.itertuples(index=False)]
        return out
    t = validate_triplets(frame, path, kind)
    p = t["p_a"].to_numpy(dtype=float)
    out = {"file": str(path), "kind": "triplets", "triplets": int(len(t)),
           "p_a": {"mean": float(np.mean(p)) if len(p) else float("nan"),
                   "unanimous_share": float(np.mean((p == 0) | (p == 1))) if len(p) else float("nan"),
                   "histogram": _histogram(p)},
           "images": _repetition(t)}
    if "n_a" in t.columns and t["n_a"].notna().any():
        votes = (t["n_a"] + t["n_b"]).dropna().to_numpy(dtype=float)
        out["votes_per_triplet"] = _describe(votes)
    for col in ("source", "stratum", "split"):
        if col in t.columns:
            out[f"by_{col}"] = {k or "(empty)": int(v) for k, v in t[col].value_counts().sort_index().items()}
    return out


def _fmt(value) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.3f}"
    return str(value)


def _describe_line(d: dict) -> str:
    if not d.get("n"):
        return "none"
    return f"min {d['min']:g} median {d['median']:g} mean {d['mean']:.2f} max {d['max']:g}"


def _annotator_table(rows: list[dict], total: int, width: int) -> str:
    table = Table(title=f"annotators ({len(rows)} of {total})", title_justify="left")
    for col in ANNOTATOR_COLUMNS:
        table.add_column(col, justify="left" if col == "annotator_id" else "right")
    for r in rows:
        table.add_row(str(r["annotator_id"]), str(r["n_judgments"]), str(r["n_compared"]),
                      _fmt(float(r["loo_agreement"])), str(r["n_gold"]), _fmt(float(r["gold_accuracy"])))
    buffer = io.StringIO()
    Console(file=buffer, width=width, highlight=False, soft_wrap=True, color_system=None).print(table)
    return buffer.getvalue().rstrip("\n")


def format_stats(info: dict, top: int = 20, width: int = 100) -> str:
    """The text of ``perface triplets stats`` for a :func:`file_stats` dict.

    Args:
        info: From :func:`file_stats`.
        top: Annotators listed in the table (0 = all).
        width: Characters per line of the annotator table.
    """
    lines = [f"{info['file']}: {info['kind']}"]
    if info["kind"] == "judgments":
        ag = info["agreement"]
        lines.append(f"judgments {info['judgments']}  annotators {info['annotators']}  triplets {info['triplets']}  "
                     f"with 2+ judgments {ag['n_multi']}")
        lines.append(f"judgments per triplet: {_describe_line(info['judgments_per_triplet'])}")
        lines.append(f"agreement: mean pairwise {_fmt(ag['mean_pairwise_agreement'])}  Krippendorff's alpha "
                     f"{_fmt(ag['krippendorff_alpha'])}")
        if "gold_judgments" in info:
            lines.append(f"gold judgments {info['gold_judgments']}")
    else:
        lines.append(f"triplets {info['triplets']}  mean p_a {_fmt(info['p_a']['mean'])}  unanimous "
                     f"{_fmt(info['p_a']['unanimous_share'])}")
        lines.append("p_a histogram: " + "  ".join(f"{k}: {v}" for k, v in info["p_a"]["histogram"].items()))
        if "votes_per_triplet" in info:
            lines.append(f"votes per triplet: {_describe_line(info['votes_per_triplet'])}")
    for key in ("by_source", "by_stratum", "by_split"):
        if key in info:
            lines.append(f"{key.replace('by_', '')}: " + "  ".join(f"{k} {v}" for k, v in info[key].items()))
    im = info["images"]
    if im.get("images"):
        lines.append(f"images {im['images']} (as anchor {im['as_anchor']}); appearances per image min "
                     f"{im['appearances_min']} median {im['appearances_median']:g} mean {im['appearances_mean']:.2f} "
                     f"max {im['appearances_max']}; {im['images_once']} appear once")
        lines.append("most repeated: " + ", ".join(f"{p} ({c})" for p, c in im["most_repeated"].items()))
    if info["kind"] == "judgments":
        rows = info["per_annotator"] if top == 0 else info["per_annotator"][:top]
        lines.append(_annotator_table(rows, len(info["per_annotator"]), width))
    return "\n".join(lines)

