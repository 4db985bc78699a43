"""Run models over evaluation files: embed the images (through the embedding cache), report the unusable
ones, and compute the metrics of :mod:`~perface.evaluation.agreement`,
:mod:`~perface.evaluation.verification` and :mod:`~perface.evaluation.attributes`.

Images where no usable face was found (or that cannot be decoded) are never dropped silently: every result
carries ``unusable = {"count", "files", "by_status", "errors"}`` and says how many items were left out
(``n_total`` vs ``n``). With ``on_no_face="error"`` the first such image stops the evaluation instead.

Models are given as ``{label: model_or_loader}``; a loader (a callable taking no arguments) is called only
when that model's turn comes, so models are held one at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from perface.errors import NoFaceError, PerFaceError
from perface.face.batch import auto_workers
from perface.evaluation.agreement import N_BOOT, agreement, paired_difference, triplet_credit
from perface.evaluation.attributes import probe_attributes
from perface.evaluation.embedding_cache import embed_paths
from perface.evaluation.verification import Pairs, verification_metrics

__all__ = ["EmbedOptions", "ImageEmbeddings", "ModelRun", "embed_images", "evaluate_agreement",
           "evaluate_attributes", "evaluate_verification"]

#: Keys every model's metrics carry besides the command's own metrics.
RESERVED_KEYS = ("name", "n", "n_total", "unusable", "face_options")


@dataclass
class EmbedOptions:
    """How images become embeddings during evaluation.

    Which face is used and what happens without one are each model's
    :attr:`~perface.embedder.FaceEmbedder.face_options` unless ``face`` / ``on_no_face`` override them here.
    """

    face: str | int | None = None
    on_no_face: str | None = None
    batch_size: int = 32
    workers: int | None = 0  # None: one per core for big jobs (perface.face.batch.auto_workers)
    cache: bool = True
    progress: Callable[[str, int], Callable[[int], None] | None] | None = None  # (label, total) -> advance


@dataclass
class ImageEmbeddings:
    """Embeddings of a set of root-relative image paths by one model."""

    embeddings: dict[str, np.ndarray]
    unusable: dict[str, tuple[str, str]]  # path -> (status, error)

    def report(self) -> dict:
        files = sorted(self.unusable)
        by_status: dict[str, int] = {}
        for status, _ in self.unusable.values():
            by_status[status] = by_status.get(status, 0) + 1
        return {"count": len(files), "files": files, "by_status": by_status,
                "errors": {f: self.unusable[f][1] for f in files}}


@dataclass
class ModelRun:
    """One model's outcome: ``metrics`` (JSON-ready) and ``data`` (arrays for plots)."""

    label: str
    metrics: dict
    data: dict = field(default_factory=dict)


def _resolve(model_or_loader):
    return model_or_loader() if callable(model_or_loader) and not hasattr(model_or_loader, "embed_faces") \
        else model_or_loader


def embed_images(model, paths: Iterable[str], root: str | os.PathLike, options: EmbedOptions, label: str = ""
                 ) -> ImageEmbeddings:
    """Embed root-relative ``paths`` (each once) with ``model`` and its face options.

    Raises:
        NoFaceError: the model's ``on_no_face`` is ``"error"`` and some image has no usable face (all such images
            are counted in the message, the first few named).
    """
    unique = list(dict.fromkeys(paths))
    root = Path(root)
    files = [str(root / p) for p in unique]
    advance = options.progress(f"embedding {label or model.name}", len(files)) if options.progress else None
    effective = model.face_options.override(face=options.face, on_no_face=options.on_no_face)
    stop = effective.on_no_face == "error"
    workers = auto_workers(len(files), options.workers)
    results = embed_paths(model, files, face=effective.face, on_no_face="skip" if stop else effective.on_no_face,
                          batch_size=options.batch_size, workers=workers, cache=options.cache, progress=advance)
    emb, bad = {}, {}
    for rel, r in zip(unique, results):
        if r.status == "ok":
            emb[rel] = r.embedding
        else:
            bad[rel] = (r.status, " ".join(str(r.error).split()))
    if bad and stop:
        first = sorted(bad)[:3]
        raise NoFaceError(f"{len(bad)} of {len(unique)} images have no usable face (first: "
                          f"{'; '.join(f'{root / f}: {bad[f][0]}' for f in first)}); use --on-no-face skip to leave "
                          "them out (they are listed in the results) or --on-no-face whole-image for tight face crops")
    return ImageEmbeddings(emb, bad)


def _sims(emb: dict[str, np.ndarray], x: list[str], y: list[str]) -> np.ndarray:
    if not x:
        return np.zeros(0)
    a = np.stack([emb[p] for p in x]).astype(np.float64)
    b = np.stack([emb[p] for p in y]).astype(np.float64)
    return np.einsum("ij,ij->i", a, b)


