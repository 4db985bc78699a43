"""The canonical judgment and triplet formats: column names, dtypes, reading, writing and validation.

Two tables, each stored as CSV (UTF-8, header row) or Parquet (chosen by the file extension:
``.parquet`` / ``.pq`` is Parquet, anything else is CSV):

**Judgments** - one row per human answer:

================  ========  =========================================================================
column            required  meaning
================  ========  =========================================================================
``anchor``        yes       image path, relative to the dataset root
``a``             yes       first candidate image path
``b``             yes       second candidate image path
``choice``        yes       ``a`` or ``b``: which candidate looks more like the anchor
``annotator_id``  yes       who answered (any string)
``response_ms``   no        time taken for this answer, milliseconds
``timestamp``     no        when the answer was given (ISO 8601 string as the tool exported it)
``is_gold``       no        ``true`` if the triplet has a known correct answer (quality control)
``gold_choice``   no        that known answer, ``a`` or ``b`` (needed to score gold accuracy)
``split``         no        ``train`` / ``val`` / ``test`` where the source already assigns one
``source``        no        where the answer came from (``avfs``, ``label-studio``, ``mturk``, ...)
================  ========  =========================================================================

**Triplets** - one row per distinct (anchor, a, b), votes aggregated:

================  ========  =========================================================================
``anchor``        yes       image path, relative to the dataset root
``a``, ``b``      yes       candidate image paths
``n_a``, ``n_b``  no [*]_   number of judges who found ``a`` (``b``) more similar to the anchor
``p_a``           no [*]_   ``n_a / (n_a + n_b)``: share of judges who found ``a`` more similar
``split``         no        ``train`` / ``val`` / ``test``
``source``        no        e.g. ``avfs``, ``proxy-identity``, ``proxy-attribute``
``stratum``       no        the stratum the triplet was drawn from (for proxy triplets: which
                            attributes differ between anchor and ``b``, e.g. ``gender+age``)
================  ========  =========================================================================

.. [*] A triplet file needs ``p_a`` or both ``n_a`` and ``n_b``; ``anchor,a,b,p_a`` alone is a valid
   triplet file (evaluation sets use this form). Proxy triplets have no votes: ``n_a`` / ``n_b`` are empty
   and ``p_a`` is 1.0.

Image paths are POSIX-style and relative to a dataset root given separately (``root / path`` is the file).
Reading validates every row; the first bad row raises :class:`~perface.errors.AnnotationError` naming the
file and line (CSV: the line in the file, header = line 1; Parquet: ``row N``, 1-based).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from perface.errors import AnnotationError
from perface.io.tables import parse_bool
from perface.io.tables import read_table as _read_table
from perface.io.tables import where as _where
from perface.io.tables import write_table

__all__ = [
    "CHOICES",
    "JUDGMENT_COLUMNS",
    "JUDGMENT_REQUIRED",
    "SPLITS",
    "TRIPLET_COLUMNS",
    "TRIPLET_REQUIRED",
    "is_judgments_table",
    "read_judgments",
    "read_table",
    "read_triplets",
    "validate_judgments",
    "validate_triplets",
    "write_judgments",
    "write_table",
    "write_triplets",
]

#: Allowed values of ``choice`` / ``gold_choice``.
CHOICES = ("a", "b")
#: Allowed values of ``split``.
SPLITS = ("train", "val", "test")

JUDGMENT_REQUIRED = ("anchor", "a", "b", "choice", "annotator_id")
JUDGMENT_OPTIONAL = ("response_ms", "timestamp", "is_gold", "gold_choice", "split", "source")
JUDGMENT_COLUMNS = JUDGMENT_REQUIRED + JUDGMENT_OPTIONAL

TRIPLET_REQUIRED = ("anchor", "a", "b")
TRIPLET_OPTIONAL = ("n_a", "n_b", "p_a", "split", "source", "stratum")
TRIPLET_COLUMNS = TRIPLET_REQUIRED + TRIPLET_OPTIONAL

_STRING_COLUMNS = {"anchor", "a", "b", "choice", "annotator_id", "timestamp", "gold_choice", "split", "source",
                   "stratum"}
#: Tolerance when both p_a and n_a/n_b are given.
_P_TOL = 1e-6


def read_table(path: str | os.PathLike) -> tuple[pd.DataFrame, str]:
    """:func:`perface.io.tables.read_table` raising :class:`AnnotationError` (every column a string)."""
    return _read_table(path, error=AnnotationError, example="anchor,a,b,p_a")


def _require(frame: pd.DataFrame, path, columns: Iterable[str], what: str, example: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        found = ",".join(map(str, frame.columns)) or "(none)"
        raise AnnotationError(f"{path}:1: missing required column(s) {','.join(missing)} for a {what} file "
                              f"(found: {found}); the header must include {example}")


def _blank(value) -> bool:
    """Missing: None, NaN / NA, or an empty / 'nan' string."""
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return str(value).strip() in ("", "nan", "NaN", "<NA>", "None")


def _known_columns(frame: pd.DataFrame, columns, path, kind) -> pd.DataFrame:
    """The ``columns`` that ``frame`` has, string columns stripped (blanks -> ""), image paths checked."""
    out = pd.DataFrame(index=range(len(frame)))
    for col in columns:
        if col in frame.columns:
            out[col] = frame[col].to_numpy()
    for col in _STRING_COLUMNS & set(out.columns):
        out[col] = pd.Series(["" if _blank(v) else str(v).strip() for v in out[col]], dtype=object)
    _check_paths(out, path, kind)
    return out


def _check_paths(frame: pd.DataFrame, path, kind: str) -> None:
    for col in ("anchor", "a", "b"):
        empty = np.flatnonzero(frame[col].str.strip().eq("").to_numpy())
        if len(empty):
            raise AnnotationError(f"{_where(path, kind, int(empty[0]))}: empty '{col}' path (every row needs "
                                  "anchor, a and b image paths relative to the dataset root)")


def validate_judgments(frame: pd.DataFrame, path: str | os.PathLike = "<judgments>", kind: str = "csv"
                       ) -> pd.DataFrame:
    """Check a judgments table and return it in canonical column order and dtypes.

    String columns are stripped; ``choice`` / ``gold_choice`` are lower-cased; ``is_gold`` becomes bool and
    ``response_ms`` float (NaN when empty). Unknown extra columns are dropped.

    Raises:
        AnnotationError: missing columns or a bad value (names file and line, and the fix).
    """
    _require(frame, path, JUDGMENT_REQUIRED, "judgments", "anchor,a,b,choice,annotator_id")
    out = _known_columns(frame, JUDGMENT_COLUMNS, path, kind)
    out["choice"] = out["choice"].str.lower()
    bad = np.flatnonzero(~out["choice"].isin(CHOICES).to_numpy())
    if len(bad):
        i = int(bad[0])
        raise AnnotationError(f"{_where(path, kind, i)}: choice {out['choice'].iat[i]!r} is not 'a' or 'b' "
                              "(ingest raw exports with 'perface ingest', which writes such rows to a rejects file)")
    bad = np.flatnonzero(out["annotator_id"].eq("").to_numpy())
    if len(bad):
        raise AnnotationError(f"{_where(path, kind, int(bad[0]))}: empty annotator_id (every judgment needs the "
                              "id of who answered)")
    if "gold_choice" in out.columns:
        out["gold_choice"] = out["gold_choice"].str.lower()
        bad = np.flatnonzero(~out["gold_choice"].isin(CHOICES + ("",)).to_numpy())
        if len(bad):
            i = int(bad[0])
            raise AnnotationError(f"{_where(path, kind, i)}: gold_choice {out['gold_choice'].iat[i]!r} is not "
                                  "'a', 'b' or empty")
    if "is_gold" in out.columns:
        parsed = [v if isinstance(v, (bool, np.bool_)) else parse_bool(v, blank=False) for v in out["is_gold"]]
        bad = [i for i, v in enumerate(parsed) if v is None]
        if bad:
            raise AnnotationError(f"{_where(path, kind, bad[0])}: is_gold {out['is_gold'].iat[bad[0]]!r} is not "
                                  "true/false")
        out["is_gold"] = np.asarray(parsed, dtype=bool)
    if "response_ms" in out.columns:
        blank = np.asarray([_blank(v) for v in out["response_ms"]], dtype=bool)
        num = pd.to_numeric(pd.Series([np.nan if b else v for v, b in zip(out["response_ms"], blank)],
                                      dtype=object), errors="coerce")
        bad = np.flatnonzero((num.isna().to_numpy() & ~blank) | (num < 0).to_numpy())
        if len(bad):
            i = int(bad[0])
            raise AnnotationError(f"{_where(path, kind, i)}: response_ms {out['response_ms'].iat[i]!r} is not a "
                                  "non-negative number of milliseconds")
        out["response_ms"] = num.astype(float)
    if "split" in out.columns:
        _check_split(out, path, kind)
    return out


def _check_split(out: pd.DataFrame, path, kind: str) -> None:
    out["split"] = out["split"].str.lower()
    bad = np.flatnonzero(~out["split"].isin(SPLITS + ("",)).to_numpy())
    if len(bad):
        i = int(bad[0])
        raise AnnotationError(f"{_where(path, kind, i)}: split {out['split'].iat[i]!r} is not one of "
                              f"{', '.join(SPLITS)} (or empty)")


def validate_triplets(frame: pd.DataFrame, path: str | os.PathLike = "<triplets>", kind: str = "csv"
                      ) -> pd.DataFrame:
    """Check a triplets table and return it in canonical column order and dtypes.

    ``n_a`` / ``n_b`` become nullable integers (``Int64``), ``p_a`` float. When ``p_a`` is absent it is
    computed from the votes; when both are present they must agree.

    Raises:
        AnnotationError: missing columns or a bad value (names file and line, and the fix).
    """
    _require(frame, path, TRIPLET_REQUIRED, "triplets", "anchor,a,b and p_a (or n_a,n_b)")
    has_votes = "n_a" in frame.columns and "n_b" in frame.columns
    if "p_a" not in frame.columns and not has_votes:
        found = ",".join(map(str, frame.columns))
        raise AnnotationError(f"{path}:1: a triplets file needs a p_a column or both n_a and n_b (found: {found}); "
                              "add p_a = share of judges who found 'a' more similar")
    out = _known_columns(frame, TRIPLET_COLUMNS, path, kind)
    same = np.flatnonzero((out["anchor"].eq(out["a"]) | out["anchor"].eq(out["b"]) | out["a"].eq(out["b"]))
                          .to_numpy())
    if len(same):
        raise AnnotationError(f"{_where(path, kind, int(same[0]))}: the same image appears twice in one triplet "
                              "(anchor, a and b must be three different images)")
    for col in ("n_a", "n_b"):
        if col in out.columns:
            raw = pd.Series(["" if _blank(v) else str(v).strip() for v in out[col]], dtype=object)
            num = pd.to_numeric(raw.replace({"": np.nan}), errors="coerce")
            bad = np.flatnonzero(((num.isna() & raw.ne("")) | (num < 0)
                                  | (num.notna() & (num % 1 != 0))).to_numpy())
            if len(bad):
                i = int(bad[0])
                raise AnnotationError(f"{_where(path, kind, i)}: {col} {raw.iat[i]!r} is not a non-negative "
                                      "whole number of votes")
            out[col] = num.astype("Int64")
    if "p_a" in out.columns:
        raw = pd.Series(["" if _blank(v) else str(v).strip() for v in out["p_a"]], dtype=object)
        num = pd.to_numeric(raw.replace({"": np.nan}), errors="coerce")
        bad = np.flatnonzero((num.isna() | (num < 0) | (num > 1)).to_numpy())
        if has_votes:  # an empty p_a is fine where votes are given
            bad = np.array([i for i in bad if raw.iat[i] != ""], dtype=int)
        if len(bad):
            i = int(bad[0])
            raise AnnotationError(f"{_where(path, kind, i)}: p_a {raw.iat[i]!r} is not a number in [0, 1] "
                                  "(p_a = n_a / (n_a + n_b), the share of judges who found 'a' more similar)")
        out["p_a"] = num.astype(float)
    if has_votes:
        total = (out["n_a"] + out["n_b"]).astype("Float64")
        from_votes = (out["n_a"].astype("Float64") / total.where(total > 0)).astype(float).to_numpy()
        if "p_a" not in out.columns:
            out["p_a"] = from_votes
        else:
            given = out["p_a"].to_numpy()
            fill = np.isnan(given)
            out.loc[fill, "p_a"] = from_votes[fill]
            both = ~np.isnan(from_votes) & ~fill
            bad = np.flatnonzero(both & (np.abs(given - np.nan_to_num(from_votes)) > _P_TOL))
            if len(bad):
                i = int(bad[0])
                raise AnnotationError(f"{_where(path, kind, i)}: p_a {given[i]:g} does not equal n_a/(n_a+n_b) = "
                                      f"{from_votes[i]:g}; fix the votes or the share")
        missing = np.flatnonzero(np.isnan(out["p_a"].to_numpy()))
        if len(missing):
            raise AnnotationError(f"{_where(path, kind, int(missing[0]))}: no p_a and no votes (n_a + n_b = 0); "
                                  "drop the row or give p_a")
    if "split" in out.columns:
        _check_split(out, path, kind)
    return out[[c for c in TRIPLET_COLUMNS if c in out.columns]]


def read_judgments(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a canonical judgments file (CSV or Parquet)."""
    frame, kind = read_table(path)
    return validate_judgments(frame, path, kind)


