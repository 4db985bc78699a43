"""Measure the faces of generated images once, for every evaluation of generated faces
(:mod:`~perface.evaluation.swap`, :mod:`~perface.evaluation.anonymization`, :mod:`~perface.evaluation.video`).

For each image the face is **detected once** (with the first model's detector settings), then

* chosen (``largest``, ``center``, an index, or in videos the face nearest the previous frame's box),
* landmarked with dlib's 68-point predictor (head pose and expression, :mod:`perface.face.pose`),
* **aligned per model** (each model's own chip template: dlib 5-point chips for the dlib ResNet, the ArcFace
  112 px template for iResNets) and embedded in batches,
* scored for clarity: variance of the Laplacian (``cv2.Laplacian``, 3x3 aperture, float64) of the grey-level
  chip of the first model; a blurred or upscaled face has a lower value,
* kept as a small thumbnail (the face box enlarged 1.6x, 128 px) for contact sheets.

Images that cannot be read or have no usable face are returned with ``status`` ``"error"`` / ``"no_face"``
and the reason; callers list them and never drop them silently.

Also here: the shared summary statistics (:func:`summarize`), the attribute score
(:func:`attribute_score`) and readers for row files and folder matching (:func:`read_rows`,
:func:`rows_from_folders`), which could move to a shared core module later.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import cv2
import numpy as np

from perface.errors import GeneratedEvalError, NoFaceError, PerFaceError
from perface.face.face import Face
from perface.face.landmarks import LandmarkPredictor
from perface.face.pose import HeadPose, expression_distance, head_pose

__all__ = ["ATTRIBUTE_POSE_SCALE_DEG", "ATTRIBUTE_EXPRESSION_SCALE", "FaceAnalyzer", "FaceRecord", "analyze_images",
           "attribute_score", "identity_score_100", "load_models", "pose_errors", "read_rows", "rows_from_folders",
           "summarize", "unusable_reason"]

#: Attribute score 100 * exp(-(mean |pose error| / 30 deg + expression error / 0.1)).
ATTRIBUTE_POSE_SCALE_DEG = 30.0
ATTRIBUTE_EXPRESSION_SCALE = 0.1
_THUMB = 128
_PREDICTORS: dict[int, LandmarkPredictor] = {}


@dataclass
class FaceRecord:
    """What was measured on one image.

    Attributes:
        name: The image as named in the input (path relative to the root, or ``frame i``).
        status: ``"ok"``, ``"no_face"`` or ``"error"`` (decode failure).
        error: Why it is not ok (empty when ok).
        face: The chosen face (box, detector score, landmarks of the detector's pipeline).
        faces_found: Faces the detector found in the image.
        landmarks68: float32 (68, 2) landmarks (pixels).
        pose: Head pose.
        embeddings: ``{model key: float32 (D,) L2-normalised}``.
        clarity: Variance of the Laplacian of the first model's grey chip.
        thumb: uint8 (128, 128, 3) RGB crop around the face (for contact sheets), or None.
        image_size: (height, width).
    """

    name: str
    status: str = "ok"
    error: str = ""
    face: Face | None = None
    faces_found: int = 0
    landmarks68: np.ndarray | None = None
    pose: HeadPose | None = None
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    clarity: float | None = None
    thumb: np.ndarray | None = None
    image_size: tuple[int, int] = (0, 0)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def box(self) -> list[float] | None:
        return None if self.face is None else [round(float(v), 1) for v in self.face.box]


def _landmark_kind(model) -> int:
    """Landmark count a model's chips are aligned from (as :class:`perface.face.FacePipeline` decides)."""
    return 5 if model.preprocessing.alignment == "dlib" else 68


def _thumbnail(image: np.ndarray, box: Sequence[float]) -> np.ndarray:
    x0, y0, x1, y1 = box
    cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, 1.6 * max(x1 - x0, y1 - y0)
    m = np.array([[_THUMB / side, 0, _THUMB / 2 - cx * _THUMB / side],
                  [0, _THUMB / side, _THUMB / 2 - cy * _THUMB / side]], dtype=np.float64)
    return cv2.warpAffine(image, m, (_THUMB, _THUMB), flags=cv2.INTER_AREA, borderValue=(0, 0, 0))


def laplacian_variance(chip: np.ndarray) -> float:
    """Variance of the Laplacian of a uint8 RGB chip's grey levels (higher = sharper)."""
    grey = cv2.cvtColor(np.ascontiguousarray(chip), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F, ksize=3).var())


