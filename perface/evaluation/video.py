"""Evaluate generated videos: does the face stay one person, and the reference's? (``perface eval video``)

Frames are read with :func:`perface.io.video.read_frames` (PyAV or OpenCV; MP4, AVI, WEBM, MOV, GIF or a
folder of frames; ``every`` K-th frame or ``frames`` N evenly spaced). In each frame the face is detected;
when several are found, the one whose box centre is nearest the previous face's is kept (the largest in the
first frame with a face). Each face is embedded by the identity model (``id_model``, default ``base``) and by
the PerFace model (``model``).

Per video and per model, over the frames with a face (``f_0`` is the first of them):

* ``mean``, ``std``, ``min`` of the cosine similarity to the reference image's face (without ``reference``,
  the first frame with a face is the reference and is not counted); ``consistency = 1 - std``;
* ``frame_to_frame``: mean cosine of consecutive face frames ``cos(f(i-1), f(i))``;
* ``subject_consistency`` (VBench's subject-consistency formula on face embeddings): the mean over frames
  ``i >= 1`` of ``[max(0, cos(f(i-1), f(i))) + max(0, cos(f_0, f(i)))] / 2``;
* ``largest_drop``: the frame ``i`` with the lowest ``cos(f(i-1), f(i))`` (where the face changes most from
  one frame to the next) and that similarity;
* ``change_point``: where the similarity to the reference shifts: the split of the series into a before and
  an after part with the least squared deviation from their two means (``{frame, before, after, drop}``, frame
  = first frame of the after part). A switch of person mid-clip shows up here even when single frames are
  noisy.

The top-level numbers of a video entry are the identity model's; ``perceptual`` holds the same keys for the
PerFace model. ``frames_without_face`` lists the frame indices (in the full clip) where no face was found;
``per_frame`` has every analysed frame. A video that cannot be read is listed in ``unusable`` and the others
are still evaluated; when every video fails the first error is raised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from perface.errors import GeneratedEvalError, VideoReadError
from perface.evaluation.face_analysis import FaceAnalyzer, FaceRecord, load_models, read_rows

__all__ = ["METRIC_KEYS", "VideoReport", "evaluate", "sequence_metrics"]

#: Keys computed per model for each video.
METRIC_KEYS = ("mean", "std", "min", "consistency", "frame_to_frame", "subject_consistency", "largest_drop",
               "change_point")


@dataclass
class VideoReport:
    """Result of :func:`evaluate`: ``videos`` (one dict per evaluated video), ``unusable`` and ``info``."""

    videos: list[dict]
    unusable: list[dict]
    info: dict

    def to_dict(self) -> dict:
        return {"command": "video", **self.info, "videos": self.videos,
                "unusable": {"count": len(self.unusable), "videos": self.unusable}}


def sequence_metrics(embeddings: np.ndarray, frame_indices: Sequence[int], reference: np.ndarray | None) -> dict:
    """Similarity statistics of one face track.

    Args:
        embeddings: float (T, D) L2-normalised embeddings of the frames with a face, in time order.
        frame_indices: (T,) their frame indices in the clip.
        reference: float (D,) reference embedding, or None to use the first frame (which is then not counted
            in ``mean``/``std``/``min``).

    Returns:
        ``{mean, std, min, consistency, frame_to_frame, subject_consistency, largest_drop, to_reference,
        to_previous}`` (``to_reference`` / ``to_previous``: per-frame lists, None where undefined; statistics
        are None when there are too few frames).
    """
    e = np.asarray(embeddings, dtype=np.float64)
    t = len(e)
    out: dict[str, Any] = {k: None for k in METRIC_KEYS}
    out["to_reference"] = [None] * t
    out["to_previous"] = [None] * t
    if t == 0:
        return out
    if reference is not None:
        to_ref = e @ np.asarray(reference, dtype=np.float64)
        counted = to_ref
        out["to_reference"] = [float(v) for v in to_ref]
    else:
        to_ref = e @ e[0]
        counted = to_ref[1:]
        out["to_reference"] = [None] + [float(v) for v in to_ref[1:]]
    if len(counted):
        out.update(mean=float(counted.mean()), std=float(counted.std()), min=float(counted.min()),
                   consistency=float(1.0 - counted.std()))
    if t >= 2:
        prev = np.einsum("ij,ij->i", e[1:], e[:-1])
        first = e[1:] @ e[0]
        out["to_previous"] = [None] + [float(v) for v in prev]
        out["frame_to_frame"] = float(prev.mean())
        out["subject_consistency"] = float(((np.maximum(0, prev) + np.maximum(0, first)) / 2).mean())
        k = int(np.argmin(prev))
        out["largest_drop"] = {"frame": int(frame_indices[k + 1]), "similarity": float(prev[k])}
        out["change_point"] = _change_point(to_ref, frame_indices)
    return out


def _change_point(series: np.ndarray, frame_indices: Sequence[int]) -> dict:
    """Single least-squares change point of a similarity series: the split ``k`` (1 <= k < T) minimising the
    squared deviations of ``series[:k]`` and ``series[k:]`` from their means."""
    s = np.asarray(series, dtype=np.float64)
    costs = [((s[:k] - s[:k].mean()) ** 2).sum() + ((s[k:] - s[k:].mean()) ** 2).sum() for k in range(1, len(s))]
    k = 1 + int(np.argmin(costs))
    return {"frame": int(frame_indices[k]), "before": float(s[:k].mean()), "after": float(s[k:].mean()),
            "drop": float(s[:k].mean() - s[k:].mean())}


def _resolve(path: str, root: Path | None) -> str:
    return str(root / path) if root is not None and path and not os.path.isabs(path) else path


def evaluate(videos: Any, reference: str | os.PathLike | None = None, model: Any = "base", id_model: Any = "base",
             frames: int | None = None, every: int = 1, backend: str = "pyav", root: str | os.PathLike | None = None,
             face: str | int = "largest", on_no_face: str = "skip", batch_size: int = 32, detector: str = "hog",
             upsample: int = 0, progress: Callable[[int], None] | None = None) -> VideoReport:
    """Evaluate the face consistency of videos.

    Args:
        videos: A video path, a list of them, or a CSV/Parquet path / DataFrame with columns ``video`` and
            (optional) ``reference``; relative paths in a file start at ``root`` (default: the file's folder).
        reference: Reference image for every video without its own (None: the first frame with a face).
        model, id_model: Perceptual and identity models (names/paths or loaded).
        frames, every, backend: Frame selection and decoder (:func:`perface.io.video.read_frames`).
        face: Which face in the first frame (``largest``, ``center``, index); later frames follow it.
        on_no_face: ``skip`` (frames without a face are listed) or ``error``.
        batch_size, detector, upsample: Embedding and detector settings.
        progress: Called with the number of frames analysed.

    Returns:
        :class:`VideoReport`.

    Raises:
        VideoReadError: every video failed to read (the first failure's message).
        GeneratedEvalError: a malformed videos file, or a reference image without a usable face when it is
            the only video.
    """
    import pandas as pd

    if isinstance(videos, pd.DataFrame) or (isinstance(videos, (str, os.PathLike))
                                            and Path(videos).suffix.lower() in (".csv", ".tsv", ".parquet")):
        table = read_rows(videos, ("video",), optional=("reference",), what="videos file")
        if root is None and not isinstance(videos, pd.DataFrame):
            root = Path(videos).resolve().parent
        items = [(_resolve(v, Path(root) if root else None),
                  _resolve(r, Path(root) if root else None) if r else None)
                 for v, r in zip(table["video"], table["reference"] if "reference" in table else [""] * len(table))]
    else:
        paths = [videos] if isinstance(videos, (str, os.PathLike)) else list(videos)
        if not paths:
            raise GeneratedEvalError("no video given")
        items = [(os.fspath(v), None) for v in paths]
    items = [(v, r if r else (os.fspath(reference) if reference is not None else None)) for v, r in items]
    models = load_models(model, id_model, detector=detector, upsample=upsample)
    analyzer = FaceAnalyzer(models, face=face, on_no_face="skip" if on_no_face == "skip" else "error",
                            batch_size=batch_size)
    refs: dict[str, FaceRecord] = {}
    for r in dict.fromkeys(r for _, r in items if r):
        refs[r] = analyzer.analyze([(r, r)])[0]
    out, unusable, errors = [], [], []
    for video, ref in items:
        if ref is not None and not refs[ref].ok:
            unusable.append({"video": video, "reference": ref, "reason": f"reference: {refs[ref].error}"})
            errors.append(GeneratedEvalError(f"reference {ref}: {refs[ref].error}"))
            continue
        try:
            clip = _read(video, frames, every, backend)
        except VideoReadError as exc:
            unusable.append({"video": video, "reference": ref, "reason": str(exc)})
            errors.append(exc)
            continue
        out.append(_evaluate_clip(analyzer, clip, video, ref, refs.get(ref) if ref else None, progress))
    if not out and errors:
        raise errors[0]
    info = {"model": getattr(models["perceptual"], "name", str(model)),
            "id_model": getattr(models["identity"], "name", str(id_model)), "backend": backend,
            "every": None if frames is not None else every, "frames_requested": frames, "face": face,
            "n": len(out), "n_total": len(items)}
    return VideoReport(out, unusable, info)


def _read(video: str, frames: int | None, every: int, backend: str):
    from perface.io.video import read_frames

    return read_frames(video, every=every, frames=frames, backend=backend)


def _evaluate_clip(analyzer: FaceAnalyzer, clip, video: str, ref: str | None, ref_record: FaceRecord | None,
                   progress: Callable[[int], None] | None) -> dict:
    pending, records, near = [], [], None
    for idx, array in zip(clip.indices, clip.frames):
        rec, chips = analyzer.measure(array, f"{video} frame {idx}", near=near)
        records.append(rec)
        if rec.ok:
            near = rec.face.box
            pending.append((rec, chips))
        if progress:
            progress(1)
    analyzer.embed(pending)
    with_face = [(i, r) for i, r in zip(clip.indices, records) if r.ok]
    idx = [i for i, _ in with_face]
    per_model = {}
    for key in ("identity", "perceptual"):
        emb = np.stack([r.embeddings[key] for _, r in with_face]) if with_face else np.zeros((0, 1))
        ref_emb = ref_record.embeddings[key] if ref_record is not None else None
        per_model[key] = sequence_metrics(emb, idx, ref_emb)
    pos = {i: k for k, i in enumerate(idx)}
    per_frame = []
    for i, r in zip(clip.indices, records):
        k = pos.get(i)
        per_frame.append({"frame": int(i), "face": r.ok, "faces_found": r.faces_found, "box": r.box(),
                          **{f"{m}_to_reference": (per_model[m]["to_reference"][k] if k is not None else None)
                             for m in ("identity", "perceptual")},
                          **{f"{m}_to_previous": (per_model[m]["to_previous"][k] if k is not None else None)
                             for m in ("identity", "perceptual")},
                          **({"file": clip.names[clip.indices.index(i)]} if clip.names else {})})
    ident = {k: per_model["identity"][k] for k in METRIC_KEYS}
    return {"video": video, "reference": ref if ref is not None else "first frame with a face",
            **ident, "perceptual": {k: per_model["perceptual"][k] for k in METRIC_KEYS},
            "frames": len(records), "frames_total": int(clip.total), "fps": clip.fps,
            "frames_with_face": len(with_face),
            "frames_without_face": [int(i) for i, r in zip(clip.indices, records) if not r.ok],
            "per_frame": per_frame}