# --- agreement ---------------------------------------------------------------------------------------------
def evaluate_agreement(models: Mapping[str, Any], triplets: pd.DataFrame, root: str | os.PathLike,
                       options: EmbedOptions | None = None, n_boot: int = N_BOOT, seed: int = 0
                       ) -> tuple[list[ModelRun], list[dict]]:
    """2AFC agreement of each model with ``triplets`` (canonical triplets table: anchor, a, b, p_a[, stratum]).

    Returns:
        ``(runs, comparisons)``: per model ``{"agreement", "ci95", "n", "ceiling", "by_stratum", "name",
        "n_total", "unusable"}``; ``comparisons`` holds, for every model after the first, the paired-bootstrap
        difference against the first (``baseline``) on the triplets both could score.
    """
    options = options or EmbedOptions()
    t = triplets.reset_index(drop=True)
    strata = t["stratum"].astype(str).to_numpy() if "stratum" in t.columns and (t["stratum"] != "").any() else None
    paths = list(dict.fromkeys([*t["anchor"], *t["a"], *t["b"]]))
    runs, credits = [], {}
    for label, m in models.items():
        model = _resolve(m)
        images = embed_images(model, paths, root, options, label)
        ok = np.array([all(p in images.embeddings for p in row) for row in zip(t["anchor"], t["a"], t["b"])], bool)
        if not ok.any():
            raise PerFaceError(f"model {label}: none of the {len(t)} triplets has three usable faces "
                               f"({images.report()['count']} images unusable); check --root or use --on-no-face whole-image")
        sub = t[ok]
        sa = _sims(images.embeddings, list(sub["anchor"]), list(sub["a"]))
        sb = _sims(images.embeddings, list(sub["anchor"]), list(sub["b"]))
        p = sub["p_a"].to_numpy(dtype=float)
        metrics = agreement(sa, sb, p, strata=None if strata is None else strata[ok], n_boot=n_boot, seed=seed)
        credit = np.full(len(t), np.nan)
        credit[ok] = triplet_credit(sa, sb, p)
        credits[label] = credit
        metrics.update(name=model.name, face_options=model.face_options.to_dict(), n_total=int(len(t)), unusable=images.report())
        runs.append(ModelRun(label, metrics, {"sim_a": sa, "sim_b": sb}))
        del model
    comparisons = []
    labels = list(models)
    for label in labels[1:]:
        both = ~np.isnan(credits[label]) & ~np.isnan(credits[labels[0]])
        diff = paired_difference(credits[label][both], credits[labels[0]][both], n_boot=n_boot, seed=seed,
                                 strata=None if strata is None else strata[both])
        comparisons.append({"model": label, "baseline": labels[0], **diff})
    return runs, comparisons


# --- verification ------------------------------------------------------------------------------------------
def evaluate_verification(models: Mapping[str, Any], pairs: Pairs, root: str | os.PathLike,
                          options: EmbedOptions | None = None) -> list[ModelRun]:
    """Verification metrics of each model on ``pairs`` (see :func:`verification_metrics`).

    Pairs with an unusable image are left out (``n_pairs`` vs ``n_total``); the protocol's folds are kept.
    """
    options = options or EmbedOptions()
    f = pairs.frame.reset_index(drop=True)
    paths = list(dict.fromkeys([*f["a"], *f["b"]]))
    runs = []
    for label, m in models.items():
        model = _resolve(m)
        images = embed_images(model, paths, root, options, label)
        ok = np.array([a in images.embeddings and b in images.embeddings for a, b in zip(f["a"], f["b"])], bool)
        sub = f[ok]
        if sub["same"].nunique() < 2:
            raise PerFaceError(f"model {label}: only {len(sub)} of {len(f)} pairs have two usable faces, not enough "
                               "same and different pairs to evaluate; check --root or use --on-no-face whole-image")
        sims = _sims(images.embeddings, list(sub["a"]), list(sub["b"]))
        same = sub["same"].to_numpy(bool)
        folds = sub["fold"].to_numpy() if "fold" in sub.columns else None
        metrics = verification_metrics(sims, same, folds)
        metrics.update(name=model.name, face_options=model.face_options.to_dict(), n=int(len(sub)), n_total=int(len(f)),
                       unusable=images.report())
        runs.append(ModelRun(label, metrics, {"similarities": sims, "same": same}))
        del model
    return runs


