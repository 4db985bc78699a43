"""Choosing triplets for a new annotation campaign (``perface triplets sample``).

Strategies (all seeded; candidate order within a triplet is random, so neither position is favoured):

* ``random``: anchor, ``a`` and ``b`` drawn uniformly from the images (three different images).
* ``stratified``: needs attribute labels. Anchors cycle through the attribute groups (e.g. gender x race x
  age band) in seeded order, so every group is equally represented as anchor; with probability
  ``within_group`` both candidates come from the anchor's own group (the fine-grained comparisons people
  disagree on), otherwise from all labelled images. ``stratum`` is the anchor's group, e.g.
  ``female/asian/20-29``. Unlabelled images are not used.
* ``uncertain``: needs a model with ``embed(paths) -> (N, D)`` L2-normalised float32 rows (cosine similarity =
  dot product, higher = more similar). A pool of ``pool_factor * n`` random triplets over at most
  ``max_images`` images is scored and the ``n`` whose two similarities ``s(anchor, a)`` and ``s(anchor, b)``
  are closest are kept: the model cannot tell which candidate is closer, so a human answer is most
  informative. Columns ``sim_a`` and ``sim_b`` record the model's similarities.

Output: a CSV/Parquet with ``anchor, a, b, source, stratum`` (paths relative to the dataset root) and,
optionally, Label Studio tasks (:func:`to_label_studio_tasks`) for the labeling config this project ships.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

import numpy as np
import pandas as pd

from perface.annotations.labels import age_band
from perface.annotations.paths import DEFAULT_URL_PREFIXES
from perface.annotations.progress import track

__all__ = ["IMAGE_EXTENSIONS", "STRATEGIES", "embed_images", "list_images", "sample_triplets",
           "to_label_studio_tasks"]

STRATEGIES = ("random", "stratified", "uncertain")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
_MAX_TRIES = 50


def list_images(folder: str | os.PathLike, root: str | os.PathLike) -> list[str]:
    """Image files under ``folder`` (recursive, by extension), sorted, as POSIX paths relative to ``root``."""
    folder, root = Path(folder).resolve(), Path(root).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(2, "No such folder", str(folder))
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            if name.lower().endswith(IMAGE_EXTENSIONS):
                out.append(Path(os.path.relpath(os.path.join(dirpath, name), root)).as_posix())
    return sorted(out)


def embed_images(model, paths: Sequence[str], batch_size: int = 64, progress: bool | None = None) -> np.ndarray:
    """``model.embed`` over ``paths`` in batches; rows re-normalised to unit length.

    Passes ``on_no_face="whole-image"`` when the model's ``embed`` accepts it (perface models do), so tightly
    cropped faces without a detectable face still get an embedding.
    """
    try:
        params = inspect.signature(model.embed).parameters
        kwargs = {"on_no_face": "whole-image"} if "on_no_face" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()) else {}
    except (TypeError, ValueError):
        kwargs = {}
    chunks = []
    starts = range(0, len(paths), batch_size)
    for start in track(starts, "embedding images", total=len(starts), enabled=progress):
        batch = list(paths[start:start + batch_size])
        emb = np.asarray(model.embed(batch, **kwargs), dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(batch):
            raise ValueError(f"model.embed returned shape {emb.shape} for {len(batch)} images; expected (N, D)")
        chunks.append(emb)
    emb = np.concatenate(chunks) if chunks else np.zeros((0, 1), np.float32)
    if not np.isfinite(emb).all():
        raise ValueError("model.embed returned non-finite values")
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.where(norms > 0, norms, 1.0)


def _ordered(rng: np.random.Generator, anchor, x, y):
    return (anchor, x, y) if rng.random() < 0.5 else (anchor, y, x)


def sample_triplets(images: Sequence[str], n: int, strategy: str = "random", seed: int = 0,
                    labels: pd.DataFrame | None = None, attributes: Sequence[str] = ("gender", "race", "age"),
                    model=None, root: str | os.PathLike | None = None, embeddings: np.ndarray | None = None,
                    pool_factor: int = 20, max_images: int = 2000, within_group: float = 0.5,
                    progress: bool | None = None) -> pd.DataFrame:
    """Pick ``n`` distinct triplets from ``images`` (root-relative paths) for human annotation.

    Args:
        labels: Root-relative ``path`` plus attribute columns (``stratified``).
        attributes: Attribute columns to stratify by; those absent from ``labels`` are ignored (``age`` in
            years or bands is banded).
        model: Object with ``embed(paths)`` (``uncertain``); given absolute paths under ``root``.
        embeddings: Precomputed ``(len(images), D)`` embeddings instead of ``model`` (``uncertain``).

    Raises:
        ValueError: unknown strategy, too few images, or missing labels / model.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if n < 1:
        raise ValueError(f"--n must be at least 1 (got {n})")
    images = list(dict.fromkeys(str(p) for p in images))
    if len(images) < 3:
        raise ValueError(f"need at least 3 images to form a triplet, found {len(images)}")
    rng = np.random.default_rng(seed)
    if strategy == "random":
        rows = _random(images, n, rng)
    elif strategy == "stratified":
        rows = _stratified(images, n, rng, labels, attributes, within_group)
    else:
        rows = _uncertain(images, n, rng, model, root, embeddings, pool_factor, max_images, progress)
    cols = ["anchor", "a", "b", "stratum"] + (["sim_a", "sim_b"] if strategy == "uncertain" else [])
    out = pd.DataFrame(rows, columns=cols)
    out.insert(3, "source", f"sample-{strategy}")
    return out


