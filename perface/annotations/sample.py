"""Choosing triplets for a new annotation campaign (``perface triplets sample``).

Strategies (all seeded; candidate order within a triplet is random, so neither position is favoured):

* ``random``: anchor, ``a`` and ``b`` drawn uniformly from the images (three different images).
* ``stratified``: needs attribute labels. Anchors cycle through the attribute groups (e.g. gender x race x
  age band) in seeded order, so every group is equally represented as anchor; with probability
  ``within_group`` both candidates come from the anchor's own group (the fine-grained comparisons people
  disagree on), otherwise from all labelled images. ``stratum`` is the anchor's group, e.g.
  ``female/asian/20-29``. Unlabelled images are not used.
* ``uncertain``: needs a model (:func:`perface.load`). At most ``max_images`` images are embedded
  (:func:`perface.evaluation.embedding_cache.embed_paths`, cached; a tight crop without a detectable face is
  embedded whole), and a pool of ``pool_factor * n`` random triplets over them is scored (cosine similarity =
  dot product of L2-normalised embeddings, higher = more similar); the ``n`` whose two similarities
  ``s(anchor, a)`` and ``s(anchor, b)`` are closest are kept: the model cannot tell which candidate is closer,
  so a human answer is most informative. Columns ``sim_a`` and ``sim_b`` record the model's similarities.
  Images that cannot be embedded (unreadable files) are left out and listed.

Output: a CSV/Parquet with ``anchor, a, b, source, stratum`` (paths relative to the dataset root) and,
optionally, Label Studio tasks (:func:`to_label_studio_tasks`) for the labeling config this project ships.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

import numpy as np
import pandas as pd

from perface.annotations.labels import age_band, labels_frame
from perface.annotations.paths import DEFAULT_URL_PREFIXES, find_label_file
from perface.annotations.proxy import standard_attributes
from perface.annotations.schema import write_table
from perface.errors import SettingsError
from perface.evaluation.embedding_cache import embed_paths
from perface.face.batch import auto_workers
from perface.io.files import collect_images, data_root
from perface.progress import bars

__all__ = ["STRATEGIES", "SampleRun", "embed_pool", "folder_images", "sample_file", "sample_triplets",
           "to_label_studio_tasks"]

STRATEGIES = ("random", "stratified", "uncertain")
_MAX_TRIES = 50


def folder_images(folder: str | os.PathLike, root: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Image files under ``folder`` (:func:`perface.io.files.collect_images`: recursive, following links, each
    real file once), as sorted POSIX paths relative to ``root`` (links are not resolved).

    Returns:
        ``(paths, notes)``: the paths, and one line per thing worth knowing (link loops, duplicate files).

    Raises:
        FileCollectionError: no image file under ``folder``.
    """
    found = collect_images([folder])
    base = os.path.abspath(root)
    paths = sorted(Path(os.path.relpath(os.path.abspath(f), base)).as_posix() for f in found.files)
    return paths, found.notes()


