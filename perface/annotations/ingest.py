"""Ingest: read tool exports, check every answer, and sort it into accepted judgments or rejects with a reason.

Nothing is lost silently: every record a reader yields is either a row of the canonical judgments table or a
row of the rejects table (with ``reason`` and ``detail``), so ``read == accepted + rejected``.

Checks, in order (the first failing one is the reason):

==========================  ==================================================================================
reason                      meaning
==========================  ==================================================================================
``malformed-row``           the reader could not parse the row, or a required value is empty
``assignment-rejected``     (MTurk) the requester rejected the assignment: its answers are excluded
``cancelled``               (Label Studio) the annotator skipped the task
``unresolved-url``          an image URL that no ``--url-prefix`` maps to a path under the root
``path-escapes-root``       an absolute path outside the dataset root, or ``..`` climbing out of it
``same-image``              the anchor equals a candidate, or the two candidates are the same image
``unknown-choice``          the answer is not ``a`` / ``b`` (nor the path of one of the candidates)
``missing-image``           an image file does not exist under the dataset root
``duplicate``               the same annotator already answered this triplet (either candidate order);
                            the first answer in input order is kept
==========================  ==================================================================================
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from perface.annotations.aggregate import Filtered, check_threshold, filter_and_aggregate
from perface.annotations.paths import DEFAULT_URL_PREFIXES, PathProblem, normalize_path
from perface.annotations.readers import READERS
from perface.annotations.schema import JUDGMENT_COLUMNS, write_judgments, write_table, write_triplets
from perface.errors import AnnotationError, SettingsError
from perface.io.files import data_root
from perface.progress import track

__all__ = ["REJECT_REASONS", "REJECT_COLUMNS", "IngestResult", "IngestRun", "ingest", "ingest_folder", "write_ingest"]

#: Reject reason codes and what they mean.
REJECT_REASONS = {
    "malformed-row": "the row could not be parsed or a required value is empty",
    "assignment-rejected": "MTurk assignment rejected by the requester (its answers are excluded)",
    "cancelled": "annotation cancelled (skipped) in the annotation tool",
    "unresolved-url": "image URL that no --url-prefix maps to a path under the dataset root",
    "path-escapes-root": "image path outside the dataset root",
    "same-image": "the anchor equals a candidate (or the two candidates are the same image)",
    "unknown-choice": "the answer is not a or b",
    "missing-image": "an image file does not exist under the dataset root",
    "duplicate": "the same annotator already answered this triplet (first answer kept)",
}

#: Columns of the rejects table.
REJECT_COLUMNS = ("file", "location", "reason", "detail", "anchor", "a", "b", "choice", "annotator_id", "raw")


@dataclass
class IngestResult:
    """Accepted judgments (canonical columns) and rejects (:data:`REJECT_COLUMNS`)."""

    judgments: pd.DataFrame
    rejects: pd.DataFrame
    per_file: dict = field(default_factory=dict)  # file -> {"read", "accepted", "rejected"}

    @property
    def read(self) -> int:
        return len(self.judgments) + len(self.rejects)

    @property
    def accepted(self) -> int:
        return len(self.judgments)

    @property
    def rejected(self) -> int:
        return len(self.rejects)

    @property
    def by_reason(self) -> dict[str, int]:
        counts = Counter(self.rejects["reason"]) if len(self.rejects) else Counter()
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def summary(self) -> dict:
        return {"read": self.read, "accepted": self.accepted, "rejected": self.rejected,
                "rejected_by_reason": self.by_reason, "files": self.per_file}


def _raw_json(value) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str, sort_keys=False)
    except (TypeError, ValueError):
        return str(value)


def _text(value) -> str:
    return "" if value is None else str(value)


def ingest(inputs: Iterable[str | os.PathLike], fmt: str, root: str | os.PathLike, *, check_images: bool = True,
           url_prefixes: Iterable[str] = DEFAULT_URL_PREFIXES, reader_options: Mapping | None = None,
           progress: bool | None = None) -> IngestResult:
    """Read exports of one format and check every answer.

    Args:
        inputs: Export files.
        fmt: ``generic``, ``avfs``, ``label-studio`` or ``mturk``.
        root: Dataset root; accepted paths are relative to it and (with ``check_images``) exist under it.
        check_images: Reject answers whose images do not exist under ``root``.
        url_prefixes: Prefixes stripped from image references (after them comes the root-relative path).
        reader_options: Passed to the reader (e.g. ``columns``, ``choice_map``, ``image_dir``).
        progress: Show a progress bar (default: when stderr is a terminal).

    Raises:
        AnnotationError: an unknown format or a malformed file (names the file and line).
    """
    if fmt not in READERS:
        raise AnnotationError(f"unknown annotation format {fmt!r}; choose one of {', '.join(READERS)}")
    reader = READERS[fmt]
    root = Path(root).resolve()
    prefixes = tuple(url_prefixes)
    options = dict(reader_options or {})
    accepted: list[dict] = []
    rejects: list[dict] = []
    seen: set = set()
    exists: dict[str, bool] = {}
    per_file: dict[str, dict] = {}

    def image_exists(rel: str) -> bool:
        if rel not in exists:
            exists[rel] = (root / rel).is_file()
        return exists[rel]

    for input_path in inputs:
        counts = per_file.setdefault(str(input_path), {"read": 0, "accepted": 0, "rejected": 0})
        for rec in track(reader(input_path, **options), f"reading {Path(input_path).name}", enabled=progress):
            counts["read"] += 1
            reason, detail = rec.reason, rec.detail
            paths = [None, None, None]
            if reason is None and (rec.annotator_id is None or not str(rec.annotator_id).strip()):
                reason, detail = "malformed-row", "no annotator id"
            if reason is None:
                try:
                    paths = [normalize_path(v, root, prefixes) for v in (rec.anchor, rec.a, rec.b)]
                except PathProblem as problem:
                    reason, detail = problem.reason, problem.detail
            if reason is None:
                anchor, a, b = paths
                if anchor == a or anchor == b:
                    reason, detail = "same-image", f"anchor {anchor!r} is also a candidate"
                elif a == b:
                    reason, detail = "same-image", f"both candidates are {a!r}"
            choice = rec.choice
            if reason is None and choice not in ("a", "b"):
                try:
                    as_path = normalize_path(choice, root, prefixes)
                except PathProblem:
                    as_path = None
                if as_path is not None and as_path == paths[1]:
                    choice = "a"
                elif as_path is not None and as_path == paths[2]:
                    choice = "b"
                else:
                    reason, detail = "unknown-choice", f"answer {rec.choice!r} is not a or b"
            if reason is None and check_images:
                missing = [p for p in paths if not image_exists(p)]
                if missing:
                    reason, detail = "missing-image", "not found under the root: " + ", ".join(missing)
            if reason is None:
                key = (str(rec.annotator_id).strip(), paths[0], frozenset(paths[1:]))
                if key in seen:
                    reason, detail = "duplicate", (f"annotator {key[0]!r} already answered this triplet "
                                                   "(first answer kept)")
                else:
                    seen.add(key)
            if reason is not None:
                counts["rejected"] += 1
                rejects.append({"file": rec.file, "location": rec.location, "reason": reason, "detail": detail,
                                "anchor": _text(rec.anchor), "a": _text(rec.a), "b": _text(rec.b),
                                "choice": _text(rec.choice), "annotator_id": _text(rec.annotator_id),
                                "raw": _raw_json(rec.raw)})
                continue
            counts["accepted"] += 1
            accepted.append({"anchor": paths[0], "a": paths[1], "b": paths[2], "choice": choice,
                             "annotator_id": str(rec.annotator_id).strip(), "response_ms": rec.response_ms,
                             "timestamp": rec.timestamp or "", "is_gold": bool(rec.is_gold),
                             "gold_choice": rec.gold_choice or "", "split": rec.split or "",
                             "source": rec.source or fmt})
    judgments = pd.DataFrame(accepted, columns=list(JUDGMENT_COLUMNS))
    judgments["response_ms"] = judgments["response_ms"].astype(float)
    judgments["is_gold"] = judgments["is_gold"].astype(bool)
    return IngestResult(judgments=judgments, rejects=pd.DataFrame(rejects, columns=list(REJECT_COLUMNS)),
                        per_file=per_file)


def write_ingest(result: IngestResult, out_dir: str | os.PathLike, table_format: str = "csv") -> dict[str, Path]:
    """Write ``judgments.<fmt>``, ``rejects.csv`` and ``ingest_summary.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ext = "parquet" if table_format == "parquet" else "csv"
    paths = {"judgments": out / f"judgments.{ext}", "rejects": out / "rejects.csv",
             "summary": out / "ingest_summary.json"}
    if len(result.judgments):
        write_judgments(result.judgments, paths["judgments"])
    else:
        write_table(result.judgments[list(JUDGMENT_COLUMNS[:5])], paths["judgments"])
    write_table(result.rejects, paths["rejects"])
    paths["summary"].write_text(json.dumps(result.summary(), indent=2) + "\n")
    return paths