class FaceAnalyzer:
    """Detect once, measure pose/expression/clarity, align and embed with several models.

    Args:
        models: ``{key: loaded model}`` (:func:`perface.load`); the same object under two keys is embedded once.
            The first model's detector settings and chips (for clarity) are used.
        face: ``"largest"``, ``"center"`` or an index k (largest first).
        on_no_face: ``"skip"`` (record ``no_face``), ``"whole-image"`` (the whole image is the face box, for
            tight crops) or ``"error"`` (raise :class:`NoFaceError` at the first image without a face).
        batch_size: Chips per network call.
    """

    def __init__(self, models: Mapping[str, Any], face: str | int = "largest", on_no_face: str = "skip",
                 batch_size: int = 32):
        if not models:
            raise ValueError("FaceAnalyzer needs at least one model")
        if on_no_face not in ("skip", "whole-image", "error"):
            raise ValueError(f"on_no_face must be skip, whole-image or error, got {on_no_face!r}")
        self.models = dict(models)
        self.first = next(iter(self.models.values()))
        self.face = face
        self.on_no_face = on_no_face
        self.batch_size = int(batch_size)

    def _predictor(self, points: int) -> LandmarkPredictor:
        if points not in _PREDICTORS:  # loading the 68-point model takes about a second: once per process
            _PREDICTORS[points] = LandmarkPredictor(points)
        return _PREDICTORS[points]

    def _choose(self, image: np.ndarray, faces: list[Face], name: str, near: Sequence[float] | None) -> Face | None:
        if near is not None and len(faces) > 1:
            cx, cy = (near[0] + near[2]) / 2, (near[1] + near[3]) / 2
            return min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2)
        chosen = self.first.pipeline.select(image, faces, face=self.face,
                                            on_no_face="skip" if self.on_no_face == "skip" else self.on_no_face,
                                            name=name)
        return chosen[0].face if chosen else None

    def measure(self, image: np.ndarray, name: str, near: Sequence[float] | None = None
                ) -> tuple[FaceRecord, dict[str, np.ndarray]]:
        """Measure one decoded image; returns the record and the chips to embed (``{model key: chip}``).

        Args:
            image: uint8 (H, W, 3) RGB.
            name: How to call it in results.
            near: Box of the previous frame's face: when several faces are found, the one whose box centre is
                nearest is chosen (video tracking); otherwise ``face`` decides.
        """
        rec = FaceRecord(name=name, image_size=(int(image.shape[0]), int(image.shape[1])))
        faces = self.first.pipeline.detect(image)
        rec.faces_found = len(faces)
        try:
            face = self._choose(image, faces, name, near)
        except NoFaceError as exc:
            if self.on_no_face == "error":
                raise
            rec.status, rec.error = "no_face", " ".join(str(exc).split())
            return rec, {}
        if face is None:
            rec.status, rec.error = "no_face", f"no face found in {name}"
            return rec, {}
        rec.face = face
        lm68 = face.landmarks if len(face.landmarks) == 68 else self._predictor(68)(image, face.box)
        rec.landmarks68 = np.asarray(lm68, dtype=np.float32)
        rec.pose = head_pose(rec.landmarks68, image.shape[:2])
        by_points = {len(face.landmarks): face.landmarks, 68: rec.landmarks68}
        chips: dict[str, np.ndarray] = {}
        done: dict[int, np.ndarray] = {}
        for key, model in self.models.items():
            if id(model) in done:
                chips[key] = done[id(model)]
                continue
            points = _landmark_kind(model)
            if points not in by_points:
                by_points[points] = self._predictor(points)(image, face.box)
            f = Face(box=face.box, score=face.score, landmarks=by_points[points], detector=face.detector)
            chips[key] = done[id(model)] = model.pipeline.align(image, f)
        rec.clarity = laplacian_variance(next(iter(chips.values())))
        rec.thumb = _thumbnail(image, face.box)
        return rec, chips

    def embed(self, pending: list[tuple[FaceRecord, dict[str, np.ndarray]]]) -> None:
        """Embed the chips of measured records in batches (fills ``record.embeddings``)."""
        todo = [(r, c) for r, c in pending if r.ok]
        if not todo:
            return
        seen: dict[int, str] = {}
        for key, model in self.models.items():
            if id(model) in seen:
                for r, _ in todo:
                    r.embeddings[key] = r.embeddings[seen[id(model)]]
                continue
            seen[id(model)] = key
            emb = model.embed_chips(np.stack([c[key] for _, c in todo]), batch_size=self.batch_size)
            for (r, _), e in zip(todo, emb):
                r.embeddings[key] = e

    def analyze(self, images: Iterable[tuple[str, Any]], progress: Callable[[int], None] | None = None,
                chunk: int = 256) -> list[FaceRecord]:
        """Measure and embed many images.

        Args:
            images: ``(name, source)`` pairs; ``source`` is anything :func:`perface.io.image.load_image` takes.
            progress: Called with the number of images finished.
            chunk: Images measured before each round of embedding.

        Returns:
            One :class:`FaceRecord` per input, in order (status ``error`` for unreadable images).
        """
        from perface.io.image import load_image

        out: list[FaceRecord] = []
        pending: list[tuple[FaceRecord, dict[str, np.ndarray]]] = []
        for name, source in images:
            try:
                array = load_image(source)
            except PerFaceError as exc:
                out.append(FaceRecord(name=name, status="error", error=" ".join(str(exc).split())))
            else:
                rec, chips = self.measure(array, name)
                out.append(rec)
                pending.append((rec, chips))
            if len(pending) >= chunk:
                self.embed(pending)
                pending.clear()
            if progress:
                progress(1)
        self.embed(pending)
        return out


