"""The one home of face preprocessing: alignment template, chip size and pixel normalisation.

A :class:`Preprocessing` travels with the weights (checkpoint hyper-parameters and ONNX metadata), so
training, evaluation, export and inference cannot drift apart. It needs only numpy; the torch path wraps
:meth:`Preprocessing.normalize` with ``torch.from_numpy``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

ALIGNMENTS = ("dlib", "arcface")


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
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        out = (chips.astype(np.float32) - mean) / std
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))

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
