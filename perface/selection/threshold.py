"""The re-identification threshold T: the identity model's similarity at which it would call two faces the
same person.

**Default**: the identity model's threshold at FAR 1e-3 on LFW ``pairs.txt`` (``$PERFACE_DATA/lfw/pairs.txt``,
images under ``lfw/images``): the lowest similarity at which at most 0.1% of LFW's different-person pairs are
accepted (:func:`perface.evaluation.verification.threshold_at_far`; a pair is accepted when its similarity is
``>= T``). It is measured once per identity model (keyed by the SHA-256 of its weights, its preprocessing and
face options, the pairs file's content and the FAR) and kept under ``perface.cache.cache_dir() /
"reid_thresholds"``; ``perface gallery build`` also stores it in the gallery file, so selecting needs neither
LFW nor the measurement again. Pairs with an image where no face is found are left out (their count is kept).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from perface.cache import cache_dir, file_sha256
from perface.errors import SelectionError
from perface.evaluation.verification import read_pairs, tar_at_far, threshold_at_far
from perface.io.files import data_root

__all__ = ["DEFAULT_FAR", "ReidThreshold", "default_lfw_pairs", "reid_threshold"]

DEFAULT_FAR = 1e-3
_FORMAT = 1


@dataclass
class ReidThreshold:
    """A re-identification threshold and how it was obtained.

    Attributes:
        value: T; an identity similarity ``>= T`` means the identity model takes the faces for one person.
        far: The false accept rate it was chosen at (None when given by hand).
        model: Name of the identity model.
        model_identity: Hash of the identity model's weights (None when given by hand).
        source: ``"given"`` or the pairs file it was measured on.
        n_pairs: Pairs used (both faces found); ``n_different``: different-person pairs among them.
        n_total: Pairs in the file.
        tar: Share of same-person pairs accepted at T (how often the identity model recognises a person).
    """

    value: float
    far: float | None = None
    model: str = ""
    model_identity: str | None = None
    source: str = "given"
    n_pairs: int = 0
    n_different: int = 0
    n_total: int = 0
    tar: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ReidThreshold":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)

    @classmethod
    def given(cls, value: float, model: str = "") -> "ReidThreshold":
        value = float(value)
        if not np.isfinite(value) or not -1.0 <= value <= 1.0:
            raise SelectionError(f"identity similarity threshold {value:g} must lie in [-1, 1] (cosine similarity)")
        return cls(value=value, model=model, source="given")

    def describe(self) -> str:
        if self.source == "given":
            return f"T={self.value:.5f} (given)"
        return (f"T={self.value:.5f} ({self.model} at FAR {self.far:g} on {Path(self.source).name}, "
                f"{self.n_pairs} pairs, TAR {self.tar:.3f})")


def default_lfw_pairs() -> tuple[Path, Path]:
    """``(<dataset root>/lfw/pairs.txt, <dataset root>/lfw/images)`` (:func:`perface.io.files.data_root`).

    Raises:
        SelectionError: no dataset root, or no ``lfw/pairs.txt`` there.
    """
    data = data_root(required=False)
    if data is None:
        raise SelectionError("no re-identification threshold: measuring one needs LFW pairs.txt; set PERFACE_DATA "
                             "to the shared data folder (with lfw/pairs.txt) or pass --max-identity-sim T")
    pairs = data / "lfw" / "pairs.txt"
    if not pairs.is_file():
        raise SelectionError(f"no re-identification threshold: {pairs} not found (dataset root {data}); "
                             "pass --pairs FILE or --max-identity-sim T")
    return pairs, data / "lfw" / "images"


def _cache_file(model, pairs: Path, far: float) -> Path:
    key = model.cache_key(purpose="reid-threshold", format=_FORMAT, pairs=file_sha256(pairs), far=repr(float(far)))
    return cache_dir() / "reid_thresholds" / f"{key[:32]}.json"


def reid_threshold(identity_model, far: float = DEFAULT_FAR, pairs: str | os.PathLike | None = None,
                   root: str | os.PathLike | None = None, *, cache: bool = True, batch_size: int = 32,
                   workers: int = 0, progress: Callable[[str, int], Callable[[int], None] | None] | None = None
                   ) -> ReidThreshold:
    """Measure (or read from the cache) the identity model's threshold at ``far`` on a pairs file.

    Args:
        identity_model: A loaded model (:func:`perface.load`), normally ``"base"``.
        far: False accept rate (default 1e-3).
        pairs: LFW ``pairs.txt`` or a CSV ``a,b,same``; default ``$PERFACE_DATA/lfw/pairs.txt``.
        root: Folder the pair paths are relative to; default: ``images/`` beside the pairs file if it exists,
            else the pairs file's folder.
        cache: Read/write the threshold cache and the embedding cache.
        batch_size, workers: Embedding options.
        progress: ``(label, total) -> advance`` factory for a progress bar.

    Raises:
        SelectionError: no pairs file, or too few usable pairs.
        PairsFormatError: a malformed pairs file.
    """
    from perface.evaluation.evaluate import EmbedOptions, embed_images  # scikit-learn: only when measuring

    if not 0.0 < float(far) < 1.0:
        raise SelectionError(f"FAR {far:g} must lie strictly between 0 and 1 (e.g. 1e-3)")
    if pairs is None:
        pairs, default_root = default_lfw_pairs()
        root = root or default_root
    pairs = Path(pairs)
    if not pairs.is_file():
        raise FileNotFoundError(2, "pairs file not found", str(pairs))
    if root is None:
        folder = pairs.resolve().parent
        root = folder / "images" if (folder / "images").is_dir() else folder
    identity = identity_model.identity()
    cache_file = _cache_file(identity_model, pairs, far) if cache else None
    if cache_file is not None and cache_file.is_file():
        try:
            cached = ReidThreshold.from_dict(json.loads(cache_file.read_text()))
            return replace(cached, source=str(pairs))  # same content (it is in the key), maybe another path
        except (ValueError, TypeError, KeyError):
            pass  # damaged entry: measure again
    table = read_pairs(pairs).frame
    files = list(dict.fromkeys([*table["a"], *table["b"]]))
    images = embed_images(identity_model, files, root, EmbedOptions(face="largest", on_no_face="skip",
                          batch_size=batch_size, workers=workers, cache=cache, progress=progress),
                          label="threshold pairs")
    emb = images.embeddings
    ok = np.array([a in emb and b in emb for a, b in zip(table["a"], table["b"])], dtype=bool)
    sub = table[ok]
    same = sub["same"].to_numpy(bool)
    if same.all() or not same.any():
        raise SelectionError(f"{pairs}: only {int(ok.sum())} of {len(table)} pairs have two usable faces, not enough "
                             f"same- and different-person pairs to measure a threshold (images under {root}?)")
    a = np.stack([emb[p] for p in sub["a"]]).astype(np.float64)
    b = np.stack([emb[p] for p in sub["b"]]).astype(np.float64)
    sims = np.einsum("ij,ij->i", a, b)
    value = threshold_at_far(sims, same, far)
    result = ReidThreshold(value=float(value), far=float(far), model=getattr(identity_model, "name", ""),
                           model_identity=identity, source=str(pairs), n_pairs=int(len(sub)),
                           n_different=int((~same).sum()), n_total=int(len(table)),
                           tar=float(tar_at_far(sims, same, far)))
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(cache_file.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result.to_dict(), indent=2))
        os.replace(tmp, cache_file)
    return result
