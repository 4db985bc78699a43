"""Feature extractors for distribution metrics of face images (``perface eval distribution --features``).

Two kinds, both working on **aligned face chips** (each image's face is detected, chosen with ``face`` and
aligned; images without a usable face are listed, or embedded whole with ``on_no_face="whole-image"``):

* a PerFace model (``base``, a registry name, ``.ckpt``/``.pt``/``.onnx``/``.pth``): its L2-normalised
  embeddings of its own chips (:class:`PerFaceFeatures`). These go through the evaluation embedding cache
  (:mod:`perface.evaluation.embedding_cache`).
* ``timm:NAME``: any timm model (:class:`TimmFeatures`), e.g. ``timm:inception_v3``,
  ``timm:vit_base_patch16_clip_224.openai``, ``timm:vit_small_patch14_dinov2.lvd142m`` (the extractors of
  Sarıtaş & Ekenel's study). ``timm.create_model(NAME, num_classes=0)`` gives the pooled pre-logit
  features. The input is the face chip of ``chip_model`` (default ``base``: dlib's 150 px chip with padding
  0.25, the whole face with some hair and background) converted by timm's own evaluation transform from
  ``timm.data.resolve_data_config`` (its input size, interpolation, mean and std) with ``crop_pct = 1`` so
  that the whole chip is resized to the network's input and nothing is cropped away. Weights: a local file
  (``weights=``, a ``state_dict`` saved with ``torch.save`` or a ``.safetensors`` file, loaded with
  ``load_state_dict(strict=True)`` after dropping classifier keys), or timm's pretrained loader (needs a
  network); ``pretrained=False`` gives randomly initialised weights (seeded) for plumbing checks only: their
  numbers mean nothing and results say ``random_weights: true``.

timm features are cached per (weights hash, timm data config, chip preprocessing, face options, image
content) under ``perface.cache.cache_dir() / "features"``, so a second run, or another command with the
same extractor, does not compute them again.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from perface.errors import FeatureExtractorError, NoFaceError

__all__ = ["FeatureSet", "PerFaceFeatures", "TimmFeatures", "make_extractor"]

_FORMAT = 1


@dataclass
class FeatureSet:
    """Features of a list of images.

    Attributes:
        names: Image paths of the rows of ``features`` (usable images only, input order).
        features: float32 (N, D).
        unusable: ``{path: (status, reason)}`` for images without features (``no_face`` / ``error``).
    """

    names: list[str]
    features: np.ndarray
    unusable: dict[str, tuple[str, str]] = field(default_factory=dict)

    def unusable_report(self) -> dict:
        files = sorted(self.unusable)
        by_status: dict[str, int] = {}
        for status, _ in self.unusable.values():
            by_status[status] = by_status.get(status, 0) + 1
        return {"count": len(files), "files": files, "by_status": by_status,
                "errors": {f: self.unusable[f][1] for f in files}}


class PerFaceFeatures:
    """Embeddings of a PerFace model as features.

    Args:
        model: A loaded model (:func:`perface.load`).
        label: Name in results (default: the model's name).
        face, on_no_face: Which face per image; ``skip`` lists images without a face, ``whole-image`` embeds
            tight crops whole.
        cache: Use the evaluation embedding cache.
        batch_size: Chips per network call.
        workers: Processes for decoding, detection and alignment (0: this process).
    """

    random_weights = False

    def __init__(self, model, label: str | None = None, face: str | int = "largest", on_no_face: str = "skip",
                 cache: bool = True, batch_size: int = 32, workers: int = 0):
        self.model = model
        self.label = label or model.name
        self.face, self.on_no_face, self.cache, self.batch_size = face, on_no_face, cache, batch_size
        self.workers = int(workers)

    def describe(self) -> dict:
        return {"kind": "perface", "model": self.model.name, "input": f"{self.model.preprocessing.alignment} chip "
                f"{self.model.preprocessing.size}px", "dim": int(self.model.embedding_dim)}

    def __call__(self, paths: Sequence[str], progress: Callable[[int], None] | None = None) -> FeatureSet:
        from perface.evaluation.embedding_cache import embed_paths

        results = embed_paths(self.model, list(paths), face=self.face, on_no_face=self.on_no_face,
                              batch_size=self.batch_size, workers=self.workers, cache=self.cache,
                              progress=progress)
        names, feats, bad = [], [], {}
        for p, r in zip(paths, results):
            if r.status == "ok":
                names.append(p)
                feats.append(r.embedding)
            else:
                bad[p] = (r.status, " ".join(str(r.error).split()))
        dim = int(self.model.embedding_dim)
        return FeatureSet(names, np.stack(feats).astype(np.float32) if feats else np.zeros((0, dim), np.float32), bad)


class TimmFeatures:
    """Pooled features of a timm model on aligned face chips.

    Args:
        name: timm model name (``timm.list_models()``), optionally with a pretrained tag (``NAME.TAG``).
        weights: Local weights file (``torch.save`` state dict, optionally under a ``state_dict``/``model`` key,
            or ``.safetensors``); wins over ``pretrained``.
        pretrained: Without ``weights``: True loads timm's pretrained weights (downloads; fails offline with a
            clear error), False keeps a seeded random initialisation (plumbing checks only).
        chip_model: The PerFace model whose detector and chip alignment give the chips (default: ``base``).
        face, on_no_face, cache, batch_size, workers: As :class:`PerFaceFeatures`.
        seed: Seed of the random initialisation (``pretrained=False``).
    """

    def __init__(self, name: str, weights: str | os.PathLike | None = None, pretrained: bool = True,
                 chip_model: Any = None, face: str | int = "largest", on_no_face: str = "skip", cache: bool = True,
                 batch_size: int = 32, seed: int = 0, workers: int = 0):
        import timm
        import torch

        self.name = name
        self.label = f"timm:{name}"
        self.face, self.on_no_face, self.cache, self.batch_size = face, on_no_face, cache, batch_size
        self.random_weights = weights is None and not pretrained
        self.workers = int(workers)
        try:
            if weights is None and not pretrained:
                torch.manual_seed(seed)
            self.net = timm.create_model(name, pretrained=bool(pretrained and weights is None), num_classes=0)
        except RuntimeError as exc:
            raise FeatureExtractorError(f"timm:{name}: {' '.join(str(exc).split())}; check the name with "
                                        "timm.list_models()") from None
        except Exception as exc:  # noqa: BLE001 - hub download failures come in many types
            hint = ("pass --features-weights FILE with a local copy of the weights" if pretrained and weights is None
                    else "check the name with timm.list_models()")
            raise FeatureExtractorError(f"timm:{name}: could not create the model ({type(exc).__name__}: "
                                        f"{' '.join(str(exc).split())[:300]}); {hint}") from None
        if weights is not None:
            self._load_weights(Path(weights))
        self.net.eval()
        cfg = timm.data.resolve_data_config(model=self.net)
        cfg["crop_pct"] = 1.0  # keep the whole face chip
        self.data_config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}
        self.transform = timm.data.create_transform(**cfg, is_training=False)
        from perface.model import state_dict_digest

        self.identity = state_dict_digest(self.net)
        if chip_model is None or isinstance(chip_model, (str, os.PathLike)):
            from perface.loading import load

            chip_model = load(chip_model or "base")
        self.chip_model = chip_model
        self.dim = int(self.net.num_features)

    def _load_weights(self, path: Path) -> None:
        import torch

        if not path.is_file():
            raise FeatureExtractorError(f"--features-weights {path}: no such file")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise FeatureExtractorError(f"--features-weights {path}: not a readable weights file ({type(exc).__name__}: "
                                        f"{' '.join(str(exc).split())[:200]}); save a state_dict with torch.save") from None
        for key in ("state_dict", "model", "module"):
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
        if not isinstance(state, dict):
            raise FeatureExtractorError(f"--features-weights {path}: holds a {type(state).__name__}, not a state dict")
        own = set(self.net.state_dict())
        state = {k.removeprefix("module."): v for k, v in state.items()}
        state = {k: v for k, v in state.items() if k in own or not _is_head(k)}  # classifier of a full checkpoint
        try:
            self.net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            text = " ".join(str(exc).split())
            raise FeatureExtractorError(f"--features-weights {path}: does not fit timm:{self.name} ({text[:300]}); "
                                        "give the weights of this architecture") from None

    def describe(self) -> dict:
        p = self.chip_model.preprocessing
        return {"kind": "timm", "model": self.name, "input": f"{p.alignment} chip {p.size}px resized to "
                f"{self.data_config['input_size'][1]}px", "dim": self.dim, "data_config": self.data_config,
                "random_weights": self.random_weights}

    def _cache_path(self) -> Path:
        from perface.cache import cache_dir

        from perface.cache import cache_key

        key = cache_key(self.chip_model.preprocessing, self._face_options(), weights=self.identity, format=_FORMAT,
                        name=self.name, data_config=self.data_config)
        return cache_dir() / "features" / f"{key[:32]}.sqlite"

    def _face_options(self):
        return self.chip_model.face_options.override(face=self.face, on_no_face=self.on_no_face)

    def forward(self, chips: np.ndarray) -> np.ndarray:
        """float32 (N, D) features of uint8 (N, S, S, 3) RGB chips through timm's transform."""
        import torch
        from PIL import Image

        out = []
        with torch.inference_mode():
            for i in range(0, len(chips), self.batch_size):
                batch = torch.stack([self.transform(Image.fromarray(c)) for c in chips[i : i + self.batch_size]])
                out.append(self.net(batch).float().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def __call__(self, paths: Sequence[str], progress: Callable[[int], None] | None = None) -> FeatureSet:
        from perface.cache import file_sha256
        from perface.face.batch import align_many

        paths = list(paths)
        hashes: list[str | None] = []
        for p in paths:
            try:
                hashes.append(file_sha256(p))
            except OSError:
                hashes.append(None)
        db = _open_db(self._cache_path()) if self.cache else None
        cached = _lookup(db, [h for h in hashes if h]) if db is not None else {}
        todo = [i for i, h in enumerate(hashes) if h is None or h not in cached]
        if progress and len(paths) - len(todo):
            progress(len(paths) - len(todo))
        computed: dict[int, tuple[str, str, np.ndarray | None]] = {}
        chips, owners = [], []
        for i, (name, aligned, exc) in zip(todo, align_many([paths[i] for i in todo], self.chip_model.preprocessing,
                                                             self._face_options(),
                                                             workers=self.workers if len(todo) > 1 else 0,
                                                             pipeline=None if self.workers else self.chip_model.pipeline)):
            if exc is not None:
                status = "no_face" if isinstance(exc, NoFaceError) else "error"
                computed[i] = (status, " ".join(str(exc).split()), None)
            elif not aligned:
                computed[i] = ("no_face", f"no face found in {name}", None)
            else:
                chips.append(aligned[0].chip)
                owners.append(i)
            if progress:
                progress(1)
        if chips:
            feats = self.forward(np.stack(chips))
            for i, f in zip(owners, feats):
                computed[i] = ("ok", "", f.astype(np.float32))
        if db is not None:
            _store(db, [(hashes[i], *v) for i, v in computed.items() if hashes[i] and v[0] in ("ok", "no_face")])
            db.close()
        names, feats, bad = [], [], {}
        for i, p in enumerate(paths):
            status, err, f = computed[i] if i in computed else cached[hashes[i]]
            if status == "ok":
                names.append(p)
                feats.append(f)
            else:
                bad[p] = (status, err or f"no face found in {p}")
        return FeatureSet(names, np.stack(feats) if feats else np.zeros((0, self.dim), np.float32), bad)


def _is_head(key: str) -> bool:
    return key.split(".")[0] in ("fc", "head", "classifier", "last_linear", "heads") or key.startswith("head.fc")


def _open_db(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), timeout=60)
    db.execute("CREATE TABLE IF NOT EXISTS feat (image TEXT PRIMARY KEY, status TEXT, error TEXT, feature BLOB)")
    return db