def embed_pool(model, images: Sequence[str], root: str | os.PathLike | None = None, *, on_no_face: str | None = None,
               batch_size: int = 32, workers: int | None = 0, cache: bool = True, progress: bool | None = None
               ) -> tuple[list[str], np.ndarray, list[dict]]:
    """Embed images with :func:`perface.evaluation.embedding_cache.embed_paths` (cached) for uncertainty sampling.

    Args:
        model: A loaded model (:func:`perface.load`).
        images: Paths relative to ``root``.
        root: The folder they are relative to (default: the current folder).
        on_no_face: What to do without a detectable face; default ``"whole-image"`` (tight crops such as UTKFace
            then still get an embedding).
        batch_size, workers, cache: Embedding options (``workers`` None: one per core for large jobs).
        progress: Show a bar (default: when stderr is a terminal).

    Returns:
        ``(kept, embeddings, unusable)``: the images that got an embedding (input order), their (len(kept), D)
        float32 L2-normalised embeddings, and ``{"path", "status", "error"}`` for the others.
    """
    base = Path(root) if root is not None else Path(".")
    files = [str(base / p) for p in images]
    with bars(progress) as bar:
        results = embed_paths(model, files, on_no_face=on_no_face or "whole-image", batch_size=batch_size,
                              workers=auto_workers(len(files), workers), cache=cache,
                              progress=bar("embedding images", len(files)))
    kept, rows, unusable = [], [], []
    for path, r in zip(images, results):
        if r.status == "ok":
            kept.append(path)
            rows.append(np.asarray(r.embedding, dtype=np.float32))
        else:
            unusable.append({"path": path, "status": r.status, "error": " ".join(str(r.error).split())})
    emb = np.stack(rows) if rows else np.zeros((0, int(getattr(model, "embedding_dim", 1))), np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return kept, emb / np.where(norms > 0, norms, 1.0), unusable


def _ordered(rng: np.random.Generator, anchor, x, y):
    return (anchor, x, y) if rng.random() < 0.5 else (anchor, y, x)


def sample_triplets(images: Sequence[str], n: int, strategy: str = "random", seed: int = 0,
                    labels: pd.DataFrame | None = None, attributes: Sequence[str] = ("gender", "race", "age"),
                    model=None, root: str | os.PathLike | None = None, embeddings: np.ndarray | None = None,
                    pool_factor: int = 20, max_images: int = 2000, within_group: float = 0.5,
                    progress: bool | None = None, **embed_options) -> pd.DataFrame:
    """Pick ``n`` distinct triplets from ``images`` (root-relative paths) for human annotation.

    Args:
        labels: Root-relative ``path`` plus attribute columns (``stratified``).
        attributes: Attribute columns to stratify by; those absent from ``labels`` are ignored (``age`` in
            years or bands is banded).
        model: A loaded model (``uncertain``): images under ``root`` are embedded with :func:`embed_pool`;
            images without a usable embedding are left out (:func:`sample_file` lists them).
        embeddings: Precomputed ``(len(images), D)`` embeddings instead of ``model`` (``uncertain``).
        embed_options: ``on_no_face``, ``batch_size``, ``workers``, ``cache`` for :func:`embed_pool`.

    Returns:
        ``anchor, a, b, source, stratum`` (+ ``sim_a``, ``sim_b`` for ``uncertain``).

    Raises:
        SettingsError: unknown strategy, too few images, or missing labels / model.
    """
    return _sample(images, n, strategy, seed, labels, attributes, model, root, embeddings, pool_factor, max_images,
                   within_group, progress, embed_options)[0]


def _sample(images, n, strategy, seed, labels, attributes, model, root, embeddings, pool_factor, max_images,
            within_group, progress, embed_options) -> tuple[pd.DataFrame, list[dict]]:
    if strategy not in STRATEGIES:
        raise SettingsError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if n < 1:
        raise SettingsError(f"--n must be at least 1 (got {n})")
    images = list(dict.fromkeys(str(p) for p in images))
    if len(images) < 3:
        raise SettingsError(f"need at least 3 images to form a triplet, found {len(images)}")
    rng = np.random.default_rng(seed)
    unusable: list[dict] = []
    if strategy == "random":
        rows = _random(images, n, rng)
    elif strategy == "stratified":
        rows = _stratified(images, n, rng, labels, attributes, within_group)
    else:
        rows, unusable = _uncertain(images, n, rng, model, root, embeddings, pool_factor, max_images, progress,
                                    embed_options)
    cols = ["anchor", "a", "b", "stratum"] + (["sim_a", "sim_b"] if strategy == "uncertain" else [])
    out = pd.DataFrame(rows, columns=cols)
    out.insert(3, "source", f"sample-{strategy}")
    return out, unusable


def _max_triplets(m: int) -> int:
    return m * (m - 1) * (m - 2) // 2


def _random(images: list[str], n: int, rng) -> list[tuple]:
    m = len(images)
    if n > _max_triplets(m):
        raise SettingsError(f"only {_max_triplets(m)} distinct triplets exist over {m} images; ask for fewer")
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
        raise SettingsError("the stratified strategy needs attribute labels (--labels CSV with a path column)")
    attrs = [a for a in attributes if a in labels.columns]
    if not attrs:
        raise SettingsError(f"the labels have none of the attributes {', '.join(attributes)} "
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
        raise SettingsError(f"only {len(keys)} of the {len(images)} images have labels for {', '.join(attrs)}; "
                         "check that the label paths match the images (paths relative to the dataset root)")
    labelled = sorted(keys)
    groups: dict[str, list[str]] = {}
    for p in labelled:
        groups.setdefault(keys[p], []).append(p)
    order = sorted(groups)
    order = [order[i] for i in rng.permutation(len(order))]
    if n > _max_triplets(len(labelled)):
        raise SettingsError(f"only {_max_triplets(len(labelled))} distinct triplets exist over {len(labelled)} "
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


def _uncertain(images, n, rng, model, root, embeddings, pool_factor, max_images, progress, embed_options
               ) -> tuple[list[tuple], list[dict]]:
    unusable: list[dict] = []
    if embeddings is None:
        if model is None:
            raise SettingsError("the uncertain strategy needs a model (--model NAME) or precomputed embeddings")
        if len(images) > max_images:
            keep = np.sort(rng.choice(len(images), size=max_images, replace=False))
            images = [images[i] for i in keep]
        images, emb, unusable = embed_pool(model, images, root, progress=progress, **embed_options)
    else:
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(images):
            raise SettingsError(f"embeddings have shape {emb.shape}; expected ({len(images)}, D)")
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = emb / np.where(norms > 0, norms, 1.0)
    m = len(images)
    if n > _max_triplets(m):
        raise SettingsError(f"only {_max_triplets(m)} distinct triplets exist over {m} images"
                            f"{' with a usable embedding' if unusable else ''}; ask for fewer")
    pool_size = min(_max_triplets(m), max(n, n * pool_factor))
    pool = _random(list(range(m)), pool_size, rng)
    idx = np.asarray([(int(t[0]), int(t[1]), int(t[2])) for t in pool], dtype=np.int64)
    sim_a = np.einsum("ij,ij->i", emb[idx[:, 0]], emb[idx[:, 1]])
    sim_b = np.einsum("ij,ij->i", emb[idx[:, 0]], emb[idx[:, 2]])
    best = np.argsort(np.abs(sim_a - sim_b), kind="stable")[:n]
    rows = [(images[idx[t, 0]], images[idx[t, 1]], images[idx[t, 2]], "", float(sim_a[t]), float(sim_b[t]))
            for t in best]
    return rows, unusable


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


@dataclass
class SampleRun:
    """What :func:`sample_file` drew and wrote.

    Attributes:
        triplets: The sampled triplets (as written to ``out``).
        strategy: ``random``, ``stratified`` or ``uncertain``.
        n_images: Images found under the folder.
        root: The folder the written paths are relative to.
        out: The triplets file.
        label_studio: The Label Studio tasks file, if written.
        unusable: Images left out (``uncertain``: no usable embedding), ``{"path", "status", "error"}``.
        notes: Things found while listing the images (link loops, duplicate files).
    """

    triplets: pd.DataFrame
    strategy: str
    n_images: int
    root: Path
    out: Path
    label_studio: Path | None = None
    unusable: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What ``perface triplets sample`` prints."""
        out = [f"sampled {len(self.triplets)} triplets ({self.strategy}) from {self.n_images} images; paths relative "
               f"to {self.root}"]
        if self.unusable:
            first = self.unusable[0]
            out.append(f"left out {len(self.unusable)} image(s) without a usable embedding (e.g. {first['path']}: "
                       f"{first['error'] or first['status']})")
        out.append(f"wrote {self.out}")
        if self.label_studio is not None:
            out.append(f"wrote {self.label_studio} ({len(self.triplets)} Label Studio tasks; labeling config: "
                       "perface triplets labeling-config)")
        return out

    def to_dict(self) -> dict:
        return {"triplets": int(len(self.triplets)), "strategy": self.strategy, "images": self.n_images,
                "root": str(self.root), "out": str(self.out),
                "label_studio": str(self.label_studio) if self.label_studio else None,
                "unusable": list(self.unusable), "notes": list(self.notes)}


def _sample_root(images_dir: Path, root) -> Path:
    if root is not None:
        folder = data_root(root)
    else:
        configured = data_root(required=False)
        folder = configured if configured is not None and images_dir.is_relative_to(configured) else images_dir
    if not images_dir.is_relative_to(folder):
        raise SettingsError(f"--images {images_dir} is not inside --root {folder}")
    return folder


def sample_file(images: str | os.PathLike, n: int, out: str | os.PathLike, *, strategy: str = "random",
                root: str | os.PathLike | None = None, labels: str | os.PathLike | None = None,
                attributes: Sequence[str] | str = ("gender", "race", "age"), model: Any = None, seed: int = 0,
                pool_factor: int = 20, max_images: int = 2000, within_group: float = 0.5,
                label_studio: str | os.PathLike | None = None, url_prefix: str = DEFAULT_URL_PREFIXES[0],
                on_no_face: str | None = None, batch_size: int = 32, workers: int | None = None, cache: bool = True,
                progress: bool | None = None) -> SampleRun:
    """Sample triplets over the images of a folder and write them (``perface triplets sample``).

    Args:
        images: Folder of images (searched recursively, see :func:`folder_images`).
        n: Number of triplets.
        out: Triplets file to write (``.csv`` / ``.parquet``): ``anchor, a, b, source, stratum``.
        strategy: ``random``, ``stratified`` (needs ``labels``) or ``uncertain`` (needs ``model``).
        root: The folder written paths are relative to (:func:`perface.io.files.data_root` of it); default: the
            dataset root (``$PERFACE_DATA``) when it holds ``images``, else ``images`` itself.
        labels: Attribute label file (``stratified``), relative to the current folder or ``root``; ``age_group``,
            ``ethnicity``, ``sex`` are read as ``age``, ``race``, ``gender``.
        attributes: Attributes to stratify by (list or ``"gender,race,age"``).
        model: A loaded model, or a function of no arguments that loads it (called only for ``uncertain``).
        label_studio: Also write Label Studio tasks (:func:`to_label_studio_tasks`) here.
        url_prefix: Prefix of the image URLs in those tasks.
        on_no_face, batch_size, workers, cache, progress: Embedding options (``uncertain``, see :func:`embed_pool`).

    Raises:
        SettingsError: ``images`` is not a folder or not inside ``root``; a missing label column, labels or model;
            too few images.
        FileCollectionError: no image in ``images``.
        LabelFileError: an unreadable label file.
    """
    images_dir = Path(images).resolve()
    if not images_dir.is_dir():
        raise SettingsError(f"--images {images} is not a folder")
    folder = _sample_root(images_dir, root)
    paths, notes = folder_images(images_dir, folder)
    frame = None
    if labels:
        frame = standard_attributes(labels_frame(find_label_file(labels, folder), folder), source=str(labels))
    if isinstance(attributes, str):
        attributes = [a.strip() for a in attributes.split(",") if a.strip()]
    if strategy == "uncertain":
        if model is None:
            raise SettingsError("the uncertain strategy needs --model (e.g. --model base)")
        if not hasattr(model, "embed_faces") and callable(model):
            model = model()
    else:
        model = None
    embed_options = {"on_no_face": on_no_face, "batch_size": batch_size, "workers": workers, "cache": cache}
    tri, unusable = _sample(paths, n, strategy, seed, frame, list(attributes), model, folder, None, pool_factor,
                            max_images, within_group, progress, embed_options)
    out = write_table(tri, out)
    tasks_path = None
    if label_studio:
        tasks_path = Path(label_studio)
        tasks_path.parent.mkdir(parents=True, exist_ok=True)
        tasks_path.write_text(json.dumps(to_label_studio_tasks(tri, url_prefix), indent=1) + "\n")
    return SampleRun(tri, strategy, len(paths), folder, out, tasks_path, unusable, notes)