def load_models(model: Any = "base", id_model: Any = "base", **load_options) -> dict[str, Any]:
    """``{"perceptual": model, "identity": id_model}``, loading names/paths with :func:`perface.load`
    (the same name is loaded once and shared)."""
    from perface.loading import load

    out: dict[str, Any] = {}
    cache: dict[str, Any] = {}
    for key, m in (("perceptual", model), ("identity", id_model)):
        if isinstance(m, (str, os.PathLike)):
            name = os.fspath(m)
            if name not in cache:
                cache[name] = load(name, **load_options)
            out[key] = cache[name]
        else:
            out[key] = m
    return out


def _resolve(path: str, root: Path | None) -> str:
    return str(root / path) if root is not None and not os.path.isabs(path) else path


def analyze_images(models: dict[str, Any], names: list[str], root: Path | None, face: str | int, on_no_face: str,
                   batch_size: int, progress: Callable[[int], None] | None) -> dict[str, FaceRecord]:
    """Measure each distinct image once (``{name: FaceRecord}``; empty names are not measured; relative names
    start at ``root``)."""
    analyzer = FaceAnalyzer(models, face=face, on_no_face=on_no_face, batch_size=batch_size)
    unique = [n for n in dict.fromkeys(names) if n]
    records = analyzer.analyze(((n, _resolve(n, root)) for n in unique), progress=progress)
    return dict(zip(unique, records))


def unusable_reason(roles: dict[str, str], records: dict[str, FaceRecord]) -> str:
    """Why a row cannot be evaluated ('' when all its images are usable): ``role: reason; ...``."""
    parts = []
    for role, name in roles.items():
        if not name:
            parts.append(f"{role}: no file (no {role} with this name)")
        elif not records[name].ok:
            parts.append(f"{role}: {records[name].error}")
    return "; ".join(parts)


# --- derived measures ---------------------------------------------------------------------------------------
def identity_score_100(cos: float) -> float:
    """Identity similarity on the 0-100 scale of face-swap / face-similarity tables: ``100 * max(0, cos)``."""
    return 100.0 * max(0.0, float(cos))


def pose_errors(reference: HeadPose, other: HeadPose) -> dict[str, float]:
    """Absolute yaw, pitch and roll differences in degrees (roll wrapped to [0, 180])."""
    out = {}
    for k in ("yaw", "pitch", "roll"):
        d = abs(getattr(other, k) - getattr(reference, k)) % 360.0
        out[k] = float(min(d, 360.0 - d))
    return out


def attribute_score(pose_error: Mapping[str, float], expression_error: float) -> float:
    """0-100 attribute preservation: ``100 * exp(-(mean(|d yaw|, |d pitch|, |d roll|) / 30 + expr / 0.1))``.

    100 when pose and expression are identical; a 30-degree mean pose error alone gives 36.8, an expression
    error of 0.1 alone gives 36.8.
    """
    mean_pose = (pose_error["yaw"] + pose_error["pitch"] + pose_error["roll"]) / 3.0
    return 100.0 * math.exp(-(mean_pose / ATTRIBUTE_POSE_SCALE_DEG + float(expression_error) / ATTRIBUTE_EXPRESSION_SCALE))


