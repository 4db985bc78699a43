"""Face verification metrics: same / different pairs scored by similarity (higher = more similar).

Conventions used throughout: a pair is *accepted* (called "same person") when its similarity is
``>= threshold``. FAR (false accept rate) is the share of different-person pairs accepted, TAR (true accept
rate) the share of same-person pairs accepted.

* :func:`threshold_at_far`: the lowest threshold whose FAR does not exceed a target.
* :func:`read_lfw_pairs` / :func:`read_pairs_csv`: the LFW ``pairs.txt`` protocol file and a plain CSV.
* :func:`verification_metrics`: 10-fold accuracy (threshold chosen on 9 folds, tested on the 10th), ROC AUC,
  TAR at FAR 1e-2 / 1e-3 and EER.

Only numpy, pandas and scikit-learn; no torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from perface.errors import PairsFormatError
from perface.io.tables import parse_bool, read_table

__all__ = [
    "FARS",
    "PairsFormatError",
    "best_threshold",
    "equal_error_rate",
    "fold_accuracy",
    "lfw_image_path",
    "read_lfw_pairs",
    "read_pairs",
    "read_pairs_csv",
    "tar_at_far",
    "threshold_at_far",
    "verification_metrics",
]

#: False accept rates at which TAR is reported.
FARS = (1e-2, 1e-3)


def _check(similarities, same) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(similarities, dtype=np.float64).ravel()
    y = np.asarray(same).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"similarities and same must have the same length, got {s.shape} and {y.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("similarities contain NaN or infinite values")
    return s, y


# --- thresholds --------------------------------------------------------------------------------------------
def threshold_at_far(similarities: np.ndarray, same: np.ndarray, far: float) -> float:
    """Lowest similarity threshold whose false accept rate is at most ``far``.

    Pairs with ``similarity >= threshold`` are accepted. With ``n`` different-person pairs, at most
    ``floor(far * n)`` of them are accepted at the returned threshold; lowering it any further would accept
    one more. The threshold is the next float above a different-person similarity, so it is never equal to
    one of them.

    Args:
        similarities: (N,) scores, higher = more similar.
        same: (N,) bool, True for same-person pairs (only the different-person pairs matter here).
        far: Target false accept rate in [0, 1].

    Returns:
        The threshold (float). ``-inf`` when ``far >= 1`` (accept everything).

    Raises:
        ValueError: no different-person pairs, mismatched lengths or ``far`` outside [0, 1].
    """
    s, y = _check(similarities, same)
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"far must be in [0, 1], got {far}")
    neg = np.sort(s[~y])[::-1]
    if len(neg) == 0:
        raise ValueError("threshold_at_far needs at least one different-person pair")
    k = int(np.floor(far * len(neg) + 1e-9))  # false accepts allowed
    if k >= len(neg):
        return float("-inf")
    return float(np.nextafter(neg[k], np.inf))


def tar_at_far(similarities: np.ndarray, same: np.ndarray, far: float) -> float:
    """True accept rate at :func:`threshold_at_far` (share of same-person pairs with similarity >= it)."""
    s, y = _check(similarities, same)
    if not y.any():
        raise ValueError("tar_at_far needs at least one same-person pair")
    return float(np.mean(s[y] >= threshold_at_far(s, y, far)))


def best_threshold(similarities: np.ndarray, same: np.ndarray) -> float:
    """Threshold with the highest accuracy on these pairs (midway between neighbouring scores; ties: the
    lowest such threshold)."""
    s, y = _check(similarities, same)
    if len(s) == 0:
        raise ValueError("best_threshold needs at least one pair")
    values = np.unique(s)
    # candidate thresholds: below everything, between neighbours, above everything
    cand = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2, [values[-1] + 1.0]])
    pos = np.sort(s[y])
    neg = np.sort(s[~y])
    tp = len(pos) - np.searchsorted(pos, cand, side="left")  # pos >= t
    tn = np.searchsorted(neg, cand, side="left")  # neg < t
    return float(cand[int(np.argmax(tp + tn))])


def accuracy_at(similarities: np.ndarray, same: np.ndarray, threshold: float) -> float:
    s, y = _check(similarities, same)
    return float(np.mean((s >= threshold) == y))


def fold_accuracy(similarities: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict:
    """Cross-validated accuracy: for each fold, the threshold is chosen on all other folds and tested on it.

    Returns:
        ``{"mean", "std", "per_fold", "thresholds"}``; ``std`` is the population std over folds (as LFW
        results are usually quoted).
    """
    s, y = _check(similarities, same)
    folds = np.asarray(folds).ravel()
    ids = np.unique(folds)
    if len(ids) < 2:
        raise ValueError("fold_accuracy needs at least two folds")
    accs, thresholds = [], []
    for f in ids:
        test = folds == f
        t = best_threshold(s[~test], y[~test])
        thresholds.append(t)
        accs.append(accuracy_at(s[test], y[test], t))
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "per_fold": [float(a) for a in accs],
            "thresholds": [float(t) for t in thresholds]}


def equal_error_rate(similarities: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """Equal error rate: where FAR equals FRR (1 - TAR) on the ROC curve, linearly interpolated.

    Returns:
        ``(eer, threshold)``.
    """
    from sklearn.metrics import roc_curve

    s, y = _check(similarities, same)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    fnr = 1.0 - tpr
    diff = fpr - fnr  # increases from -1 to +1 along the curve
    i = int(np.argmax(diff >= 0))
    if i == 0 or diff[i] == 0:
        j = i
        eer = (fpr[j] + fnr[j]) / 2
        return float(eer), float(thr[j])
    # interpolate between point i-1 (diff < 0) and i (diff >= 0)
    w = -diff[i - 1] / (diff[i] - diff[i - 1])
    eer = fpr[i - 1] + w * (fpr[i] - fpr[i - 1])
    t_hi, t_lo = thr[i - 1], thr[i]
    t = t_lo if not np.isfinite(t_hi) else t_hi + w * (t_lo - t_hi)
    return float(eer), float(t)


def default_folds(same: np.ndarray, n_folds: int = 10, seed: int = 0) -> np.ndarray:
    """Stratified fold labels 0..n_folds-1 for pairs without a protocol split."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(same).astype(bool)
    n_folds = max(2, min(n_folds, int(min(y.sum(), (~y).sum()))))
    folds = np.zeros(len(y), dtype=int)
    for f, (_, test) in enumerate(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(y, y)):
        folds[test] = f
    return folds


