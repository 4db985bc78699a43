"""Choosing replacement identities for a target face.

For a target, every gallery identity gets exactly one outcome, checked in this order (the first rule it fails
is its exclusion reason, so the counts add up to the gallery size):

1. ``same_identity``: it has the target's identity name (the target's own identity is never selected);
2. ``below_band`` / ``above_band``: its perceptual similarity to the target lies outside the band ``[lo, hi]``;
3. ``identity_similarity``: the identity model's similarity to the target is ``>= T`` (the re-identification
   threshold): the identity model would take them for the same person, so this is not an anonymisation;
4. ``attributes``: an attribute named in ``same`` differs from the target's (or is unknown);
5. otherwise it **qualifies**. Qualified identities are ranked by ``|perceptual similarity - band centre|``
   (ties: identity name), and the first ``top`` are the candidates.

Similarities are cosines of L2-normalised embeddings (float64 re-scoring), higher = more similar. Results are
deterministic: the same gallery, models and target give the same candidates in the same order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from perface.errors import NoFaceError, SelectionError, SettingsError
from perface.evaluation.embedding_cache import embed_paths
from perface.io.labels import LabelTable, identity_from_path, read_labels
from perface.selection.band import Band, parse_band
from perface.selection.gallery import Gallery
from perface.selection.threshold import ReidThreshold, reid_threshold

__all__ = ["EXCLUSION_REASONS", "Candidate", "Selection", "Target", "check_same", "embed_targets",
           "raise_target_failure", "resolve_threshold", "row_similarities", "select", "select_many",
           "target_attributes"]

#: Exclusion reasons, in the order they are checked.
EXCLUSION_REASONS = ("same_identity", "below_band", "above_band", "identity_similarity", "attributes")

_FROM_PATH = object()


@dataclass
class Target:
    """A face to anonymise: its embeddings by both models, and who it is (when known).

    Attributes:
        name: The image (path) it came from.
        perceptual: (Dp,) float32 perceptual embedding.
        identity_embedding: (Di,) float32 identity-model embedding.
        identity: Identity name (excluded from the gallery by name), None if unknown.
        attributes: Known attribute values (``{"gender": "female"}``).
    """

    name: str
    perceptual: np.ndarray
    identity_embedding: np.ndarray
    identity: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class Candidate:
    """One selected replacement identity."""

    rank: int
    identity: str
    perceptual_similarity: float
    identity_similarity: float
    attributes: dict[str, str | None]
    n_images: int
    images: list[str]
    row: int = -1  # gallery row

    def to_dict(self) -> dict:
        return {"rank": self.rank, "identity": self.identity, "perceptual_similarity": self.perceptual_similarity,
                "identity_similarity": self.identity_similarity, "attributes": self.attributes,
                "n_images": self.n_images, "images": self.images}


@dataclass
class Selection:
    """The outcome of :func:`select` for one target."""

    target: Target
    candidates: list[Candidate]
    qualified: int
    excluded: dict[str, int]
    band: Band
    threshold: ReidThreshold
    same: list[str]
    top: int
    gallery_size: int
    search: dict = field(default_factory=dict)
    target_attributes: dict = field(default_factory=dict)  # the target's values used for ``same`` (and its own)

    def to_dict(self) -> dict:
        """JSON-ready (``perface select --json``)."""
        return {
            "target": self.target.name,
            "target_identity": self.target.identity,
            "target_attributes": {**self.target.attributes, **self.target_attributes},
            "candidates": [c.to_dict() for c in self.candidates],
            "qualified": self.qualified,
            "excluded": dict(self.excluded),
            "gallery_size": self.gallery_size,
            "band": self.band.to_dict(),
            "max_identity_sim": self.threshold.value,
            "threshold": self.threshold.to_dict(),
            "same": list(self.same),
            "top": self.top,
            "search": dict(self.search),
        }

    def lines(self) -> list[str]:
        """What ``perface select`` prints for one target: the policy, the ranked candidates, the exclusions."""
        d = self.to_dict()
        b = self.band
        out = [f"target    {d['target']} (identity: {d['target_identity'] or 'unknown'})",
               f"band      {b.lo:.4f}:{b.hi:.4f} centre {b.centre:.4f} ({b.source})",
               f"threshold {self.threshold.describe()}: identity similarity >= T is excluded"]
        if self.same:
            out.append("same      " + ", ".join(f"{a}={self.target_attributes.get(a)}" for a in self.same))
        if self.candidates:
            out.append(f"{'rank':>4}  {'identity':<32} {'perceptual':>10} {'identity':>10}  attributes")
            for c in self.candidates:
                attrs = ", ".join(f"{k}={v}" for k, v in c.attributes.items())
                out.append(f"{c.rank:>4}  {c.identity:<32} {c.perceptual_similarity:>10.5f} "
                           f"{c.identity_similarity:>10.5f}  {attrs}")
        else:
            out.append("no candidate qualified")
        excluded = ", ".join(f"{k} {v}" for k, v in self.excluded.items())
        out.append(f"gallery   {self.gallery_size} identities: {self.qualified} qualified; excluded: {excluded}")
        return out


# --- targets --------------------------------------------------------------------------------------------------
def embed_targets(images: Sequence[Any], model, identity_model, *, labels: LabelTable | str | os.PathLike | None = None,
                  identity: Any = _FROM_PATH, attributes: dict[str, str] | None = None, batch_size: int = 32,
                  workers: int = 0, cache: bool = True,
                  progress: Callable[[str, int], Callable[[int], None] | None] | None = None
                  ) -> tuple[list[Target], list[dict]]:
    """Embed target images with both models.

    Args:
        images: Image files (or in-memory images; those have no identity unless ``identity`` is given).
        model, identity_model: The gallery's perceptual and identity models.
        labels: Label file giving targets' identities / attributes (as for galleries).
        identity: The identity name of every target; default: the label file's, else the image's folder name;
            None: unknown (only the identity threshold protects the target then).
        attributes: Attribute values of every target (override the label file).

    Returns:
        ``(targets, failures)``: targets with a usable face (input order), and ``{"path", "status", "error"}``
        for the others.
    """
    if labels is not None and not isinstance(labels, LabelTable):
        labels = read_labels(labels)
    names = [os.fspath(x) if isinstance(x, (str, os.PathLike)) else f"<image {i}>" for i, x in enumerate(images)]
    files = [os.fspath(x) if isinstance(x, (str, os.PathLike)) else None for x in images]

    def embed(m, label):
        advance = progress(label, len(images)) if progress else None
        if all(f is not None for f in files):
            return embed_paths(m, files, face="largest", on_no_face="skip", batch_size=batch_size, workers=workers,
                               cache=cache, progress=advance)
        return m.embed_faces(list(images), face="largest", on_no_face="skip", batch_size=batch_size, progress=advance)

    rp = embed(model, "target perceptual embeddings")
    same_model = model is identity_model or model.identity() == identity_model.identity()
    ri = rp if same_model else embed(identity_model, "target identity embeddings")
    targets, failures = [], []
    for name, f, a, b in zip(names, files, rp, ri):
        bad = a if a.status != "ok" else (b if b.status != "ok" else None)
        if bad is not None:
            failures.append({"path": name, "status": bad.status, "error": " ".join(str(bad.error).split())})
            continue
        if identity is not _FROM_PATH:
            who = identity
        elif f is None:
            who = None
        else:
            who = labels.identity(f) if labels is not None else identity_from_path(f)
        attrs = labels.attributes_of(f) if (labels is not None and f is not None) else {}
        attrs.update(attributes or {})
        targets.append(Target(name, np.asarray(a.embedding, np.float32), np.asarray(b.embedding, np.float32),
                              who or None, attrs))
    return targets, failures


def _as_target(target, model, identity_model, **kwargs) -> Target:
    if isinstance(target, Target):
        return target
    if model is None or identity_model is None:
        raise SelectionError("embedding a target image needs the gallery's models (pass model= and identity_model=, "
                             "or use Gallery.load_models())")
    targets, failures = embed_targets([target], model, identity_model, **kwargs)
    if failures:
        raise_target_failure(failures[0])
    return targets[0]


def raise_target_failure(failure: dict) -> None:
    """Raise the error of a target :func:`embed_targets` could not use.

    Raises:
        NoFaceError: no face was found in it.
        SelectionError: any other reason (unreadable file, ...).
    """
    if failure["status"] == "no_face":
        raise NoFaceError(f"{failure['path']}: no face found in the target ({failure['error']}); it needs a "
                          "detectable face (try --upsample 1 for small faces)")
    raise SelectionError(f"{failure['path']}: {failure['error']}")


# --- threshold and band -----------------------------------------------------------------------------------------
def resolve_threshold(gallery: Gallery, max_identity_sim: float | ReidThreshold | None = None, identity_model=None,
                      **measure) -> ReidThreshold:
    """T: the given value, else the gallery's stored threshold, else measured on LFW (needs ``identity_model``).

    Raises:
        SelectionError: no threshold can be had.
    """
    if isinstance(max_identity_sim, ReidThreshold):
        return max_identity_sim
    if max_identity_sim is not None:
        return ReidThreshold.given(max_identity_sim, (gallery.info.get("identity_model") or {}).get("name", ""))
    if gallery.threshold is not None:
        return gallery.threshold
    if identity_model is None:
        why = gallery.info.get("reid_threshold_error") or "not measured"
        raise SelectionError(f"gallery {gallery.path or ''} stores no re-identification threshold ({why}); "
                             "pass --max-identity-sim T")
    return reid_threshold(identity_model, **measure)


def _band(gallery: Gallery, band) -> Band:
    if band is None:
        b = gallery.default_band
        if b is None:
            raise SelectionError(f"gallery {gallery.path or ''} has no default band (it needs at least 2 identities); "
                                 "pass --band LO:HI")
        return b
    if isinstance(band, Band):
        return band
    if isinstance(band, str):
        return parse_band(band)
    try:
        lo, hi = band
    except (TypeError, ValueError):
        raise SelectionError(f"band {band!r}: expected (lo, hi)") from None
    return Band(float(lo), float(hi))


# --- selection --------------------------------------------------------------------------------------------------
def target_attributes(target: Target, gallery: Gallery, names: Sequence[str]) -> dict[str, str | None]:
    """The target's value of each attribute in ``names``: its own (label file / given), else the gallery row of
    its identity, else None (unknown)."""
    row = gallery.row_of(target.identity)
    from_gallery = gallery.attributes_of(row) if row is not None else {}
    return {a: target.attributes.get(a) or from_gallery.get(a) or None for a in names}


def check_same(gallery: Gallery, same: Sequence[str] | str) -> list[str]:
    """The attribute names of ``same`` (a list or ``"gender,age_group"``), each checked to be a gallery attribute.

    Raises:
        SettingsError: an attribute the gallery does not have.
    """
    if isinstance(same, str):
        same = same.split(",")
    names = [s.strip() for s in same if s and s.strip()]
    unknown = [s for s in names if s not in gallery.attribute_names]
    if unknown:
        have = ", ".join(gallery.attribute_names) or "none (build it with --labels)"
        raise SettingsError(f"--same {unknown[0]}: not an attribute of gallery {gallery.path or ''} (its attributes: "
                            f"{have})")
    return names


def row_similarities(matrix: np.ndarray, rows: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """float64 cosine of ``matrix[rows]`` with ``vector``; each value depends only on its own row (no BLAS
    blocking), so it is the same whichever other rows are scored with it."""
    v = np.asarray(vector, dtype=np.float64)
    out = np.empty(len(rows), dtype=np.float64)
    for start in range(0, len(rows), 65536):
        chunk = rows[start : start + 65536]
        out[start : start + len(chunk)] = (matrix[chunk].astype(np.float64) * v).sum(axis=1)
    return out


def select_many(targets: Sequence[Target], gallery: Gallery, *, band=None,
                max_identity_sim: float | ReidThreshold | None = None, same: Sequence[str] | str = (),
                top: int = 10, index: str = "auto", threshold: ReidThreshold | None = None) -> list[Selection]:
    """:func:`select` for many embedded targets at once (batched similarity search)."""
    same = check_same(gallery, same)
    if int(top) < 1:
        raise SettingsError(f"--top {top}: must be at least 1")
    top = int(top)
    b = _band(gallery, band)
    t = threshold or resolve_threshold(gallery, max_identity_sim)
    if not targets:
        return []
    dp, di = gallery.perceptual.shape[1], gallery.identity.shape[1]
    for tg in targets:
        if tg.perceptual.shape != (dp,) or tg.identity_embedding.shape != (di,):
            sizes = f"{tg.perceptual.shape[0]}/{tg.identity_embedding.shape[0]}"
            raise SelectionError(f"target {tg.name}: embedding sizes {sizes} do not match the gallery's {dp}/{di}; "
                                 "use the gallery's models")
    search = gallery.search(index)
    info = search.info(b.lo, b.hi) if search.kind == "faiss" else search.info()
    found = search.at_least(np.stack([tg.perceptual for tg in targets]), b.lo, b.hi)
    n = len(gallery)
    columns = {a: gallery.attributes[a].to_numpy(dtype=object) for a in same}
    out = []
    for tg, rows in zip(targets, found):
        excluded = dict.fromkeys(EXCLUSION_REASONS, 0)
        own = gallery.row_of(tg.identity)
        if own is not None:
            excluded["same_identity"] = 1
            rows = rows[rows != own]
        p = row_similarities(gallery.perceptual, rows, tg.perceptual)
        keep = p >= b.lo
        rows, p = rows[keep], p[keep]
        excluded["below_band"] = n - excluded["same_identity"] - len(rows)
        above = p > b.hi
        excluded["above_band"] = int(above.sum())
        rows, p = rows[~above], p[~above]
        s = row_similarities(gallery.identity, rows, tg.identity_embedding)
        confusable = s >= t.value
        excluded["identity_similarity"] = int(confusable.sum())
        rows, p, s = rows[~confusable], p[~confusable], s[~confusable]
        wanted = {}
        if same:
            wanted = target_attributes(tg, gallery, same)
            missing = [a for a in same if not wanted.get(a)]
            if missing:
                a = missing[0]
                raise SelectionError(f"target {tg.name}: its {a!r} is unknown, so --same {a} cannot be checked; "
                                     f"pass --target-attr {a}=VALUE or a --labels file listing the target")
            ok = np.ones(len(rows), dtype=bool)
            for a, v in wanted.items():
                ok &= np.asarray(columns[a][rows] == v, dtype=bool)
            excluded["attributes"] = int((~ok).sum())
            rows, p, s = rows[ok], p[ok], s[ok]
        order = np.lexsort((gallery.identities[rows].astype(str), np.abs(p - b.centre)))[:top]
        candidates = [Candidate(rank=k + 1, identity=str(gallery.identities[rows[j]]),
                                perceptual_similarity=float(p[j]), identity_similarity=float(s[j]),
                                attributes=gallery.attributes_of(int(rows[j])), n_images=int(gallery.n_images[rows[j]]),
                                images=list(gallery.images[rows[j]]), row=int(rows[j]))
                      for k, j in enumerate(order)]
        out.append(Selection(tg, candidates, int(len(rows)), excluded, b, t, list(same), top, n, info, wanted))
    return out


def select(target, gallery: Gallery, model=None, *, identity_model=None, band=None,
           max_identity_sim: float | ReidThreshold | None = None, same: Sequence[str] | str = (), top: int = 10,
           index: str = "auto", labels=None, identity: Any = _FROM_PATH,
           attributes: dict[str, str] | None = None) -> Selection:
    """Replacement identities for one target face (the rules are in the module docstring).

    Args:
        target: An image (path, PIL image, array) or an embedded :class:`Target`.
        gallery: A :class:`Gallery`.
        model, identity_model: The gallery's perceptual and identity models (checked against it); default: the
            ones the gallery records (loaded with :func:`perface.load`). Not needed for a :class:`Target`.
        band: ``(lo, hi)``, ``"lo:hi"`` or a :class:`Band`; default: the gallery's default band.
        max_identity_sim: T; default: the threshold stored in the gallery.
        same: Attributes that must equal the target's (``["gender"]`` or ``"gender,age_group"``).
        top: How many candidates to return.
        index: ``"auto"``, ``"exact"`` or ``"faiss"``.
        labels, identity, attributes: Who the target is (see :func:`embed_targets`).

    Returns:
        A :class:`Selection` (candidates, qualified count, exclusion counts per reason).

    Raises:
        SelectionError: bad band / threshold / attribute, or a target whose attribute is needed but unknown.
        NoFaceError: no face in the target image.
    """
    if not isinstance(target, Target):
        model, identity_model = gallery.load_models(model, identity_model)
    threshold = resolve_threshold(gallery, max_identity_sim, identity_model)
    tg = _as_target(target, model, identity_model, labels=labels, identity=identity, attributes=attributes)
    if isinstance(target, Target) and (identity is not _FROM_PATH or attributes):
        tg = Target(tg.name, tg.perceptual, tg.identity_embedding,
                    tg.identity if identity is _FROM_PATH else identity, {**tg.attributes, **(attributes or {})})
    return select_many([tg], gallery, band=band, same=same, top=top, index=index, threshold=threshold)[0]