def expression_error(reference: FaceRecord, other: FaceRecord) -> float:
    """:func:`perface.face.pose.expression_distance` of ``other`` against ``reference``."""
    return expression_distance(other.landmarks68, reference.landmarks68)


def summarize(values: Sequence[float] | np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """``{mean, std, median, ci95, n}`` of the finite values (``ci95``: percentile bootstrap of the mean).

    ``std`` is the population standard deviation (ddof=0). With no values every statistic is None.
    """
    from perface.evaluation.agreement import bootstrap_ci

    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"mean": None, "std": None, "median": None, "ci95": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "median": float(np.median(v)),
            "ci95": list(bootstrap_ci(v, n_boot=n_boot, seed=seed)), "n": int(len(v))}


# --- row files ----------------------------------------------------------------------------------------------
def read_rows(source: Any, columns: Sequence[str], optional: Sequence[str] = (), what: str = "pairs file",
              allow_empty: bool = False):
    """A table of image paths: a CSV/TSV/Parquet file or a DataFrame with at least ``columns``.

    ``allow_empty`` keeps rows with empty cells (folders matched by name: a name missing from one folder);
    the evaluations list them as unusable. Otherwise an empty cell is an error.

    Returns:
        A pandas DataFrame (strings, index reset) with ``columns`` plus whichever ``optional`` are present.

    Raises:
        GeneratedEvalError: unreadable file, missing columns, empty cells, or no rows.
    """
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        frame, name = source.copy(), "<DataFrame>"
    else:
        name = os.fspath(source)
        path = Path(name)
        if not path.is_file():
            raise GeneratedEvalError(f"{what} {name}: no such file; check the path")
        try:
            if path.suffix.lower() in (".parquet", ".pq"):
                frame = pd.read_parquet(path)
            else:
                frame = pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=False,
                                    encoding="utf-8-sig")
        except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many types for bad files
            raise GeneratedEvalError(f"{what} {name}: not a readable CSV/Parquet table ({type(exc).__name__}: "
                                     f"{' '.join(str(exc).split())}); expected a header {','.join(columns)}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise GeneratedEvalError(f"{what} {name}: missing column(s) {', '.join(missing)} (found: "
                                 f"{', '.join(map(str, frame.columns)) or 'none'}); expected a header {','.join(columns)}")
    keep = list(columns) + [c for c in optional if c in frame.columns]
    frame = frame[keep].astype(str).apply(lambda s: s.str.strip()).reset_index(drop=True)
    if len(frame) == 0:
        raise GeneratedEvalError(f"{what} {name}: no rows")
    empty = frame[list(columns)].eq("").any(axis=1)
    if empty.any() and not allow_empty:
        first = int(np.flatnonzero(empty.to_numpy())[0])
        raise GeneratedEvalError(f"{what} {name}: {int(empty.sum())} row(s) with an empty path (first: row {first}); "
                                 "fill or remove them")
    return frame


def _images_by_stem(folder: Path) -> dict[str, str]:
    from perface.io.video import IMAGE_SUFFIXES

    out: dict[str, str] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            rel = p.relative_to(folder)
            stem = str(rel.with_suffix(""))
            if stem in out:
                raise GeneratedEvalError(f"folder {folder}: two images named {stem} ({out[stem]}, {rel}); keep one "
                                         "image per name so folders can be matched by file name")
            out[stem] = str(rel)
    return out


def rows_from_folders(folders: Mapping[str, str | os.PathLike], driver: str):
    """Rows matched by file name (relative path without extension) across folders.

    Args:
        folders: ``{column: folder}``, e.g. ``{"source": ..., "target": ..., "result": ...}``.
        driver: The column whose files define the rows (e.g. ``"result"``); a name missing from another
            folder gives an empty cell there (reported as an unusable row by the evaluation).

    Returns:
        A DataFrame with one column per folder holding absolute paths ('' where missing).

    Raises:
        GeneratedEvalError: a folder is missing or has no images.
    """
    import pandas as pd

    found = {}
    for col, folder in folders.items():
        path = Path(folder)
        if not path.is_dir():
            raise GeneratedEvalError(f"--{col} {folder}: not a folder")
        found[col] = _images_by_stem(path)
        if not found[col]:
            raise GeneratedEvalError(f"--{col} {folder}: no images found (JPEG, PNG, WEBP, BMP, TIFF, GIF)")
    rows = []
    for stem in found[driver]:
        rows.append({col: (str(Path(folders[col]) / found[col][stem]) if stem in found[col] else "")
                     for col in folders})
    return pd.DataFrame(rows, columns=list(folders))