def verification_metrics(similarities: np.ndarray, same: np.ndarray, folds: np.ndarray | None = None,
                         fars: tuple[float, ...] = FARS) -> dict:
    """All verification metrics of one model on one set of pairs.

    Args:
        similarities: (N,) scores, higher = more similar.
        same: (N,) bool.
        folds: (N,) fold labels (LFW: 10 folds); None assigns 10 stratified folds (seed 0).
        fars: FARs for ``tar_at_far``.

    Returns:
        ``{"accuracy", "accuracy_std", "accuracy_per_fold", "thresholds", "auc", "eer", "eer_threshold",
        "tar_at_far": {"1e-02": tar, "1e-03": tar}, "far_thresholds": {...}, "n_pairs", "n_same",
        "n_different", "n_folds"}``. ``accuracy`` is the mean over folds.
    """
    from sklearn.metrics import roc_auc_score

    s, y = _check(similarities, same)
    if y.all() or not y.any():
        raise ValueError("verification needs both same-person and different-person pairs")
    if folds is None or len(np.unique(folds)) < 2:
        folds = default_folds(y)
    acc = fold_accuracy(s, y, folds)
    eer, eer_t = equal_error_rate(s, y)
    return {
        "accuracy": acc["mean"],
        "accuracy_std": acc["std"],
        "accuracy_per_fold": acc["per_fold"],
        "thresholds": acc["thresholds"],
        "auc": float(roc_auc_score(y, s)),
        "eer": eer,
        "eer_threshold": eer_t,
        "tar_at_far": {far_key(f): tar_at_far(s, y, f) for f in fars},
        "far_thresholds": {far_key(f): threshold_at_far(s, y, f) for f in fars},
        "n_pairs": int(len(s)),
        "n_same": int(y.sum()),
        "n_different": int((~y).sum()),
        "n_folds": int(len(np.unique(folds))),
    }


def far_key(far: float) -> str:
    """JSON key of a FAR: ``1e-02``, ``1e-03``."""
    return f"{far:.0e}"


# --- pairs files -----------------------------------------------------------------------------------------
@dataclass
class Pairs:
    """Pairs to verify: ``a``, ``b`` (paths relative to the image root), ``same`` (bool), ``fold`` (int)."""

    frame: pd.DataFrame
    source: str = ""
    protocol_folds: bool = field(default=False)

    def __len__(self) -> int:
        return len(self.frame)


def lfw_image_path(name: str, number: int) -> str:
    """``NAME/NAME_NNNN.jpg``: where LFW keeps image ``number`` of person ``name``."""
    return f"{name}/{name}_{int(number):04d}.jpg"


