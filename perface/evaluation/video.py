"""Evaluate generated videos: does the face stay one person, and the reference's? (``perface eval video``)

Frames are read with :func:`perface.io.video.read_frames` (PyAV or OpenCV; MP4, AVI, WEBM, MOV, GIF or a
folder of frames; ``every`` K-th frame or ``frames`` N evenly spaced). In each frame the face is detected;
when several are found, the one whose box centre is nearest the previous face's is kept (the largest in the
first frame with a face). Each face is embedded by the identity model (``id_model``, default ``base``) and by
the PerFace model (``model``). Faces are found with the PerFace model's face options (``face`` and
``on_no_face`` override them; ``whole-image`` does not apply to videos).

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
import pandas as pd

from perface.errors import GeneratedEvalError, SettingsError, UsageError, VideoReadError
from perface.evaluation.face_analysis import FaceAnalyzer, FaceRecord, load_models, model_info, read_rows
from perface.io.files import resolve_root
from perface.io.tables import text_table
from perface.io.video import check_selection, read_frames
from perface.progress import ProgressFactory

__all__ = ["METRIC_KEYS", "VideoReport", "evaluate", "sequence_metrics"]

#: Keys computed per model for each video.
METRIC_KEYS = ("mean", "std", "min", "consistency", "frame_to_frame", "subject_consistency", "largest_drop",
               "change_point")
_TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


def _f(v) -> str:
    return "-" if v is None else f"{v:.4f}"


@dataclass
class VideoReport:
    """Result of :func:`evaluate`: ``videos`` (one dict per evaluated video), ``unusable`` and ``info``."""

    videos: list[dict]
    unusable: list[dict]
    info: dict

    def to_dict(self) -> dict:
        return {"command": "video", **self.info, "videos": self.videos,
                "unusable": {"count": len(self.unusable), "videos": self.unusable}}

    def table(self) -> list[str]:
        """The text ``perface eval video`` prints: one line per video (identity model's numbers)."""
        rows = [["video", "frames", "no face", "mean", "std", "min", "consistency", "frame-to-frame",
                 "subject cons.", "change at"]]
        for v in self.videos:
            cp = v["change_point"]
            rows.append([v["video"], str(v["frames"]), str(len(v["frames_without_face"])), _f(v["mean"]), _f(v["std"]),
                         _f(v["min"]), _f(v["consistency"]), _f(v["frame_to_frame"]), _f(v["subject_consistency"]),
                         f"{cp['frame']} (drop {cp['drop']:.3f})" if cp else "-"])
        return [f"identity model {self.info['id_model']} (numbers below), perceptual model {self.info['model']} "
                "(in --json/--report)"] + text_table(rows)

    def warnings(self) -> list[str]:
        """Lines about frames without a face and videos left out (for stderr)."""
        out = []
        for v in self.videos:
            missing = v["frames_without_face"]
            if missing:
                shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
                out.append(f"{v['video']}: no face in {len(missing)} of {v['frames']} frames ({shown})")
        return out + [f"{u['video']}: left out: {u['reason']}" for u in self.unusable]


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


def _items(videos: Any, videos_file: Any, reference: str | os.PathLike | None, root: str | os.PathLike | None
           ) -> list[tuple[str, str | None]]:
    """``(video, reference or None)`` per video to evaluate."""
    if isinstance(videos, pd.DataFrame) or (isinstance(videos, (str, os.PathLike))
                                            and str(videos).lower().endswith(_TABLE_SUFFIXES)):
        videos, videos_file = None, videos
    listed = [] if videos is None else [videos] if isinstance(videos, (str, os.PathLike)) else list(videos)
    if listed and videos_file is not None:
        raise UsageError("give VIDEO arguments or --videos CSV, not both")
    if not listed and videos_file is None:
        raise UsageError("eval video needs VIDEO arguments or --videos CSV")
    if reference is not None and not Path(reference).is_file():
        raise GeneratedEvalError(f"--reference {os.fspath(reference)}: no such image file; check the path")
    default = os.fspath(reference) if reference is not None else None
    if videos_file is None:
        return [(os.fspath(v), default) for v in listed]
    table = read_rows(videos_file, ("video",), optional=("reference",), what="videos file")
    if isinstance(videos_file, pd.DataFrame):
        folder = resolve_root("", root=root) if root is not None else None
    else:
        folder = resolve_root(videos_file, list(table["video"]), root)
    refs = table["reference"] if "reference" in table else [""] * len(table)
    return [(_resolve(v, folder), _resolve(r, folder) if r else default) for v, r in zip(table["video"], refs)]


def evaluate(videos: Any = None, reference: str | os.PathLike | None = None, model: Any = "base",
             id_model: Any = "base", *, videos_file: Any = None, frames: int | None = None, every: int = 1,
             backend: str = "pyav", root: str | os.PathLike | None = None, face: str | int | None = None,
             on_no_face: str | None = None, batch_size: int = 32, load: Callable[[str], Any] | None = None,
             progress: ProgressFactory | None = None) -> VideoReport:
    """Evaluate the face consistency of videos.

    Args:
        videos: A video path (file or frame folder) or a list of them; a CSV/TSV/Parquet path or DataFrame is
            taken as ``videos_file``.
        reference: Reference image for every video without its own (None: the first frame with a face).
        model, id_model: Perceptual and identity models (loaded, or names/paths for ``load``).
        videos_file: Instead of ``videos``: a table with columns ``video`` and (optional) ``reference``; its
            relative paths start at ``root`` (default: :func:`perface.io.files.resolve_root`).
        frames, every, backend: Frame selection and decoder (:func:`perface.io.video.read_frames`).
        face: Which face in the first frame (``largest``, ``center``, index; None: the model's); later frames
            follow it.
        on_no_face: ``skip`` (frames without a face are listed) or ``error``; None: the model's (a model that
            records ``whole-image`` skips).
        batch_size: Chips per network call.
        load: Loads model names (default :func:`perface.load`).
        progress: ``(label, total) -> advance`` progress-bar factory (one bar per video).

    Returns:
        :class:`VideoReport`.

    Raises:
        UsageError: both or neither of ``videos`` and ``videos_file``.
        SettingsError: bad ``frames`` / ``every`` / ``backend``, ``on_no_face="whole-image"``, a bad face option.
        VideoReadError: every video failed to read (the first failure's message).
        GeneratedEvalError: a malformed videos file, a missing ``reference``, or a reference image without a
            usable face when it is the only video.
    """
    items = _items(videos, videos_file, reference, root)
    check_selection(every, frames, backend)
    if on_no_face == "whole-image":
        raise SettingsError("--on-no-face whole-image does not apply to videos: frames without a face are listed "
                            "(skip) or stop the run (error)")
    models = load_models(model, id_model, load)
    policy = on_no_face or ("error" if models["perceptual"].face_options.on_no_face == "error" else "skip")
    analyzer = FaceAnalyzer(models, face=face, on_no_face=policy, batch_size=batch_size)
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
            clip = read_frames(video, every=every, frames=frames, backend=backend)
        except VideoReadError as exc:
            unusable.append({"video": video, "reference": ref, "reason": str(exc)})
            errors.append(exc)
            continue
        advance = progress(f"frames of {Path(video).name}", len(clip)) if progress else None
        out.append(_evaluate_clip(analyzer, clip, video, ref, refs.get(ref) if ref else None, advance))
    if not out and errors:
        raise errors[0]
    info = {**model_info(models, analyzer), "backend": backend, "every": None if frames is not None else every,
            "frames_requested": frames, "n": len(out), "n_total": len(items)}
    return VideoReport(out, unusable, info)


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
