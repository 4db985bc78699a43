"""Measure the faces of generated images once, for every evaluation of generated faces
(:mod:`~perface.evaluation.swap`, :mod:`~perface.evaluation.anonymization`, :mod:`~perface.evaluation.video`).

For each image the face is **detected once** (with the first model's face options: detector chain, upsampling,
largest side; ``face`` / ``on_no_face`` override its choice of face and its no-face policy), then

* chosen (``largest``, ``center``, an index, or in videos the face nearest the previous frame's box),
* landmarked with dlib's 68-point predictor (head pose and expression, :mod:`perface.face.pose`),
* **aligned per model** (each model's own chip template: dlib 5-point chips for the dlib ResNet, the ArcFace
  112 px template for iResNets) and embedded in batches,
* scored for clarity: variance of the Laplacian (``cv2.Laplacian``, 3x3 aperture, float64) of the grey-level
  chip of the first model; a blurred or upscaled face has a lower value,
* kept as a small thumbnail (the face box enlarged 1.6x, 128 px) for contact sheets.

Images that cannot be read or have no usable face are returned with ``status`` ``"error"`` / ``"no_face"``
and the reason; callers list them and never drop them silently.

Also here, shared by swap and anonymisation evaluation: the input rows (a pairs file or DataFrame, or folders
matched by file name: :func:`row_table`), the per-row preservation measures (:func:`preservation`: pose,
expression, attribute score, clarity), the summary statistics (:func:`summarize`) and their text table.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import cv2
import numpy as np
import pandas as pd

from perface.errors import (FileCollectionError, GeneratedEvalError, NoFaceError, PerFaceError, SettingsError,
                            UsageError)
from perface.evaluation.agreement import bootstrap_ci
from perface.face.face import Face
from perface.face.landmarks import landmark_predictor
from perface.face.pose import HeadPose, expression_distance, head_pose
from perface.io.files import collect_images, resolve_root
from perface.io.image import load_image
from perface.io.tables import read_table, text_table
from perface.loading import load as perface_load
from perface.preprocessing import FaceOptions
from perface.progress import ProgressFactory

__all__ = ["ANGLES", "ATTRIBUTE_EXPRESSION_SCALE", "ATTRIBUTE_POSE_SCALE_DEG", "FaceAnalyzer", "FaceRecord",
           "RowTable", "analyze_images", "attribute_score", "check_bootstrap", "column_summary", "identity_score_100",
           "load_models", "pose_errors", "preservation", "preservation_summary", "read_rows", "row_table",
           "rows_from_folders", "split_rows", "summarize", "summary_table", "unusable_reason", "unusable_warnings"]

#: Attribute score 100 * exp(-(mean |pose error| / 30 deg + expression error / 0.1)).
ATTRIBUTE_POSE_SCALE_DEG = 30.0
ATTRIBUTE_EXPRESSION_SCALE = 0.1
#: Head-pose angles, in the order of every table.
ANGLES = ("yaw", "pitch", "roll")
#: Fewest bootstrap resamples accepted.
MIN_BOOTSTRAP = 100
_THUMB = 128


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
            The first model's face options (detector chain, upsampling, ``face``, ``on_no_face``) and chips
            (for clarity) are used.
        face: Overrides the first model's choice: ``"largest"``, ``"center"`` or an index k (largest first);
            None: the model's.
        on_no_face: Overrides the first model's policy: ``"skip"`` (record ``no_face``), ``"whole-image"`` (the
            whole image is the face box, for tight crops) or ``"error"`` (raise :class:`NoFaceError` at the
            first image without a face); None: the model's.
        batch_size: Chips per network call.

    Raises:
        SettingsError: no model, ``face="all"`` (one face per image is measured), a bad option or batch size.
    """

    def __init__(self, models: Mapping[str, Any], face: str | int | None = None, on_no_face: str | None = None,
                 batch_size: int = 32):
        if not models:
            raise SettingsError("FaceAnalyzer needs at least one model")
        if int(batch_size) < 1:
            raise SettingsError(f"--batch-size {batch_size}: use at least 1")
        self.models = dict(models)
        self.first = next(iter(self.models.values()))
        self.options: FaceOptions = self.first.face_options.override(face=face, on_no_face=on_no_face)
        if self.options.face == "all":
            raise SettingsError("--face all: generated-face evaluations measure one face per image; use largest, "
                                "center or an index")
        self.batch_size = int(batch_size)

    def _choose(self, image: np.ndarray, faces: list[Face], name: str, near: Sequence[float] | None) -> Face | None:
        if near is not None and len(faces) > 1:
            cx, cy = (near[0] + near[2]) / 2, (near[1] + near[3]) / 2
            return min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2)
        chosen = self.first.pipeline.select(image, faces, face=self.options.face, on_no_face=self.options.on_no_face,
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
            if self.options.on_no_face == "error":
                raise
            rec.status, rec.error = "no_face", " ".join(str(exc).split())
            return rec, {}
        if face is None:
            rec.status, rec.error = "no_face", f"no face found in {name}"
            return rec, {}
        rec.face = face
        lm68 = face.landmarks if len(face.landmarks) == 68 else landmark_predictor(68)(image, face.box)
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
                by_points[points] = landmark_predictor(points)(image, face.box)
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


def load_models(model: Any = "base", id_model: Any = "base", load: Callable[[str], Any] | None = None
                ) -> dict[str, Any]:
    """``{"perceptual": model, "identity": id_model}``.

    Args:
        model, id_model: Loaded models, or names/paths loaded with ``load`` (the same name once, shared).
        load: Loads a name (default :func:`perface.load`; the CLI passes one that applies ``--threads`` and the
            face options).
    """
    load = load or perface_load
    out: dict[str, Any] = {}
    loaded: dict[str, Any] = {}
    for key, m in (("perceptual", model), ("identity", id_model)):
        if isinstance(m, (str, os.PathLike)):
            name = os.fspath(m)
            if name not in loaded:
                loaded[name] = load(name)
            out[key] = loaded[name]
        else:
            out[key] = m
    return out


def model_info(models: Mapping[str, Any], analyzer: FaceAnalyzer) -> dict:
    """``{model, id_model, face_options}`` of a report's ``info`` (names and the face options used)."""
    return {"model": models["perceptual"].name, "id_model": models["identity"].name,
            "face_options": analyzer.options.to_dict()}


def _resolve(path: str, root: Path | None) -> str:
    return str(root / path) if root is not None and path and not os.path.isabs(path) else path


def analyze_images(analyzer: FaceAnalyzer, names: list[str], root: Path | None,
                   progress: ProgressFactory | None = None) -> dict[str, FaceRecord]:
    """Measure each distinct image once (``{name: FaceRecord}``; empty names are not measured; relative names
    start at ``root``); ``progress``: ``(label, total) -> advance`` (one bar)."""
    unique = [n for n in dict.fromkeys(names) if n]
    advance = progress("measuring faces", len(unique)) if progress else None
    records = analyzer.analyze(((n, _resolve(n, root)) for n in unique), progress=advance)
    return dict(zip(unique, records))


# --- input rows ---------------------------------------------------------------------------------------------
@dataclass
class RowTable:
    """The rows of a swap / anonymisation evaluation.

    Attributes:
        frame: One row per item, a string column per role ('' where a folder lacks the name).
        root: Folder relative paths start from (None: paths as given).
        pairs: The pairs file, ``"<DataFrame>"``, or None for folders.
        folders: ``{role: folder}`` when rows come from folders matched by name, else None.
    """

    frame: pd.DataFrame
    root: Path | None
    pairs: str | None
    folders: dict[str, str] | None = None

    def info(self) -> dict:
        return {"pairs": self.pairs, "folders": self.folders, "root": None if self.root is None else str(self.root)}


def row_table(pairs: Any = None, folders: Mapping[str, str | os.PathLike | None] | None = None,
              columns: Sequence[str] = (), optional: Sequence[str] = (), root: str | os.PathLike | None = None,
              driver: str | None = None) -> RowTable:
    """The rows to evaluate: from a pairs file or DataFrame, or from one folder per column matched by file name.

    Args:
        pairs: CSV/TSV/Parquet path or DataFrame with ``columns`` (and any of ``optional``).
        folders: ``{column: folder}`` instead of ``pairs`` (None values: not given).
        columns: The roles, e.g. ``("source", "target", "result")``.
        root: Folder the file's relative paths start from (default: :func:`perface.io.files.resolve_root`; for a
            DataFrame, None keeps the paths as given).
        driver: With folders, the column whose files define the rows (default: the last column).

    Raises:
        UsageError: both or neither of ``pairs`` and (all) ``folders``.
        SettingsError: ``root`` is not a folder.
        TableError, GeneratedEvalError, FileCollectionError, FileNotFoundError: see :func:`read_rows` and
            :func:`rows_from_folders`.
    """
    given = {c: os.fspath(f) for c, f in (folders or {}).items() if f}
    flags = " --".join(columns)
    if pairs is not None and given:
        raise UsageError(f"give --pairs or --{flags}, not both")
    if pairs is None:
        if len(given) != len(columns):
            raise UsageError(f"give --pairs FILE or all of --{' DIR --'.join(columns)} DIR")
        if root is not None:
            raise UsageError("--root applies to --pairs files; folders give their own paths")
        return RowTable(rows_from_folders(given, driver or columns[-1]), None, None, given)
    if isinstance(pairs, pd.DataFrame):
        folder = resolve_root("", root=root) if root is not None else None
        return RowTable(read_rows(pairs, columns, optional, allow_empty=True), folder, "<DataFrame>")
    frame = read_rows(pairs, columns, optional)
    return RowTable(frame, resolve_root(pairs, [p for c in columns for p in frame[c]], root), os.fspath(pairs))


def read_rows(source: Any, columns: Sequence[str], optional: Sequence[str] = (), what: str = "pairs file",
              allow_empty: bool = False) -> pd.DataFrame:
    """A table of image paths: a CSV/TSV/Parquet file (:func:`perface.io.tables.read_table`) or a DataFrame
    with at least ``columns``.

    ``allow_empty`` keeps rows with empty cells (folders matched by name: a name missing from one folder);
    the evaluations list them as unusable. Otherwise an empty cell is an error.

    Returns:
        A DataFrame (stripped strings, index reset) with ``columns`` plus whichever ``optional`` are present.

    Raises:
        FileNotFoundError: no such file.
        TableError: an unreadable file (names the file and line).
        GeneratedEvalError: missing columns, empty cells, or no rows.
    """
    if isinstance(source, pd.DataFrame):
        frame, name = source.copy(), "<DataFrame>"
        frame.columns = [str(c).strip() for c in frame.columns]
    else:
        frame, _ = read_table(source, example=",".join(columns))
        name = os.fspath(source)
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


def _images_by_stem(folder: Path, flag: str) -> dict[str, str]:
    """``{relative path without extension: relative path}`` of the images under ``folder``
    (:func:`perface.io.files.collect_images`: recursive, following links; two links to one file both count)."""
    found = collect_images([folder])
    out: dict[str, str] = {}
    for p in found.files + found.duplicates:
        rel = Path(p).relative_to(folder)
        stem = str(rel.with_suffix(""))
        if stem in out:
            raise GeneratedEvalError(f"{flag} {folder}: two images named {stem} ({out[stem]}, {rel}); keep one "
                                     "image per name so folders can be matched by file name")
        out[stem] = str(rel)
    return out


def rows_from_folders(folders: Mapping[str, str | os.PathLike], driver: str) -> pd.DataFrame:
    """Rows matched by file name (relative path without extension) across folders.

    Args:
        folders: ``{column: folder}``, e.g. ``{"source": ..., "target": ..., "result": ...}``.
        driver: The column whose files define the rows (e.g. ``"result"``); a name missing from another
            folder gives an empty cell there (reported as an unusable row by the evaluation).

    Returns:
        A DataFrame with one column per folder holding the paths ('' where missing), rows in ``driver``'s order.

    Raises:
        FileCollectionError: a folder is missing or has no images.
        GeneratedEvalError: two images in one folder share a name.
    """
    found = {}
    for col, folder in folders.items():
        path = Path(folder)
        if not path.is_dir():
            raise FileCollectionError(f"--{col} {folder}: not a folder; give the folder of {col} images")
        found[col] = _images_by_stem(path, f"--{col}")
    rows = [{col: (str(Path(folders[col]) / found[col][stem]) if stem in found[col] else "") for col in folders}
            for stem in found[driver]]
    return pd.DataFrame(rows, columns=list(folders))


def split_rows(frame: pd.DataFrame, columns: Sequence[str], records: Mapping[str, FaceRecord]
               ) -> tuple[list[tuple[int, dict[str, str], list[FaceRecord]]], list[dict]]:
    """``(usable, unusable)``: usable rows as ``(row, {role: name}, [record per role])``, unusable ones as
    ``{row, role: name..., reason}``."""
    usable, unusable = [], []
    for i, r in frame.iterrows():
        roles = {c: r[c] for c in columns}
        why = unusable_reason(roles, records)
        if why:
            unusable.append({"row": int(i), **roles, "reason": why})
        else:
            usable.append((int(i), roles, [records[r[c]] for c in columns]))
    return usable, unusable


def unusable_reason(roles: dict[str, str], records: Mapping[str, FaceRecord]) -> str:
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
    """Absolute yaw, pitch and roll differences in degrees (wrapped to [0, 180])."""
    out = {}
    for k in ANGLES:
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


def preservation(reference: FaceRecord, other: FaceRecord, reference_role: str, other_role: str) -> dict:
    """How well ``other`` keeps ``reference``'s pose, expression and sharpness (a swap's result against its
    target, an anonymised face against its original).

    Returns:
        ``{REF_yaw, REF_pitch, REF_roll, OTHER_yaw, ..., yaw_error, pitch_error, roll_error, expression_error,
        attribute_score_100, clarity_REF, clarity_OTHER, clarity_ratio}`` (REF / OTHER: the role names;
        ``clarity_ratio`` = other / reference, None when the reference's clarity is 0).
    """
    errors = pose_errors(reference.pose, other.pose)
    expr = expression_error(reference, other)
    return {**{f"{reference_role}_{k}": float(getattr(reference.pose, k)) for k in ANGLES},
            **{f"{other_role}_{k}": float(getattr(other.pose, k)) for k in ANGLES},
            **{f"{k}_error": v for k, v in errors.items()},
            "expression_error": expr, "attribute_score_100": attribute_score(errors, expr),
            f"clarity_{reference_role}": reference.clarity, f"clarity_{other_role}": other.clarity,
            "clarity_ratio": other.clarity / reference.clarity if reference.clarity and reference.clarity > 0 else None}


def summarize(values: Sequence[float] | np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """``{mean, std, median, ci95, n}`` of the finite values (``ci95``: percentile bootstrap of the mean).

    ``std`` is the population standard deviation (ddof=0). With no values every statistic is None.
    """
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"mean": None, "std": None, "median": None, "ci95": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "median": float(np.median(v)),
            "ci95": list(bootstrap_ci(v, n_boot=n_boot, seed=seed)), "n": int(len(v))}


def column_summary(rows: Sequence[Mapping[str, Any]], key: str, n_boot: int = 2000, seed: int = 0) -> dict:
    """:func:`summarize` of one column of per-row dicts (None cells left out; booleans count as 0/1)."""
    return summarize([float(row[key]) for row in rows if row[key] is not None], n_boot=n_boot, seed=seed)


def preservation_summary(rows: Sequence[Mapping[str, Any]], n_boot: int = 2000, seed: int = 0) -> dict:
    """Summaries of the :func:`preservation` measures: ``pose_error_deg`` (``{yaw, pitch, roll}``),
    ``expression_error``, ``attribute_score_100``, ``clarity_ratio``."""
    stat = partial(column_summary, rows, n_boot=n_boot, seed=seed)
    return {"pose_error_deg": {a: stat(f"{a}_error") for a in ANGLES},
            **{k: stat(k) for k in ("expression_error", "attribute_score_100", "clarity_ratio")}}


def check_bootstrap(n_boot: int) -> None:
    """Raises :class:`SettingsError` for fewer than :data:`MIN_BOOTSTRAP` resamples."""
    if n_boot < MIN_BOOTSTRAP:
        raise SettingsError(f"--bootstrap {n_boot}: use at least {MIN_BOOTSTRAP} resamples")


# --- text ---------------------------------------------------------------------------------------------------
def _f(v, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def summary_table(summary: Mapping[str, Any]) -> list[str]:
    """The ``measure, mean, std, median, 95% CI, n`` lines of a summary (angles with 2 decimals)."""
    rows = [["measure", "mean", "std", "median", "95% CI", "n"]]
    for key, s in summary.items():
        items = [(f"pose_error_deg.{k}", v, 2) for k, v in s.items()] if key == "pose_error_deg" else \
            ([(key, s, 4)] if isinstance(s, dict) and "mean" in s else [])
        for name, st, d in items:
            ci = st.get("ci95")
            rows.append([name, _f(st["mean"], d), _f(st["std"], d), _f(st["median"], d),
                         f"[{ci[0]:.{d}f}, {ci[1]:.{d}f}]" if ci else "-", str(st["n"])])
    return text_table(rows)


def unusable_warnings(unusable: Sequence[Mapping[str, Any]], n_total: int) -> list[str]:
    """One line saying how many rows were left out and why (the first three), or none."""
    if not unusable:
        return []
    shown = "; ".join(f"row {u['row']}: {u['reason']}" for u in unusable[:3])
    more = ", ..." if len(unusable) > 3 else ""
    return [f"{len(unusable)} of {n_total} rows unusable and left out ({shown}{more}); all are listed with "
            "--json/--report"]