def read_lfw_pairs(path: str | os.PathLike) -> Pairs:
    """Parse an LFW ``pairs.txt`` (or ``pairsDevTrain.txt`` / ``pairsDevTest.txt``).

    The first line is ``FOLDS N`` (``10 300``: 10 folds, each N same-person then N different-person lines) or
    just ``N`` (one fold). Then one pair per line, tab or space separated: ``name n1 n2`` (same person) or
    ``name1 n1 name2 n2`` (different people).

    Returns:
        :class:`Pairs` with paths ``NAME/NAME_NNNN.jpg`` and the protocol's fold of every pair.

    Raises:
        PairsFormatError: a bad header, line or count (message names file and line).
        FileNotFoundError: missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise PairsFormatError(f"{path}: not a text file; expected LFW pairs.txt lines like 'NAME 1 2'") from None
    rows = [(i + 1, ln.split()) for i, ln in enumerate(lines) if ln.strip()]
    if not rows:
        raise PairsFormatError(f"{path}:1: empty file; an LFW pairs file starts with a header such as '10 300'")
    header_line, header = rows[0]
    try:
        numbers = [int(v) for v in header]
    except ValueError:
        numbers = []
    if len(numbers) == 2:
        n_folds, per_class = numbers
    elif len(numbers) == 1:
        n_folds, per_class = 1, numbers[0]
    else:
        raise PairsFormatError(f"{path}:{header_line}: header {' '.join(header)!r} is not 'FOLDS N' (e.g. '10 300') "
                               "or 'N'; is this an LFW pairs file? (use --format csv for a,b,same CSV)")
    if n_folds < 1 or per_class < 1:
        raise PairsFormatError(f"{path}:{header_line}: header must give positive counts, got {' '.join(header)!r}")
    body = rows[1:]
    expected = n_folds * 2 * per_class
    if len(body) != expected:
        raise PairsFormatError(f"{path}: header says {n_folds} fold(s) x 2 x {per_class} pairs = {expected} lines, "
                               f"found {len(body)}")
    a, b, same, fold = [], [], [], []
    for k, (line_no, f) in enumerate(body):
        try:
            if len(f) == 3:
                a.append(lfw_image_path(f[0], int(f[1])))
                b.append(lfw_image_path(f[0], int(f[2])))
                same.append(True)
            elif len(f) == 4:
                a.append(lfw_image_path(f[0], int(f[1])))
                b.append(lfw_image_path(f[2], int(f[3])))
                same.append(False)
            else:
                raise ValueError
        except ValueError:
            raise PairsFormatError(f"{path}:{line_no}: {' '.join(f)!r} is not 'NAME N1 N2' (same person) or "
                                   "'NAME1 N1 NAME2 N2' (different people)") from None
        fold.append(k // (2 * per_class))
        expect_same = (k % (2 * per_class)) < per_class
        if same[-1] != expect_same:
            kind = "same-person ('NAME N1 N2')" if expect_same else "different-person ('NAME1 N1 NAME2 N2')"
            raise PairsFormatError(f"{path}:{line_no}: expected a {kind} line here: each fold lists {per_class} "
                                   "same-person pairs, then as many different-person pairs")
    frame = pd.DataFrame({"a": a, "b": b, "same": np.asarray(same, bool), "fold": np.asarray(fold, int)})
    return Pairs(frame, source=str(path), protocol_folds=n_folds >= 2)


#: Extra words of the ``same`` column besides :func:`perface.io.tables.parse_bool`'s.
_SAME_WORDS, _DIFFERENT_WORDS = ("same",), ("different", "diff")


def read_pairs_csv(path: str | os.PathLike) -> Pairs:
    """Read a CSV with columns ``a,b,same`` (and optionally ``fold``).

    ``same`` is 1/0, true/false, yes/no or same/different. Without ``fold``, 10 stratified folds are assigned
    (seed 0).

    Raises:
        PairsFormatError: missing columns or bad values (message names file and line).
    """
    path = Path(path)
    frame, _ = read_table(path, error=PairsFormatError, example="a,b,same")
    missing = [c for c in ("a", "b", "same") if c not in frame.columns]
    if missing:
        raise PairsFormatError(f"{path}:1: missing column(s) {','.join(missing)} (found: {','.join(frame.columns)}); "
                               "a pairs CSV needs a,b,same (or use --format lfw for LFW pairs.txt)")
    if len(frame) == 0:
        raise PairsFormatError(f"{path}: no pairs below the header")
    for col in ("a", "b"):
        frame[col] = frame[col].str.strip()
        empty = np.flatnonzero(frame[col].eq("").to_numpy())
        if len(empty):
            raise PairsFormatError(f"{path}:{int(empty[0]) + 2}: empty '{col}' path")
    same = []
    for i, v in enumerate(frame["same"].str.strip().str.lower()):
        flag = parse_bool(v, true=_SAME_WORDS, false=_DIFFERENT_WORDS)
        if flag is None:
            raise PairsFormatError(f"{path}:{i + 2}: same {v!r} is not 1/0, true/false, yes/no or same/different")
        same.append(flag)
    out = pd.DataFrame({"a": frame["a"].to_numpy(), "b": frame["b"].to_numpy(), "same": np.asarray(same, bool)})
    protocol = "fold" in frame.columns
    if protocol:
        try:
            out["fold"] = frame["fold"].astype(int).to_numpy()
        except ValueError:
            raise PairsFormatError(f"{path}: column 'fold' must hold whole numbers") from None
    else:
        out["fold"] = default_folds(out["same"].to_numpy()) if out["same"].nunique() == 2 else 0
    return Pairs(out, source=str(path), protocol_folds=protocol)


def read_pairs(path: str | os.PathLike, format: str = "auto") -> Pairs:
    """Read pairs as ``"lfw"`` (pairs.txt), ``"csv"`` (a,b,same) or ``"auto"`` (by extension: .csv is CSV)."""
    if format == "auto":
        format = "csv" if str(path).lower().endswith(".csv") else "lfw"
    if format == "lfw":
        return read_lfw_pairs(path)
    if format == "csv":
        return read_pairs_csv(path)
    raise ValueError(f"format must be 'lfw', 'csv' or 'auto', got {format!r}")
