"""Image -> faces -> aligned chips, following a :class:`perface.preprocessing.Preprocessing`."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from perface.errors import NoFaceError
from perface.face.align import align_arcface, align_dlib
from perface.face.detector import FaceDetector, detector_chain
from perface.face.face import Face
from perface.face.landmarks import LandmarkPredictor, arcface_points
from perface.preprocessing import Preprocessing

ON_NO_FACE = ("error", "skip", "whole-image")
#: Single-face choices of :meth:`FacePipeline.select` besides an index (``"all"`` is allowed where many fit).
FACE_CHOICES = ("largest", "center")


def check_face_choice(face: str | int, allow_all: bool = True) -> str | int:
    """``face`` if it is a valid choice for :meth:`FacePipeline.select`, else a ValueError listing them."""
    if face in FACE_CHOICES or (allow_all and face == "all"):
        return face
    if isinstance(face, numbers.Integral) and not isinstance(face, bool) and face >= 0:
        return face
    raise ValueError(f"face {face!r} is not a valid choice; use {', '.join(FACE_CHOICES)}"
                     f"{', all' if allow_all else ''} or a face index (0 = largest)")


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
        detector: ``"hog"`` or ``"cnn"`` (see :class:`FaceDetector`), or a fallback chain such as ``"hog+cnn"``:
            each detector runs only when the ones before it found no face (HOG is fast but frontal-only; the
            MMOD CNN finds turned faces at about 50x the CPU time).
        upsample: Detector upsampling steps.
        max_side: Detection runs on a copy at most this many pixels on its longer side.
    """

    def __init__(self, preprocessing: Preprocessing, detector: str = "hog", upsample: int = 0, max_side: int = 1024):
        self.preprocessing = preprocessing
        self.detectors = [FaceDetector(kind, upsample=upsample, max_side=max_side) for kind in detector_chain(detector)]
        self.detector = self.detectors[0]
        # dlib chips follow dlib's 5-point alignment; ArcFace needs eye centres and mouth corners (68 points).
        self.landmarks = LandmarkPredictor(5 if preprocessing.alignment == "dlib" else 68)

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in ``image`` (uint8 (H, W, 3) RGB), largest first, with landmarks.

        With a detector chain, the faces of the first detector that finds any (``Face.detector`` names it).
        """
        for detector in self.detectors:
            found = detector(image)
            if found:
                return [Face(box=box, score=score, landmarks=self.landmarks(image, box), detector=detector.kind)
                        for box, score in found]
        return []

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

    def __call__(self, image: np.ndarray, face: str | int = "largest", on_no_face: str = "error",
                 name: str = "image") -> list[AlignedFace]:
        """Detect, select and align: ``select(image, detect(image), ...)``."""
        return self.select(image, self.detect(image), face=face, on_no_face=on_no_face, name=name)

    def select(self, image: np.ndarray, faces: list[Face], face: str | int = "largest", on_no_face: str = "error",
               name: str = "image") -> list[AlignedFace]:
        """Chips of the chosen faces among ``faces`` (as returned by :meth:`detect`).

        Args:
            image: uint8 (H, W, 3) RGB.
            face: ``"largest"`` (default), ``"center"`` (the face whose box centre is nearest the image centre:
                for datasets that centre the labelled face, such as FairFace), ``"all"``, or an index k into
                the faces sorted largest first.
            on_no_face: ``"error"`` raises :class:`NoFaceError`, ``"skip"`` returns ``[]``, ``"whole-image"``
                uses the whole image as the face box (never applied silently: only when asked).
            name: How to call the image in error messages (usually its path).

        Raises:
            NoFaceError: no face (with ``on_no_face="error"``) or fewer faces than index k + 1.
        """
        if on_no_face not in ON_NO_FACE:
            raise ValueError(f"on_no_face must be one of {ON_NO_FACE}, got {on_no_face!r}")
        face = check_face_choice(face)
        if not faces:
            if on_no_face == "skip":
                return []
            if on_no_face == "whole-image":
                whole = self.whole_image_face(image)
                return [AlignedFace(0, whole, self.align(image, whole))]
            cnn_hint = "" if "cnn" in (d.kind for d in self.detectors) else " / --detector hog+cnn"
            raise NoFaceError(
                f"no face found in {name}; if it is already a tight face crop use --on-no-face whole-image, "
                f"or try --upsample {self.detector.upsample + 1}{cnn_hint} for small or turned faces"
            )
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
