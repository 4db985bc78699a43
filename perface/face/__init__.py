"""Faces in images: detection, landmarks and alignment to network chips."""

from perface.face.face import Face
from perface.face.pipeline import ON_NO_FACE, AlignedFace, FacePipeline

__all__ = ["ON_NO_FACE", "AlignedFace", "Face", "FacePipeline"]
