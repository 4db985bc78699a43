"""Feature extractors for distribution metrics of face images (``perface eval distribution --features``).

Two kinds, both :class:`perface.embedder.FaceEmbedder` working on **aligned face chips** (each image's face is
detected, chosen and aligned with the face options; images without a usable face are listed, or embedded whole
with ``on_no_face="whole-image"``), both going through the evaluation embedding cache
(:mod:`perface.evaluation.embedding_cache`, via :func:`perface.evaluation.evaluate.embed_images`):

* a PerFace model (``base``, a registry name, ``.ckpt``/``.pt``/``.onnx``/``.pth``): its L2-normalised
  embeddings of its own chips.
* ``timm:NAME``: any timm model (:class:`TimmFeatures`), e.g. ``timm:inception_v3``,
  ``timm:vit_base_patch16_clip_224.openai``, ``timm:vit_small_patch14_dinov2.lvd142m`` (the extractors of
  Sarıtaş & Ekenel's study). ``timm.create_model(NAME, num_classes=0)`` gives the pooled pre-logit
  features (raw, not L2-normalised). The input is the face chip of ``chip_model`` (default ``base``: dlib's
  150 px chip with padding 0.25, the whole face with some hair and background) converted by timm's own
  evaluation transform from ``timm.data.resolve_data_config`` (its input size, interpolation, mean and std)
  with ``crop_pct = 1`` so that the whole chip is resized to the network's input and nothing is cropped away.
  Weights: a local file (``weights=``, a ``state_dict`` saved with ``torch.save`` or a ``.safetensors`` file,
  loaded with ``load_state_dict(strict=True)`` after dropping classifier keys), or timm's pretrained loader
  (needs a network); ``pretrained=False`` gives randomly initialised weights (seeded) for plumbing checks only:
  their numbers mean nothing and results say ``random_weights: true``.

Cached features are keyed like any model's embeddings (:meth:`~perface.embedder.FaceEmbedder.cache_key`): for
timm, the weights digest, the timm name and data config, the chip geometry and face options, and the image
content; a second run, or another command with the same extractor, does not compute them again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from perface.embedder import FaceEmbedder
from perface.errors import FeatureExtractorError
from perface.evaluation.evaluate import EmbedOptions, embed_images
from perface.loading import load as perface_load

__all__ = ["Extractor", "FeatureSet", "TimmFeatures", "extract_features", "make_extractor"]


@dataclass
class FeatureSet:
    """Features of a list of images.

    Attributes:
        names: Image paths of the rows of ``features`` (usable images only, input order).
        features: float32 (N, D).
        unusable: ``{count, files, by_status, errors}`` of the images without features
            (:meth:`perface.evaluation.evaluate.ImageEmbeddings.report`).
    """

    names: list[str]
    features: np.ndarray
    unusable: dict


def extract_features(model: FaceEmbedder, paths: Sequence[str], options: EmbedOptions | None = None,
                     label: str = "") -> FeatureSet:
    """Features of the usable images among ``paths`` (through the embedding cache).

    Args:
        model: A loaded PerFace model or a :class:`TimmFeatures`.
        paths: Image files.
        options: Face choice, no-face policy, batch size, workers, cache and progress (default: the model's).
        label: Name of the progress bar.

    Raises:
        NoFaceError: the no-face policy is ``error`` and some image has no usable face.
    """
    unique = list(dict.fromkeys(os.fspath(p) for p in paths))
    images = embed_images(model, unique, Path(), options or EmbedOptions(), label)
    names = [p for p in unique if p in images.embeddings]
    feats = (np.stack([images.embeddings[p] for p in names]).astype(np.float32) if names
             else np.zeros((0, int(model.embedding_dim)), np.float32))
    return FeatureSet(names, feats, images.report())


class TimmFeatures(FaceEmbedder):
    """Pooled features of a timm model on aligned face chips, as a :class:`~perface.embedder.FaceEmbedder`.

    The chips are ``chip_model``'s (its alignment, chip size and face options); :attr:`preprocessing` keeps
    that geometry with mean 0 and std 1, so :meth:`_embed_normalized` receives the chips' 0-255 pixel values
    and hands them to timm's evaluation transform. :meth:`embed_chips` returns the **raw** pooled features
    (not L2-normalised: the distribution metrics compare raw and normalised features), so :meth:`score` and
    :meth:`compare` of this class are dot products, not cosines.

    Args:
        name: timm model name (``timm.list_models()``), optionally with a pretrained tag (``NAME.TAG``).
        weights: Local weights file (``torch.save`` state dict, optionally under a ``state_dict``/``model`` key,
            or ``.safetensors``); wins over ``pretrained``.
        pretrained: Without ``weights``: True loads timm's pretrained weights (downloads; fails offline with a
            clear error), False keeps a seeded random initialisation (plumbing checks only).
        chip_model: The loaded PerFace model whose face options and chip alignment give the chips (default:
            ``base``).
        seed: Seed of the random initialisation (``pretrained=False``).

    Raises:
        FeatureExtractorError: an unknown timm name, a failed download, or unusable weights.
    """

    def __init__(self, name: str, weights: str | os.PathLike | None = None, pretrained: bool = True,
                 chip_model: Any = None, seed: int = 0):
        import timm
        import torch

        self.timm_name = name
        self.name = f"timm:{name}"
        self.random_weights = weights is None and not pretrained
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
        self.chip_model = chip_model if chip_model is not None else perface_load("base")
        self.preprocessing = replace(self.chip_model.preprocessing, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        self.face_options = self.chip_model.face_options
        self.__dict__["_pipeline"] = self.chip_model.pipeline  # its detectors and landmark predictor are reused
        self.embedding_dim = int(self.net.num_features)

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
            raise FeatureExtractorError(f"--features-weights {path}: does not fit {self.name} ({text[:300]}); "
                                        "give the weights of this architecture") from None

    def weights_digest(self) -> str:
        """:func:`perface.model.state_dict_digest` of the network."""
        from perface.model import state_dict_digest

        return state_dict_digest(self.net)

    def identity(self) -> str:
        """Weights digest, timm name and data config: what the features depend on besides chips and faces."""
        return json.dumps({"weights": self.weights_digest(), "timm": self.timm_name, "data_config": self.data_config},
                          sort_keys=True)

    def describe(self) -> dict:
        p = self.preprocessing
        return {"kind": "timm", "model": self.timm_name, "input": f"{p.alignment} chip {p.size}px resized to "
                f"{self.data_config['input_size'][1]}px", "dim": self.embedding_dim, "data_config": self.data_config,
                "random_weights": self.random_weights}

    def _embed_normalized(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, 3, S, S) chips in 0-255 pixel values -> float32 (N, D) features via timm's transform."""
        import torch
        from PIL import Image

        chips = np.clip(np.rint(batch.transpose(0, 2, 3, 1)), 0, 255).astype(np.uint8)
        with torch.inference_mode():
            x = torch.stack([self.transform(Image.fromarray(c)) for c in chips])
            return self.net(x).float().numpy()

    def embed_chips(self, chips: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Raw pooled features of uint8 (N, S, S, 3) RGB chips: float32 (N, D), **not** L2-normalised."""
        chips = np.asarray(chips)
        chips = chips[None] if chips.ndim == 3 else chips
        out = [self._embed_normalized(self.preprocessing.normalize(chips[i : i + batch_size]))
               for i in range(0, len(chips), batch_size)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.embedding_dim), np.float32)


def _is_head(key: str) -> bool:
    return key.split(".")[0] in ("fc", "head", "classifier", "last_linear", "heads") or key.startswith("head.fc")


@dataclass
class Extractor:
    """A feature extractor of ``perface eval distribution``: its ``label`` in results and its ``model``."""

    label: str
    model: FaceEmbedder

    @property
    def random_weights(self) -> bool:
        return bool(getattr(self.model, "random_weights", False))

    def describe(self) -> dict:
        """JSON-ready description (kind, model, chip input, dimension; timm: data config, random weights)."""
        if isinstance(self.model, TimmFeatures):
            return self.model.describe()
        p = self.model.preprocessing
        return {"kind": "perface", "model": self.model.name, "input": f"{p.alignment} chip {p.size}px",
                "dim": int(self.model.embedding_dim)}


def make_extractor(spec: Any, weights: str | os.PathLike | None = None, random_weights: bool = False,
                   chip_model: Any = None, load: Callable[[str], Any] | None = None) -> Extractor:
    """An extractor from a ``--features`` value.

    Args:
        spec: ``"timm:NAME"``, ``"base"``, a model file, or a loaded model (a :class:`TimmFeatures` too).
        weights: Local weights for a ``timm:`` extractor.
        random_weights: For ``timm:`` without ``weights``: random initialisation instead of downloading.
        chip_model: Loaded PerFace model giving the chips of timm extractors (default: ``load("base")``).
        load: Loads model names (default :func:`perface.load`).

    Raises:
        FeatureExtractorError: an unknown timm name, unusable weights, or weights for a non-timm extractor.
    """
    load = load or perface_load
    if isinstance(spec, str) and spec.startswith("timm:"):
        name = spec[len("timm:"):]
        if not name:
            raise FeatureExtractorError("timm: needs a model name, e.g. timm:inception_v3")
        model = TimmFeatures(name, weights=weights, pretrained=not random_weights,
                             chip_model=chip_model if chip_model is not None else load("base"))
        return Extractor(spec, model)
    if weights is not None:
        raise FeatureExtractorError(f"--features-weights applies to timm: extractors, not to {spec}")
    if isinstance(spec, (str, os.PathLike)):
        return Extractor(os.fspath(spec), load(os.fspath(spec)))
    return Extractor(spec.name, spec)