@dataclass
class IngestRun:
    """What :func:`ingest_folder` read and wrote.

    Attributes:
        result: Accepted judgments and rejects.
        filtered: Annotator quality, the judgments kept after the thresholds, and their triplets.
        files: ``judgments``, ``rejects``, ``summary``, ``annotators``, ``triplets`` (and ``dropped_annotators``)
            paths.
        summary: What ``ingest_summary.json`` holds.
    """

    result: IngestResult
    filtered: Filtered
    files: dict[str, Path]
    summary: dict

    def lines(self, quiet: bool = False) -> list[str]:
        """What ``perface ingest`` prints (``quiet``: only the counts line)."""
        r = self.result
        out = [f"read {r.read}  accepted {r.accepted}  rejected {r.rejected}"]
        if quiet:
            return out
        width = max((len(k) for k in r.by_reason), default=0)
        out += [f"  {reason:<{width}}  {count}" for reason, count in r.by_reason.items()]
        if self.filtered.thresholds:
            out.append(f"dropped {len(self.filtered.dropped)} annotator(s) below threshold "
                       f"({self.summary['judgments_left_out']} judgments left out of the triplets)")
            out += [f"  {row.annotator_id}: {row.reason}" for row in self.filtered.dropped.itertuples(index=False)]
        out.append(f"wrote {self.files['judgments']} ({r.accepted} judgments), {self.files['rejects']} "
                   f"({r.rejected} rejects), {self.files['triplets']} ({len(self.filtered.triplets)} triplets)")
        return out

    def to_dict(self) -> dict:
        return {**self.summary, "files": {k: str(v) for k, v in self.files.items()}}