# --- attributes --------------------------------------------------------------------------------------------
def evaluate_attributes(models: Mapping[str, Any], labels: pd.DataFrame, root: str | os.PathLike,
                        columns: list[str] | None = None, options: EmbedOptions | None = None, folds: int = 5,
                        seed: int = 0, path_column: str = "path") -> list[ModelRun]:
    """Linear probes of each model's embeddings for every label column (see :func:`probe_attributes`).

    Returns:
        Per model: ``{column: probe result, ..., "name", "n", "n_total", "unusable"}``.
    """
    options = options or EmbedOptions()
    if path_column not in labels.columns:
        raise PerFaceError(f"the labels file has no '{path_column}' column (found: {', '.join(map(str, labels.columns))}); "
                           "it needs a path column with image paths relative to --root")
    cols = columns if columns is not None else [c for c in labels.columns if c != path_column]
    clash = [c for c in cols if c in RESERVED_KEYS]
    if clash:
        raise PerFaceError(f"label column(s) {', '.join(clash)} clash with result keys; rename them")
    missing = [c for c in cols if c not in labels.columns]
    if missing:
        raise PerFaceError(f"label column(s) {', '.join(missing)} not in the labels file (found: "
                           f"{', '.join(map(str, labels.columns))})")
    frame = labels.reset_index(drop=True)
    frame = frame[frame[path_column].astype(str).str.strip() != ""]
    paths = list(frame[path_column].astype(str))
    runs = []
    for label, m in models.items():
        model = _resolve(m)
        images = embed_images(model, paths, root, options, label)
        ok = np.array([p in images.embeddings for p in paths], bool)
        if ok.sum() < 2 * folds:
            raise PerFaceError(f"model {label}: only {int(ok.sum())} of {len(paths)} images have a usable face, too few "
                               f"for {folds}-fold probes; check --root or use --on-no-face whole-image")
        x = np.stack([images.embeddings[p] for p, k in zip(paths, ok) if k])
        metrics: dict = probe_attributes(x, frame[ok].reset_index(drop=True), columns=columns if columns else None,
                                         folds=folds, seed=seed, exclude=(path_column,))
        metrics.update(name=model.name, face_options=model.face_options.to_dict(), n=int(ok.sum()), n_total=int(len(paths)),
                       unusable=images.report())
        runs.append(ModelRun(label, metrics))
        del model
    return runs


# --- whole commands: an input file in, metrics, JSON payload and a table out -------------------------------
@dataclass
class EvalResult:
    """The outcome of one ``perface eval`` command.

    Attributes:
        command: ``"agreement"``, ``"verification"`` or ``"attributes"``.
        payload: The ``--json`` object: ``command``, the input file, ``root``, ``models`` ({label: metrics, each
            with its effective ``face_options``}) and, for agreement, ``comparisons``.
        runs: Per-model results (arrays for plots in ``data``).
        comparisons: Paired differences against the first model (agreement).
    """

    command: str
    payload: dict
    runs: list[ModelRun]
    comparisons: list[dict] = field(default_factory=list)

    def table(self) -> list[str]:
        """The text table ``perface eval`` prints."""
        rows = _TABLES[self.command](self.runs, self.comparisons)
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _agreement_rows(runs, comparisons) -> list[list[str]]:
    rows = [["model", "agreement", "95% CI", "triplets"]]
    for r in runs:
        m = r.metrics
        rows.append([r.label, f"{m['agreement']:.4f}", f"[{m['ci95'][0]:.4f}, {m['ci95'][1]:.4f}]",
                     f"{m['n']}/{m['n_total']}"])
        for s, ms in m["by_stratum"].items():
            rows.append([f"  {s}", f"{ms['agreement']:.4f}", f"[{ms['ci95'][0]:.4f}, {ms['ci95'][1]:.4f}]", str(ms["n"])])
    for c in comparisons:
        rows.append([f"{c['model']} - {c['baseline']}", f"{c['difference']:+.4f}",
                     f"[{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}]", str(c["n"])])
    return rows


def _verification_rows(runs, comparisons) -> list[list[str]]:
    fars = list(runs[0].metrics["tar_at_far"])
    rows = [["model", "accuracy", "AUC", "EER", *[f"TAR@FAR={f}" for f in fars], "pairs"]]
    for r in runs:
        m = r.metrics
        rows.append([r.label, f"{m['accuracy']:.4f}+-{m['accuracy_std']:.4f}", f"{m['auc']:.4f}", f"{m['eer']:.4f}",
                     *[f"{m['tar_at_far'][f]:.4f}" for f in fars], f"{m['n']}/{m['n_total']}"])
    return rows


