"""Attribute probes: how much gender, age, race ... a frozen embedding encodes.

Per label column, a linear probe is trained on the embeddings with stratified 5-fold cross-validation:

* categorical columns (gender, age group, race, ...): logistic regression on standardised embeddings;
  accuracy and balanced accuracy, mean +- std over folds, with the majority-class and uniform chance levels;
* a numeric column (age in years): ridge regression; mean absolute error +- std over folds, with the MAE of
  always predicting the training median as the baseline.

Only numpy, pandas and scikit-learn; no torch.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

__all__ = ["MAX_CLASSES", "is_numeric", "probe_attributes", "probe_categorical", "probe_numeric"]

#: Categorical columns with more distinct values than this (identities, file names) are not probed unless
#: named explicitly.
MAX_CLASSES = 50


def is_numeric(values: pd.Series) -> bool:
    """True if every non-empty value parses as a number and there are more than 2 distinct values."""
    v = values.astype(str).str.strip()
    v = v[v != ""]
    num = pd.to_numeric(v, errors="coerce")
    return len(v) > 0 and not num.isna().any() and num.nunique() > 2


def probe_categorical(x: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0, c: float = 1.0) -> dict:
    """Logistic-regression probe with stratified k-fold CV.

    Classes with fewer than ``folds`` examples cannot be stratified and are left out (reported in
    ``dropped_classes``).

    Returns:
        ``{"kind": "classification", "accuracy", "accuracy_std", "balanced_accuracy", "balanced_accuracy_std",
        "chance_majority", "chance_balanced", "n", "classes", "dropped_classes", "folds"}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(labels).astype(str)
    classes, counts = np.unique(y, return_counts=True)
    dropped = {str(k): int(n) for k, n in zip(classes, counts) if n < folds}
    keep = ~np.isin(y, list(dropped))
    x, y = np.asarray(x)[keep], y[keep]
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"need at least two classes with {folds}+ examples each, found {len(classes)}")
    accs, baccs = [], []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on tiny folds
            clf.fit(x[train], y[train])
        pred = clf.predict(x[test])
        accs.append(accuracy_score(y[test], pred))
        baccs.append(balanced_accuracy_score(y[test], pred))
    return {
        "kind": "classification",
        "accuracy": float(np.mean(accs)),
        "accuracy_std": float(np.std(accs)),
        "balanced_accuracy": float(np.mean(baccs)),
        "balanced_accuracy_std": float(np.std(baccs)),
        "chance_majority": float(counts.max() / counts.sum()),
        "chance_balanced": float(1.0 / len(classes)),
        "n": int(len(y)),
        "classes": {str(k): int(n) for k, n in zip(classes, counts)},
        "dropped_classes": dropped,
        "folds": folds,
    }


def probe_numeric(x: np.ndarray, values: np.ndarray, folds: int = 5, seed: int = 0, alpha: float = 1.0) -> dict:
    """Ridge-regression probe with k-fold CV (folds stratified by value quintile).

    Returns:
        ``{"kind": "regression", "mae", "mae_std", "baseline_mae", "n", "folds"}``; ``baseline_mae`` is the MAE
        of predicting the training folds' median.
    """
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(values, dtype=np.float64)
    x = np.asarray(x)
    bins = pd.qcut(y, q=min(5, len(np.unique(y))), labels=False, duplicates="drop")
    maes, base = [], []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, bins):
        reg = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
        reg.fit(x[train], y[train])
        maes.append(np.mean(np.abs(reg.predict(x[test]) - y[test])))
        base.append(np.mean(np.abs(np.median(y[train]) - y[test])))
    return {"kind": "regression", "mae": float(np.mean(maes)), "mae_std": float(np.std(maes)),
            "baseline_mae": float(np.mean(base)), "n": int(len(y)), "folds": folds}


def probe_attributes(embeddings: np.ndarray, labels: pd.DataFrame, columns: list[str] | None = None,
                     folds: int = 5, seed: int = 0, exclude: tuple[str, ...] = ("path",)) -> dict:
    """Probe every label column.

    Args:
        embeddings: (N, D) one row per row of ``labels``.
        labels: Label table (strings or numbers); empty cells are left out per column.
        columns: Columns to probe; None: every column except ``exclude`` (categorical columns with more than
            :data:`MAX_CLASSES` values are then skipped and listed under ``"skipped"``).
        folds: Cross-validation folds.
        seed: Fold shuffling seed.

    Returns:
        ``{column: probe result}`` (see :func:`probe_categorical` / :func:`probe_numeric`); a column that cannot
        be probed maps to ``{"kind": "skipped", "reason": ...}``.
    """
    x = np.asarray(embeddings)
    if len(x) != len(labels):
        raise ValueError(f"{len(x)} embeddings for {len(labels)} label rows")
    explicit = columns is not None
    columns = list(columns) if explicit else [c for c in labels.columns if c not in exclude]
    out: dict[str, dict] = {}
    for col in columns:
        values = labels[col].astype(str).str.strip()
        present = (values != "") & (values.str.lower() != "nan")
        xs, vs = x[present.to_numpy()], values[present]
        try:
            if is_numeric(vs):
                out[col] = probe_numeric(xs, pd.to_numeric(vs).to_numpy(), folds=folds, seed=seed)
            elif not explicit and vs.nunique() > MAX_CLASSES:
                out[col] = {"kind": "skipped", "reason": f"{vs.nunique()} distinct values (more than {MAX_CLASSES}); "
                                                         "name it with --column to probe it anyway"}
            else:
                out[col] = probe_categorical(xs, vs.to_numpy(), folds=folds, seed=seed)
        except ValueError as exc:
            out[col] = {"kind": "skipped", "reason": str(exc)}
    return out