def ingest_folder(inputs: Iterable[str | os.PathLike], fmt: str, out_dir: str | os.PathLike, *,
                  root: str | os.PathLike | None = None, columns: Mapping[str, str] | None = None,
                  choice_map: Mapping[str, str] | None = None, url_prefixes: Iterable[str] = (),
                  image_dir: str = "ffhq160x160", check_images: bool = True, table_format: str = "csv",
                  min_agreement: float | None = None, min_gold_accuracy: float | None = None, min_compared: int = 5,
                  progress: bool | None = None) -> IngestRun:
    """``perface ingest``: read exports, check every answer, and write everything into ``out_dir``.

    Writes ``judgments.<csv|parquet>``, ``rejects.csv``, ``annotators.csv`` (per-annotator agreement and gold
    accuracy, :func:`perface.annotations.annotator_quality`), ``triplets.<csv|parquet>`` (votes aggregated,
    leaving out annotators below ``min_agreement`` / ``min_gold_accuracy``, who are listed in
    ``dropped_annotators.csv``) and ``ingest_summary.json``.

    Args:
        inputs: Export files.
        fmt: ``generic``, ``avfs``, ``label-studio`` or ``mturk``.
        out_dir: Output folder (created).
        root: Dataset root accepted paths are relative to (:func:`perface.io.files.data_root`: default
            ``$PERFACE_DATA``).
        columns: Generic / MTurk column mapping (``{"anchor": "query", ...}``).
        choice_map: Answer values meaning ``a`` or ``b`` (``{"left": "a", "right": "b"}``).
        url_prefixes: Prefixes stripped from image URLs, tried before Label Studio's local-files prefix.
        image_dir: AVFS: folder of the FFHQ images under the root.
        check_images: Reject answers whose images are missing under the root.
        table_format: ``csv`` or ``parquet`` for judgments and triplets.
        min_agreement, min_gold_accuracy, min_compared: See :func:`perface.annotations.filter_annotators`.
        progress: Show progress bars (default: when stderr is a terminal).

    Raises:
        SettingsError: a choice-map value other than a / b, a threshold outside [0, 1], no dataset root.
        AnnotationError: a malformed export (names the file and line), or no answer accepted at all (the
            rejects are written first).
    """
    choice_map = dict(choice_map or {})
    bad = [v for v in choice_map.values() if str(v).lower() not in ("a", "b")]
    if bad:
        raise SettingsError(f"--choice-map values must be a or b (got {', '.join(bad)})")
    check_threshold("--min-agreement", min_agreement)
    check_threshold("--min-gold-accuracy", min_gold_accuracy)
    folder = data_root(root)
    options = {"columns": dict(columns or {}), "choice_map": choice_map, "image_dir": image_dir}
    result = ingest(inputs, fmt, folder, check_images=check_images,
                    url_prefixes=tuple(url_prefixes) + DEFAULT_URL_PREFIXES, reader_options=options,
                    progress=progress)
    files = write_ingest(result, out_dir, table_format)
    filtered = filter_and_aggregate(result.judgments, min_agreement=min_agreement,
                                    min_gold_accuracy=min_gold_accuracy, min_compared=min_compared)
    out = Path(out_dir)
    files["annotators"] = write_table(filtered.quality, out / "annotators.csv")
    if filtered.thresholds:
        files["dropped_annotators"] = write_table(filtered.dropped, out / "dropped_annotators.csv")
    triplets_path = out / f"triplets.{'parquet' if table_format == 'parquet' else 'csv'}"
    files["triplets"] = (write_triplets if len(filtered.triplets) else write_table)(filtered.triplets, triplets_path)
    summary = result.summary()
    summary["triplets"] = int(len(filtered.triplets))
    if filtered.thresholds:
        summary["dropped_annotators"] = int(len(filtered.dropped))
        summary["judgments_left_out"] = int(len(result.judgments) - len(filtered.judgments))
    files["summary"].write_text(json.dumps(summary, indent=2) + "\n")
    if result.accepted == 0:
        top = next(iter(result.by_reason), None)
        hint = f"most common reason: {top}; " if top else ""
        raise AnnotationError(f"no answer accepted from {result.read} read ({hint}see {files['rejects']})")
    return IngestRun(result, filtered, files, summary)
