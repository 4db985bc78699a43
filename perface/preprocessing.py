"""The one home of face preprocessing: how faces are found and chosen (:class:`FaceOptions`), and how a face
becomes a network input (:class:`Preprocessing`: alignment template, chip size, pixel normalisation).

Both travel with the weights (``.pt``, ``.ckpt`` and ONNX metadata), so training, evaluation, export and
inference cannot drift apart: a model trained on chips from ``hog+cnn`` detection with the centre face is
evaluated the same way without repeating flags. Command-line flags override a model's face options for one
run (:meth:`FaceOptions.override`). This module needs only numpy.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import asdict, dataclass, fields

import numpy as np

from perface.errors import SettingsError

ALIGNMENTS = ("dlib", "arcface")
#: Single detectors: dlib's frontal HOG + SVM (fast on CPU) and dlib's MMOD CNN (turned faces, ~50x the time).
DETECTORS = ("hog", "cnn")
#: What ``--detector`` / ``detector=`` accept: one detector, or a chain whose later detectors run only on images
#: where the earlier ones found no face.
DETECTOR_CHOICES = ("hog", "cnn", "hog+cnn")
#: ``upsample`` value that lets the detector decide (see :class:`FaceOptions`).
AUTO = "auto"
#: With ``upsample="auto"``, a detector retries with one upsampling step (after finding nothing without it)
#: only on detection copies whose longer side is at most this many pixels: faces small enough to need it
#: (under ~80 px) occur in small photos; on a 1024 px copy the step would cost 4x for little gain.
AUTO_UPSAMPLE_MAX_SIDE = 800
#: What to do when no face is found: ``error`` / ``skip`` (no embedding: single-image calls raise
#: :class:`~perface.errors.NoFaceError`, batch jobs record a ``no_face`` row and go on) or ``whole-image`` (the
#: whole image is taken as the face box: for tight face crops such as UTKFace).
ON_NO_FACE = ("error", "skip", "whole-image")
#: Named single-face choices besides an index k (faces sorted largest first); ``"all"`` where many fit.
FACE_CHOICES = ("largest", "center")


def detector_chain(detector: str) -> tuple[str, ...]:
    """``"hog"`` / ``"cnn"`` / ``"hog+cnn"`` -> the detector kinds to try in order.

    Raises:
        SettingsError: an unknown kind (the message lists the valid ones).
    """
    kinds = tuple(str(detector).split("+"))
    if not kinds or not all(k in DETECTORS for k in kinds) or len(set(kinds)) != len(kinds):
        raise SettingsError(f"detector {detector!r} is not known; use one of {', '.join(DETECTOR_CHOICES)} "
                            f"(a '+' chain runs each detector only where the ones before it found no face)")
    return kinds


def parse_face(face: str | int, allow_all: bool = True) -> str | int:
    """A face choice from code, YAML or the command line -> ``"largest"``, ``"center"``, ``"all"`` or an int.

    Raises:
        SettingsError: anything else (the message lists the valid choices).
    """
    if isinstance(face, str) and face.strip().isdigit():
        face = int(face.strip())
    if face in FACE_CHOICES or (allow_all and face == "all"):
        return face
    if isinstance(face, numbers.Integral) and not isinstance(face, bool) and face >= 0:
        return int(face)
    raise SettingsError(f"face {face!r} is not a valid choice; use {', '.join(FACE_CHOICES)}"
                        f"{', all' if allow_all else ''} or a face index (0 = largest)")


def parse_upsample(value: str | int) -> str | int:
    """``"auto"`` or a non-negative number of upsampling steps (``"1"`` -> 1).

    Raises:
        SettingsError: anything else.
    """
    if isinstance(value, str) and value.strip() == AUTO:
        return AUTO
    try:
        steps = int(str(value).strip()) if not isinstance(value, bool) else -1
    except ValueError:
        steps = -1
    if steps < 0 or (not isinstance(value, str) and steps != value):
        raise SettingsError(f"upsample {value!r} is not valid; use auto or a number of steps >= 0 (each step "
                            "halves the smallest face found and costs about 4x time)")
    return steps


@dataclass(frozen=True)
class FaceOptions:
    """How faces are found in an image and which one is used.

    Attributes:
        detector: ``"hog"``, ``"cnn"`` or a fallback chain such as ``"hog+cnn"`` (the default: the MMOD CNN runs
            only on images where HOG found no face, e.g. turned heads).
        upsample: dlib upsampling steps (each halves the smallest findable face, about 80 px at 0, and costs
            about 4x time), or ``"auto"`` (default): every detector first runs without upsampling and, where it
            found nothing on a detection copy of at most :data:`AUTO_UPSAMPLE_MAX_SIDE` px, once more with one
            step. Every image where ``upsample=1`` finds a face is therefore found, at about the cost of 0.
        max_side: Detection runs on a copy downscaled so that its longer side is at most this many pixels.
        face: Which face of an image with several: ``"largest"``, ``"center"`` (box centre nearest the image
            centre, for datasets that centre the labelled face), ``"all"`` (batch embedding only) or an index k
            into the faces sorted largest first.
        on_no_face: See :data:`ON_NO_FACE`; ``"whole-image"`` is never applied unless chosen.
    """

    detector: str = "hog+cnn"
    upsample: int | str = AUTO
    max_side: int = 1024
    face: str | int = "largest"
    on_no_face: str = "skip"

    def __post_init__(self) -> None:
        detector_chain(self.detector)
        object.__setattr__(self, "upsample", parse_upsample(self.upsample))
        try:
            max_side = int(self.max_side)
        except (TypeError, ValueError):
            max_side = 0
        if max_side < 32:
            raise SettingsError(f"max_side {self.max_side!r} is not valid; use a number of pixels >= 32 (default 1024)")
        object.__setattr__(self, "max_side", max_side)
        object.__setattr__(self, "face", parse_face(self.face))
        if self.on_no_face not in ON_NO_FACE:
            raise SettingsError(f"on_no_face {self.on_no_face!r} is not valid; use one of {', '.join(ON_NO_FACE)}")

    @property
    def chain(self) -> tuple[str, ...]:
        """The detector kinds in the order they are tried."""
        return detector_chain(self.detector)

    def override(self, **changes) -> "FaceOptions":
        """A copy with the given fields changed; ``None`` values keep the current setting (unset CLI flags).

        Raises:
            SettingsError: an unknown field or an invalid value.
        """
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise SettingsError(f"unknown face option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = {**self.to_dict(), **{k: v for k, v in changes.items() if v is not None}}
        return FaceOptions(**values)

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict | None) -> "FaceOptions":
        """Inverse of :meth:`to_dict`; missing keys take the defaults (files written before a field existed)."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def describe(self) -> str:
        """One line for messages and reports, e.g. ``detector hog+cnn, upsample auto, max side 1024, ...``."""
        return (f"detector {self.detector}, upsample {self.upsample}, max side {self.max_side}, face {self.face}, "
                f"on no face {self.on_no_face}")


