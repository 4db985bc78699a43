"""Image -> faces -> aligned chips, following a :class:`~perface.preprocessing.FaceOptions` (how faces are found
and chosen) and a :class:`~perface.preprocessing.Preprocessing` (how a face becomes a chip)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perface.errors import NoFaceError
from perface.face.align import align_arcface, align_dlib
from perface.face.detector import DetectorChain
from perface.face.face import Face
from perface.face.landmarks import LandmarkPredictor, arcface_points
from perface.preprocessing import AUTO, FaceOptions, Preprocessing


@dataclass
class AlignedFace:
    """One face ready for the network: its index among the image's faces (largest first), record and chip.

    ``chip`` is uint8 (size, size, 3) RGB.
    """

    index: int
    face: Face
    chip: np.ndarray


class FacePipeline:
    """Detect, landmark and align faces for one preprocessing.

    Args:
        preprocessing: Chip size, template and padding (travels with the model weights).
        options: How faces are found and chosen (default :class:`FaceOptions`: ``hog+cnn``, upsample ``auto``,
            largest face); travels with the model weights too.
    """

    def __init__(self, preprocessing: Preprocessing, options: FaceOptions | None = None):
        self.preprocessing = preprocessing
        self.options = options or FaceOptions()
        self.detectors = DetectorChain(self.options)
        # dlib chips follow dlib's 5-point alignment; ArcFace needs eye centres and mouth corners (68 points).
        self.landmarks = LandmarkPredictor(5 if preprocessing.alignment == "dlib" else 68)

    @classmethod
    def like(cls, other: "FacePipeline | None", preprocessing: Preprocessing, options: FaceOptions) -> "FacePipeline":
        """A pipeline for ``preprocessing`` and ``options`` that reuses ``other``'s loaded dlib models where they
        fit (loading the landmark predictors and the CNN takes a second or more)."""
        if other is None:
            return cls(preprocessing, options)
        new = cls.__new__(cls)
        new.preprocessing, new.options = preprocessing, options
        same_detection = (other.options.detector, other.options.upsample, other.options.max_side) == (
            options.detector, options.upsample, options.max_side)
        new.detectors = other.detectors if same_detection else DetectorChain(options)
        points = 5 if preprocessing.alignment == "dlib" else 68
        new.landmarks = other.landmarks if other.landmarks.points == points else LandmarkPredictor(points)
        return new

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in ``image`` (uint8 (H, W, 3) RGB), largest first, with landmarks.

        With a detector chain, the faces of the first detector that finds any (``Face.detector`` names it).
        """
        found, kind = self.detectors(image)
        return [Face(box=box, score=score, landmarks=self.landmarks(image, box), detector=kind) for box, score in found]

    def whole_image_face(self, image: np.ndarray) -> Face:
        """The whole image as the face box (for tight crops such as UTKFace), landmarks predicted inside it."""
        h, w = image.shape[:2]
        box = (0.0, 0.0, float(w), float(h))
        return Face(box=box, score=float("nan"), landmarks=self.landmarks(image, box), detector="whole-image")

    def align(self, image: np.ndarray, face: Face) -> np.ndarray:
        """uint8 (size, size, 3) chip of ``face``."""
        p = self.preprocessing
        if p.alignment == "dlib":
            return align_dlib(image, face.box, face.landmarks, size=p.size, padding=p.padding)
        return align_arcface(image, arcface_points(face.landmarks), size=p.size)

    def __call__(self, image: np.ndarray, face: str | int | None = None, on_no_face: str | None = None,
                 name: str = "image") -> list[AlignedFace]:
        """Detect, select and align: ``select(image, detect(image), ...)``."""
        return self.select(image, self.detect(image), face=face, on_no_face=on_no_face, name=name)

    def select(self, image: np.ndarray, faces: list[Face], face: str | int | None = None,
               on_no_face: str | None = None, name: str = "image") -> list[AlignedFace]:
        """Chips of the chosen faces among ``faces`` (as returned by :meth:`detect`).

        Args:
            image: uint8 (H, W, 3) RGB.
            face: Overrides ``options.face``: ``"largest"``, ``"center"`` (the face whose box centre is nearest
                the image centre: for datasets that centre the labelled face, such as FairFace), ``"all"``, or
                an index k into the faces sorted largest first.
            on_no_face: Overrides ``options.on_no_face``: ``"error"`` raises :class:`NoFaceError`, ``"skip"``
                returns ``[]``, ``"whole-image"`` uses the whole image as the face box (only when asked).
            name: How to call the image in error messages (usually its path).

        Raises:
            NoFaceError: no face (with ``on_no_face="error"``) or fewer faces than index k + 1.
            SettingsError: an invalid ``face`` or ``on_no_face``.
        """
        options = self.options.override(face=face, on_no_face=on_no_face)
        face, on_no_face = options.face, options.on_no_face
        if not faces:
            if on_no_face == "skip":
                return []
            if on_no_face == "whole-image":
                whole = self.whole_image_face(image)
                return [AlignedFace(0, whole, self.align(image, whole))]
            raise NoFaceError(f"no face found in {name}; {no_face_hint(self.options)}")
        if face == "largest":
            chosen = [(0, faces[0])]
        elif face == "center":
            h, w = image.shape[:2]
            k = int(np.argmin([((f.box[0] + f.box[2] - w) ** 2 + (f.box[1] + f.box[3] - h) ** 2) for f in faces]))
            chosen = [(k, faces[k])]
        elif face == "all":
            chosen = list(enumerate(faces))
        else:
            k = int(face)
            if not 0 <= k < len(faces):
                raise NoFaceError(f"{name} has {len(faces)} face(s); face index {k} does not exist (use 0..{len(faces) - 1})")
            chosen = [(k, faces[k])]
        return [AlignedFace(i, f, self.align(image, f)) for i, f in chosen]


def no_face_hint(options: FaceOptions) -> str:
    """What to try when ``options`` found no face (for error messages)."""
    tips = ["if it is already a tight face crop use --on-no-face whole-image"]
    if options.upsample != AUTO:
        tips.append(f"try --upsample {int(options.upsample) + 1} or auto for small faces")
    if "cnn" not in options.chain:
        tips.append("--detector hog+cnn for turned faces")
    return "; ".join(tips)
