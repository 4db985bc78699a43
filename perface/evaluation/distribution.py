"""Is a set of generated faces distributed like real ones? (``perface eval distribution``)

On face-chip features (:mod:`perface.evaluation.features`) of a real and a fake set:

* **FD** (Fréchet distance): ``||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))`` with unbiased
  (ddof = 1) covariances; computed by clean-fid's ``cleanfid.fid.frechet_distance`` (Parmar et al., "On
  Aliased Resizing and Surprising Subtleties in GAN Evaluation", CVPR 2022), the reference implementation the
  FID literature now cites.
* **KID** (Bińkowski et al., 2018): the unbiased estimate of MMD^2 with the cubic polynomial kernel
  ``k(x, y) = (x . y / d + 1)^3``, over ``subsets`` (default 100) random subsets of ``m`` real and ``m`` fake
  samples drawn without replacement; ``mean`` and ``std`` over subsets, ``interval95`` = the 2.5 and 97.5
  percentiles of the per-subset values. Default ``m = min(1000, n_real // 2, n_fake // 2)``: at most 1,000
  as in clean-fid and torch-fidelity, and at most half of each set so that subsets differ and ``std`` means
  something (clean-fid uses ``min(1000, n)``, whose subsets are the whole set for sets under 1,000; both are
  unbiased estimates of the same MMD^2). Implemented here because clean-fid's ``kernel_distance`` returns no
  std and draws from numpy's global RNG; with the same draws it gives the same value (tested to 1e-6).
  Seeded (``numpy.random.RandomState(seed)``), so results repeat.
* **precision / recall** (Kynkäänniemi et al., 2019) with k = 3 and **density / coverage** (Naeem et al.,
  2020) with k = 5, from the authors' ``prdc`` package (``prdc.compute_prdc``).

``l2="on"`` L2-normalises every feature vector first, ``"both"`` reports both (the ``+l2`` entries), as in
Sarıtaş & Ekenel, "Analyzing the Feature Extractor Networks for Face Image Synthesis" (FG 2024): on the unit
sphere FD is at most 4. Too few samples for a metric is an :class:`~perface.errors.InsufficientSamplesError`.
Images without a usable face are listed per set (``unusable``) and left out (with ``on_no_face="error"``
they stop the run).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from perface.errors import FileCollectionError, GeneratedEvalError, InsufficientSamplesError, SettingsError
from perface.evaluation.evaluate import EmbedOptions
from perface.evaluation.features import Extractor, extract_features, make_extractor
from perface.io.files import collect_images
from perface.io.tables import text_table
from perface.loading import load as perface_load
from perface.progress import ProgressFactory

__all__ = ["DC_K", "DistributionReport", "L2_CHOICES", "PR_K", "compare", "evaluate", "frechet_distance", "kid",
           "list_images", "prdc_metrics"]

PR_K = 3
DC_K = 5
KID_MAX_SUBSET = 1000
#: ``l2`` values: off, on (features L2-normalised), both (adds ``LABEL+l2`` entries).
L2_CHOICES = ("off", "on", "both")


def _f(v) -> str:
    return "-" if v is None else f"{v:.4f}"


@dataclass
class DistributionReport:
    """Result of :func:`evaluate`: ``features`` (``{label: metrics}``) and ``info``."""

    features: dict
    info: dict

    def to_dict(self) -> dict:
        return {"command": "distribution", **self.info, "features": self.features}

    def table(self) -> list[str]:
        """The side-by-side text table ``perface eval distribution`` prints (one line per extractor)."""
        rows = [["features", "FD", "KID mean", "KID std", "precision", "recall", "density", "coverage", "real",
                 "fake"]]
        for label, m in self.features.items():
            rows.append([label, f"{m['fd']:.5g}", f"{m['kid']['mean']:.5g}", f"{m['kid']['std']:.3g}",
                         _f(m["precision"]), _f(m["recall"]), _f(m["density"]), _f(m["coverage"]), str(m["n_real"]),
                         str(m["n_fake"])])
        return text_table(rows)

    def warnings(self) -> list[str]:
        """Random weights, images left out, caveats of the metrics, and linked files (for stderr)."""
        out = list(self.info.get("notes", []))
        for label, m in self.features.items():
            if m["random_weights"]:
                out.append(f"{label}: random weights (--random-weights): these numbers check the plumbing only")
            for which in ("real", "fake"):
                u = m["unusable"][which]
                if u["count"]:
                    out.append(f"{label}: {u['count']} {which} image(s) without a usable face left out "
                               f"({', '.join(u['files'][:3])}{', ...' if u['count'] > 3 else ''}); "
                               "--on-no-face whole-image embeds tight crops whole")
            out += [f"{label}: {n}" for n in m["notes"]]
        return out


def list_images(source: Any, what: str = "images") -> tuple[list[str], list[str]]:
    """``(files, notes)``: the image files under a folder (:func:`perface.io.files.collect_images`: recursive,
    following links, each real file once) or the given list of paths, and notes on links (loops, duplicates).

    Raises:
        FileCollectionError: a missing folder or one without images.
    """
    if not isinstance(source, (str, os.PathLike)):
        return [os.fspath(p) for p in source], []
    if not Path(source).is_dir():
        raise FileCollectionError(f"{what} {os.fspath(source)}: not a folder; give a folder of face images")
    found = collect_images([source])
    return found.files, [f"{what}: {n}" for n in found.notes()]


def _quiet():
    """clean-fid and prdc print to stdout; keep stdout clean for --json."""
    return contextlib.redirect_stdout(io.StringIO())


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (clean-fid's implementation).

    Raises:
        InsufficientSamplesError: fewer than 2 samples in a set.
    """
    _need(real, fake, 2, "FD (a covariance needs 2 samples)")
    from cleanfid.fid import frechet_distance as cleanfid_fd

    r, f = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    with _quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's LinAlgWarning for singular covariances (n <= d): see compare()
        return float(cleanfid_fd(r.mean(0), np.cov(r, rowvar=False), f.mean(0), np.cov(f, rowvar=False)))