def read_triplets(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a canonical triplets file (CSV or Parquet)."""
    frame, kind = read_table(path)
    return validate_triplets(frame, path, kind)


def is_judgments_table(columns: Iterable[str]) -> bool:
    """True if the columns look like a judgments table (it has ``choice`` and ``annotator_id``)."""
    cols = set(columns)
    return {"choice", "annotator_id"} <= cols


def _drop_empty_optional(frame: pd.DataFrame, required: tuple[str, ...]) -> pd.DataFrame:
    keep = []
    for col in frame.columns:
        if col in required:
            keep.append(col)
            continue
        values = frame[col]
        empty = values.isna() | values.astype(str).str.strip().isin(["", "nan", "<NA>", "None"])
        if not empty.all():
            keep.append(col)
    return frame[keep]


def write_judgments(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Validate and write judgments (canonical column order; all-empty optional columns left out)."""
    out = validate_judgments(frame.reset_index(drop=True), path="<judgments to write>")
    if "is_gold" in out.columns and not out["is_gold"].any():
        out = out.drop(columns="is_gold")
    return write_table(_drop_empty_optional(out, JUDGMENT_REQUIRED), path)


def write_triplets(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Validate and write triplets (canonical column order; all-empty optional columns left out)."""
    out = validate_triplets(frame.reset_index(drop=True), path="<triplets to write>")
    return write_table(_drop_empty_optional(out, TRIPLET_REQUIRED + ("p_a",)), path)
