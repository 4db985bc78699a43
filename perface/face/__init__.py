"""Faces in images: detection, landmarks and alignment to network chips."""

from perface.face.face import Face
from perface.face.pipeline import AlignedFace, FacePipeline

__all__ = ["AlignedFace", "Face", "FacePipeline"]