def kid(real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int | None = None, seed: int = 0) -> dict:
    """Kernel Inception Distance: unbiased MMD^2, cubic polynomial kernel, over random subsets.

    Args:
        real, fake: float (N, D) and (M, D) features.
        subsets: Number of subsets.
        subset_size: Samples per set per subset (default ``min(1000, N // 2, M // 2)``).
        seed: Seed of the subset draws (per subset: ``m`` fake indices, then ``m`` real indices, as clean-fid).

    Returns:
        ``{mean, std, interval95, subset_size, subsets}``.

    Raises:
        InsufficientSamplesError: ``subset_size`` larger than a set, or below 2.
    """
    r, f = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    n_r, n_f = len(r), len(f)
    m = min(KID_MAX_SUBSET, n_r // 2, n_f // 2) if subset_size is None else int(subset_size)
    if m > min(n_r, n_f):
        raise InsufficientSamplesError(f"KID subset size {m} is larger than the sets ({n_r} real, {n_f} fake usable "
                                       f"images); use --kid-subset-size {min(n_r, n_f)} or less, or more images")
    if m < 2:
        raise InsufficientSamplesError(f"KID needs subsets of at least 2 images per set; the sets have {n_r} real and "
                                       f"{n_f} fake usable images (default subset size: half the smaller set)")
    if subsets < 1:
        raise SettingsError(f"--kid-subsets {subsets}: use at least 1 subset")
    d = r.shape[1]
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for s in range(subsets):
        x = f[rng.choice(n_f, m, replace=False)]
        y = r[rng.choice(n_r, m, replace=False)]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        values[s] = ((a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m) / m
    lo, hi = np.percentile(values, [2.5, 97.5])
    return {"mean": float(values.mean()), "std": float(values.std()), "interval95": [float(lo), float(hi)],
            "subset_size": m, "subsets": int(subsets)}


def prdc_metrics(real: np.ndarray, fake: np.ndarray, pr_k: int = PR_K, dc_k: int = DC_K) -> dict:
    """Precision and recall at ``pr_k``, density and coverage at ``dc_k`` nearest neighbours (``prdc``).

    Raises:
        InsufficientSamplesError: a set has fewer than ``max(pr_k, dc_k) + 2`` samples (prdc's requirement).
    """
    k = max(pr_k, dc_k)
    # prdc partitions each row of the n x n distance matrix at index k + 1 (self + k neighbours + 1)
    _need(real, fake, k + 2, f"precision/recall (k={pr_k}) and density/coverage (k={dc_k})")
    from prdc import compute_prdc

    r, f = np.asarray(real, np.float32), np.asarray(fake, np.float32)
    with _quiet():
        pr = compute_prdc(r, f, nearest_k=pr_k)
        dc = pr if dc_k == pr_k else compute_prdc(r, f, nearest_k=dc_k)
    return {"precision": float(pr["precision"]), "recall": float(pr["recall"]),
            "density": float(dc["density"]), "coverage": float(dc["coverage"])}


def _need(real, fake, n: int, what: str) -> None:
    if len(real) < n or len(fake) < n:
        raise InsufficientSamplesError(f"{what} needs at least {n} usable images per set; got {len(real)} real and "
                                       f"{len(fake)} fake (images without a usable face are left out: add images, or "
                                       "use --on-no-face whole-image for tight face crops)")


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def compare(real: np.ndarray, fake: np.ndarray, kid_subsets: int = 100, kid_subset_size: int | None = None,
            seed: int = 0) -> dict:
    """All metrics for two feature matrices: ``{fd, kid, precision, recall, density, coverage, n_real, n_fake,
    notes}`` (``notes``: caveats, e.g. singular covariances when a set has no more samples than dimensions)."""
    notes = []
    d = int(np.shape(real)[1])
    if min(len(real), len(fake)) <= d:
        notes.append(f"FD: {min(len(real), len(fake))} samples for {d} feature dimensions: the covariances are "
                     "singular and FD is strongly biased; compare FDs only at equal set sizes, or use KID")
    return {"fd": frechet_distance(real, fake), "kid": kid(real, fake, kid_subsets, kid_subset_size, seed),
            **prdc_metrics(real, fake), "n_real": int(len(real)), "n_fake": int(len(fake)), "notes": notes}


def evaluate(real: Any, fake: Any, features: Sequence[Any] = ("base",), *, l2: str = "off", kid_subsets: int = 100,
             kid_subset_size: int | None = None, seed: int = 0, features_weights: Sequence[str] | None = None,
             random_weights: bool = False, face: str | int | None = None, on_no_face: str | None = None,
             cache: bool = True, batch_size: int = 32, workers: int | None = 0,
             load: Callable[[str], Any] | None = None, progress: ProgressFactory | None = None) -> DistributionReport:
    """Distribution metrics of fake vs real face images under one or more feature extractors.

    Args:
        real, fake: Folders (searched recursively) or lists of image paths.
        features: Extractor specs (``"base"``, a model file, ``"timm:NAME"``) or loaded models / extractors
            (:func:`perface.evaluation.features.make_extractor`); each gives one entry.
        l2: ``"off"``, ``"on"`` (L2-normalise features) or ``"both"`` (adds ``LABEL+l2`` entries).
        kid_subsets, kid_subset_size, seed: KID settings (see :func:`kid`).
        features_weights: Local weights files, one per ``timm:`` extractor, in order.
        random_weights: ``timm:`` extractors without weights are randomly initialised (plumbing checks only).
        face, on_no_face: Override each extractor's face options (None: the model's; timm extractors use the
            ``base`` chip model's); ``error`` stops at images without a usable face.
        cache, batch_size, workers: Embedding settings (``workers``: processes for decoding and detection, None
            one per core for large sets, see :func:`perface.face.batch.auto_workers`).
        load: Loads model names (default :func:`perface.load`); the ``base`` chip model of timm extractors too.
        progress: ``(label, total) -> advance`` progress-bar factory.

    Returns:
        :class:`DistributionReport`; ``features[label]`` = ``{fd, kid: {mean, std, interval95, subset_size,
        subsets}, precision, recall, density, coverage, n_real, n_fake, dim, l2_normalized, extractor,
        face_options, random_weights, unusable: {real, fake}, notes}``.

    Raises:
        SettingsError: a bad ``l2``, ``kid_subsets`` or ``batch_size``.
        FileCollectionError: ``real`` / ``fake`` is not a folder of images.
        GeneratedEvalError: ``features_weights`` do not match the ``timm:`` extractors.
        InsufficientSamplesError: too few usable images for a metric.
        FeatureExtractorError: an extractor cannot be created.
        NoFaceError: ``on_no_face="error"`` and an image without a usable face.
    """
    if l2 not in L2_CHOICES:
        raise SettingsError(f"l2 {l2!r} is not valid; use one of {', '.join(L2_CHOICES)}")
    if kid_subsets < 1:
        raise SettingsError(f"--kid-subsets {kid_subsets}: use at least 1 subset")
    if batch_size < 1:
        raise SettingsError(f"--batch-size {batch_size}: use at least 1")
    (real_files, real_notes), (fake_files, fake_notes) = list_images(real, "--real"), list_images(fake, "--fake")
    weights = list(features_weights or [])
    n_timm = sum(1 for s in features if isinstance(s, str) and s.startswith("timm:"))
    if weights and len(weights) != n_timm:
        raise GeneratedEvalError(f"{len(weights)} --features-weights file(s) for {n_timm} timm: extractor(s); give one "
                                 "per timm: extractor, in the same order")
    loaded: dict[str, Any] = {}

    def load_once(name: str):
        if name not in loaded:
            loaded[name] = (load or perface_load)(name)
        return loaded[name]

    options = EmbedOptions(face=face, on_no_face=on_no_face, batch_size=batch_size, workers=workers, cache=cache,
                           progress=progress)
    out: dict[str, dict] = {}
    for spec in features:
        w = weights.pop(0) if weights and isinstance(spec, str) and spec.startswith("timm:") else None
        ext = spec if isinstance(spec, Extractor) else make_extractor(spec, weights=w, random_weights=random_weights,
                                                                      load=load_once)
        sets = {which: extract_features(ext.model, files, options, f"{ext.label} {which}")
                for which, files in (("real", real_files), ("fake", fake_files))}
        for normalise in {"off": [False], "on": [True], "both": [False, True]}[l2]:
            r, f = sets["real"].features, sets["fake"].features
            if normalise:
                r, f = _l2(r), _l2(f)
            label = ext.label + ("+l2" if normalise and l2 == "both" else "")
            metrics = compare(r, f, kid_subsets, kid_subset_size, seed)
            metrics.update(dim=int(r.shape[1]), l2_normalized=normalise, extractor=ext.describe(),
                           face_options=ext.model.face_options.override(face=face, on_no_face=on_no_face).to_dict(),
                           random_weights=ext.random_weights,
                           unusable={"real": sets["real"].unusable, "fake": sets["fake"].unusable})
            out[label] = metrics
    info = {"real": os.fspath(real) if isinstance(real, (str, os.PathLike)) else f"<{len(real_files)} files>",
            "fake": os.fspath(fake) if isinstance(fake, (str, os.PathLike)) else f"<{len(fake_files)} files>",
            "n_real_total": len(real_files), "n_fake_total": len(fake_files), "l2": l2, "seed": seed,
            "pr_k": PR_K, "dc_k": DC_K, "notes": real_notes + fake_notes}
    return DistributionReport(out, info)
