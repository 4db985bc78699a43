"""Locate the pretrained dlib model files shipped by the ``face-recognition-models`` package.

``import face_recognition_models`` fails with setuptools >= 81 (it imports ``pkg_resources``), so the
package directory is found with :func:`importlib.util.find_spec` instead of importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from perface.errors import WeightsError

RECOGNITION_RESNET = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"
LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
MMOD_DETECTOR = "mmod_human_face_detector.dat"


def dlib_model_path(filename: str) -> Path:
    """Absolute path of one of the files in ``face_recognition_models/models``.

    Raises:
        WeightsError: the package is not installed or the file is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"dlib model file {filename!r} needs the 'face-recognition-models' package; "
            "install it with: pip install face-recognition-models"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file():
        raise WeightsError(f"dlib model file {path} is missing; reinstall: pip install --force-reinstall face-recognition-models")
    return path


def recognition_weights_file() -> Path:
    """dlib's face-recognition ResNet weights (``dlib_face_recognition_resnet_model_v1.dat``)."""
    return dlib_model_path(RECOGNITION_RESNET)