def _max_triplets(m: int) -> int:
    return m * (m - 1) * (m - 2) // 2


def _random(images: list[str], n: int, rng) -> list[tuple]:
    m = len(images)
    if n > _max_triplets(m):
        raise ValueError(f"only {_max_triplets(m)} distinct triplets exist over {m} images; ask for fewer")
    seen, rows, tries = set(), [], 0
    while len(rows) < n and tries < n * _MAX_TRIES:
        tries += 1
        i, j, k = (int(x) for x in rng.choice(m, size=3, replace=False))
        key = (i, frozenset((j, k)))
        if key in seen:
            continue
        seen.add(key)
        rows.append((images[i], images[j], images[k], ""))
    return rows


def _stratified(images, n, rng, labels, attributes, within_group) -> list[tuple]:
    if labels is None:
        raise ValueError("the stratified strategy needs attribute labels (--labels CSV with a path column)")
    attrs = [a for a in attributes if a in labels.columns]
    if not attrs:
        raise ValueError(f"the labels have none of the attributes {', '.join(attributes)} "
                         f"(columns: {', '.join(labels.columns)})")
    lab = labels.drop_duplicates("path").set_index("path")
    keys = {}
    for p in images:
        if p not in lab.index:
            continue
        values = []
        for a in attrs:
            v = lab.at[p, a]
            v = age_band(v) if a == "age" else (str(v).strip().lower() or None)
            values.append(v)
        if all(values):
            keys[p] = "/".join(values)
    if len(keys) < 3:
        raise ValueError(f"only {len(keys)} of the {len(images)} images have labels for {', '.join(attrs)}; "
                         "check that the label paths match the images (paths relative to the dataset root)")
    labelled = sorted(keys)
    groups: dict[str, list[str]] = {}
    for p in labelled:
        groups.setdefault(keys[p], []).append(p)
    order = sorted(groups)
    order = [order[i] for i in rng.permutation(len(order))]
    if n > _max_triplets(len(labelled)):
        raise ValueError(f"only {_max_triplets(len(labelled))} distinct triplets exist over {len(labelled)} "
                         "labelled images; ask for fewer")
    seen, rows, tries, g = set(), [], 0, 0
    while len(rows) < n and tries < n * _MAX_TRIES:
        tries += 1
        group = order[g % len(order)]
        members = groups[group]
        anchor = members[rng.integers(len(members))]
        pool = members if (len(members) >= 3 and rng.random() < within_group) else labelled
        x, y = (pool[int(i)] for i in rng.choice(len(pool), size=2, replace=False))
        if anchor in (x, y):
            continue
        key = (anchor, frozenset((x, y)))
        if key in seen:
            continue
        seen.add(key)
        rows.append(_ordered(rng, anchor, x, y) + (group,))
        g += 1
    return rows


def _uncertain(images, n, rng, model, root, embeddings, pool_factor, max_images, progress) -> list[tuple]:
    if embeddings is None:
        if model is None:
            raise ValueError("the uncertain strategy needs a model (--model NAME) or precomputed embeddings")
        if len(images) > max_images:
            keep = np.sort(rng.choice(len(images), size=max_images, replace=False))
            images = [images[i] for i in keep]
        base = Path(root) if root is not None else Path(".")
        emb = embed_images(model, [str(base / p) for p in images], progress=progress)
    else:
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(images):
            raise ValueError(f"embeddings have shape {emb.shape}; expected ({len(images)}, D)")
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = emb / np.where(norms > 0, norms, 1.0)
    m = len(images)
    if n > _max_triplets(m):
        raise ValueError(f"only {_max_triplets(m)} distinct triplets exist over {m} images; ask for fewer")
    pool_size = min(_max_triplets(m), max(n, n * pool_factor))
    pool = _random(list(range(m)), pool_size, rng)
    idx = np.asarray([(int(t[0]), int(t[1]), int(t[2])) for t in pool], dtype=np.int64)
    sim_a = np.einsum("ij,ij->i", emb[idx[:, 0]], emb[idx[:, 1]])
    sim_b = np.einsum("ij,ij->i", emb[idx[:, 0]], emb[idx[:, 2]])
    best = np.argsort(np.abs(sim_a - sim_b), kind="stable")[:n]
    return [(images[idx[t, 0]], images[idx[t, 1]], images[idx[t, 2]], "", float(sim_a[t]), float(sim_b[t]))
            for t in best]


def to_label_studio_tasks(triplets: pd.DataFrame, url_prefix: str = DEFAULT_URL_PREFIXES[0]) -> list[dict]:
    """Label Studio tasks for the shipped labeling config: ``data.anchor/a/b`` are ``url_prefix + path``.

    The default prefix is Label Studio's local-files serving (set ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true``
    and ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` to the dataset root). ``anchor_path`` / ``a_path`` /
    ``b_path`` keep the root-relative paths, so ingest maps answers back whatever the URL.
    """
    tasks = []
    for row in triplets.itertuples(index=False):
        data = {}
        for name in ("anchor", "a", "b"):
            path = getattr(row, name)
            data[name] = f"{url_prefix}{quote(str(path), safe='/')}"
            data[f"{name}_path"] = path
        stratum = getattr(row, "stratum", "")
        if isinstance(stratum, str) and stratum:
            data["stratum"] = stratum
        tasks.append({"data": data})
    return tasks