def _lookup(db: sqlite3.Connection, hashes: list[str]) -> dict[str, tuple[str, str, np.ndarray | None]]:
    out = {}
    unique = list(dict.fromkeys(hashes))
    for i in range(0, len(unique), 500):
        chunk = unique[i : i + 500]
        for image, status, error, blob in db.execute(
                f"SELECT image, status, error, feature FROM feat WHERE image IN ({','.join('?' * len(chunk))})", chunk):
            out[image] = (status, error, np.frombuffer(blob, dtype=np.float32).copy() if blob is not None else None)
    return out


def _store(db: sqlite3.Connection, rows: list[tuple[str, str, str, np.ndarray | None]]) -> None:
    db.executemany("INSERT OR REPLACE INTO feat VALUES (?, ?, ?, ?)",
                   [(h, s, e, f.astype(np.float32).tobytes() if f is not None else None) for h, s, e, f in rows])
    db.commit()


def make_extractor(spec: Any, weights: str | os.PathLike | None = None, random_weights: bool = False,
                   face: str | int = "largest", on_no_face: str = "skip", cache: bool = True, batch_size: int = 32,
                   workers: int = 0, chip_model: Any = None, load_options: dict | None = None):
    """An extractor from a ``--features`` value: ``timm:NAME``, or a PerFace model name/path, or a loaded model.

    Args:
        spec: ``"timm:NAME"``, ``"base"``, a model file, a loaded PerFace model, or an extractor (returned as is).
        weights: Local weights for a ``timm:`` extractor.
        random_weights: For ``timm:`` without ``weights``: random initialisation instead of downloading.
        chip_model: PerFace model giving the chips of timm extractors (default: ``base``).
        load_options: Keyword arguments of :func:`perface.load` (detector, upsample).

    Raises:
        FeatureExtractorError: an unknown timm name or unusable weights.
    """
    if hasattr(spec, "__call__") and hasattr(spec, "label") and not isinstance(spec, str):
        return spec
    opts = dict(face=face, on_no_face=on_no_face, cache=cache, batch_size=batch_size, workers=workers)
    if isinstance(spec, str) and spec.startswith("timm:"):
        name = spec[len("timm:"):]
        if not name:
            raise FeatureExtractorError("timm: needs a model name, e.g. timm:inception_v3")
        if chip_model is None:
            from perface.loading import load

            chip_model = load("base", **(load_options or {}))
        return TimmFeatures(name, weights=weights, pretrained=not random_weights, chip_model=chip_model, **opts)
    if weights is not None:
        raise FeatureExtractorError(f"--features-weights applies to timm: extractors, not to {spec}")
    if isinstance(spec, (str, os.PathLike)):
        from perface.loading import load

        return PerFaceFeatures(load(spec, **(load_options or {})), label=os.fspath(spec), **opts)
    return PerFaceFeatures(spec, **opts)