#: The detection settings PerFace used before 0.2 (HOG only, no upsampling): one flag away,
#: ``--detector hog --upsample 0``.
LEGACY_FACE_OPTIONS = FaceOptions(detector="hog", upsample=0)


@dataclass(frozen=True)
class Preprocessing:
    """How a detected face becomes a network input.

    Attributes:
        alignment: ``"dlib"`` (dlib's ``get_face_chip`` from 5 landmarks, with ``padding``) or ``"arcface"``
            (similarity transform of eye centres, nose tip and mouth corners onto the ArcFace 112x112 template).
        size: Side of the square chip in pixels (150 for dlib, 112 for ArcFace).
        padding: dlib chip padding as a fraction of the face size (ignored by ``"arcface"``).
        mean: Per-channel RGB mean subtracted from 0-255 pixel values.
        std: Per-channel RGB divisor applied after the mean.
    """

    alignment: str = "dlib"
    size: int = 150
    padding: float = 0.25
    mean: tuple[float, float, float] = (122.782, 117.001, 104.298)
    std: tuple[float, float, float] = (256.0, 256.0, 256.0)

    def __post_init__(self) -> None:
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {self.alignment!r}")
        if self.size <= 0:
            raise ValueError(f"chip size must be positive, got {self.size}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def normalize(self, chips: np.ndarray) -> np.ndarray:
        """Turn aligned chips into network input.

        Args:
            chips: uint8 array (N, size, size, 3) RGB, or a single chip (size, size, 3).

        Returns:
            float32 array (N, 3, size, size): ``(pixel - mean) / std`` per channel.
        """
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        if chips.ndim != 4 or chips.shape[-1] != 3:
            raise ValueError(f"chips must be (N, H, W, 3) RGB, got shape {chips.shape}")
        mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None, None]
        # one pass into the output layout, no float32 HWC temporaries (5x faster than the plain expression,
        # bit-identical to it)
        out = np.empty((chips.shape[0], 3, *chips.shape[1:3]), dtype=np.float32)
        np.subtract(chips.transpose(0, 3, 1, 2), mean, out=out)
        np.divide(out, std, out=out)
        return out

    def normalize_tensor(self, chips):
        """:meth:`normalize` for a torch tensor, on its device (bit-identical; no torch import here).

        Args:
            chips: uint8 tensor (N, size, size, 3) RGB, on any device.

        Returns:
            float32 tensor (N, 3, size, size) on the same device: ``(pixel - mean) / std`` per channel.
        """
        if chips.ndim != 4 or chips.shape[-1] != 3:
            raise ValueError(f"chips must be (N, H, W, 3) RGB, got shape {tuple(chips.shape)}")
        x = chips.permute(0, 3, 1, 2).contiguous().float()
        mean = x.new_tensor(self.mean).view(1, 3, 1, 1)
        std = x.new_tensor(self.std).view(1, 3, 1, 1)
        return x.sub_(mean).div_(std)

    def to_dict(self) -> dict:
        """Plain-JSON form (lists instead of tuples)."""
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(
            alignment=str(d["alignment"]),
            size=int(d["size"]),
            padding=float(d.get("padding", 0.0)),
            mean=tuple(d["mean"]),
            std=tuple(d["std"]),
        )

    @classmethod
    def from_json(cls, s: str) -> "Preprocessing":
        return cls.from_dict(json.loads(s))


#: dlib's face-recognition ResNet: 150x150 chip, padding 0.25, dlib's ``input_rgb_image`` mean, /256.
DLIB = Preprocessing()
#: insightface ArcFace iResNets: 112x112 five-point template, ``(x / 255 - 0.5) / 0.5``.
ARCFACE = Preprocessing(alignment="arcface", size=112, padding=0.0, mean=(127.5,) * 3, std=(127.5,) * 3)