def _attributes_rows(runs, comparisons) -> list[list[str]]:
    rows = [["model", "label", "probe", "result", "chance/baseline", "n"]]
    for r in runs:
        for col, v in r.metrics.items():
            if not isinstance(v, dict) or "kind" not in v:
                continue
            if v["kind"] == "classification":
                rows.append([r.label, col, "logistic", f"acc {v['accuracy']:.4f}+-{v['accuracy_std']:.4f} "
                             f"bal {v['balanced_accuracy']:.4f}+-{v['balanced_accuracy_std']:.4f}",
                             f"{v['chance_majority']:.4f}/{v['chance_balanced']:.4f}", str(v["n"])])
            elif v["kind"] == "regression":
                rows.append([r.label, col, "ridge", f"MAE {v['mae']:.3f}+-{v['mae_std']:.3f}",
                             f"{v['baseline_mae']:.3f}", str(v["n"])])
            else:
                rows.append([r.label, col, "skipped", v["reason"], "", ""])
    return rows


_TABLES = {"agreement": _agreement_rows, "verification": _verification_rows, "attributes": _attributes_rows}


def _payload(command: str, key: str, file, root: Path, runs: list[ModelRun]) -> dict:
    return {"command": command, key: str(file), "root": str(root), "models": {r.label: r.metrics for r in runs}}


def agreement_file(triplets: str | os.PathLike, models: Mapping[str, Any], root: str | os.PathLike | None = None,
                   split: str | None = None, options: EmbedOptions | None = None, n_boot: int = N_BOOT,
                   seed: int = 0) -> EvalResult:
    """``perface eval agreement``: agreement of each model with a triplets file (see :func:`evaluate_agreement`).

    Args:
        triplets: Canonical triplets file (CSV/Parquet: anchor, a, b, p_a[, stratum, split]).
        models: ``{label: model or loader}``; the first is the baseline of the comparisons.
        root: Folder the image paths are relative to (default: :func:`perface.io.files.resolve_root`).
        split: Only rows whose ``split`` column equals it (e.g. ``test``).

    Raises:
        SettingsError: ``n_boot`` < 100, ``split`` without a split column, or no triplets left.
        AnnotationError: a malformed triplets file.
    """
    from perface.annotations.schema import read_triplets
    from perface.errors import SettingsError
    from perface.io.files import resolve_root

    if n_boot < 100:
        raise SettingsError(f"--bootstrap {n_boot}: use at least 100 resamples")
    root = resolve_root(triplets, (), root) if root is not None else None  # a bad --root fails before reading
    frame = read_triplets(triplets)
    if split:
        if "split" not in frame.columns:
            raise SettingsError(f"--split {split}: {triplets} has no 'split' column")
        frame = frame[frame["split"] == split].reset_index(drop=True)
    if len(frame) == 0:
        raise SettingsError(f"{triplets}: no triplets in the file" + (f" with split {split}" if split else ""))
    root = resolve_root(triplets, list(frame["anchor"]), root)
    runs, comparisons = evaluate_agreement(models, frame, root, options, n_boot=n_boot, seed=seed)
    payload = {**_payload("agreement", "triplets", triplets, root, runs), "split": split, "comparisons": comparisons}
    return EvalResult("agreement", payload, runs, comparisons)


def verification_file(pairs: str | os.PathLike, models: Mapping[str, Any], root: str | os.PathLike | None = None,
                      format: str = "auto", options: EmbedOptions | None = None) -> EvalResult:
    """``perface eval verification``: LFW ``pairs.txt`` or CSV ``a,b,same[,fold]`` (see :func:`verification_metrics`).

    Raises:
        PairsFormatError: a malformed pairs file.
    """
    from perface.evaluation.verification import read_pairs
    from perface.io.files import resolve_root

    fmt = format if format != "auto" else ("csv" if str(pairs).lower().endswith(".csv") else "lfw")
    root = resolve_root(pairs, (), root) if root is not None else None  # a bad --root fails before reading
    table = read_pairs(pairs, fmt)
    root = resolve_root(pairs, list(table.frame["a"]), root)
    runs = evaluate_verification(models, table, root, options)
    payload = {**_payload("verification", "pairs", pairs, root, runs), "format": fmt}
    return EvalResult("verification", payload, runs)


def attributes_file(labels: str | os.PathLike, models: Mapping[str, Any], root: str | os.PathLike | None = None,
                    columns: list[str] | None = None, options: EmbedOptions | None = None, folds: int = 5,
                    seed: int = 0) -> EvalResult:
    """``perface eval attributes``: linear probes of each model for the columns of a label file.

    Raises:
        SettingsError: ``folds`` < 2.
        LabelFileError: a malformed label file.
    """
    from perface.errors import SettingsError
    from perface.io.labels import read_labels

    if folds < 2:
        raise SettingsError(f"--folds {folds}: use at least 2")
    table = read_labels(labels, root)
    runs = evaluate_attributes(models, table.frame, table.root, columns=columns, options=options, folds=folds,
                               seed=seed)
    return EvalResult("attributes", _payload("attributes", "labels", labels, table.root, runs), runs)
