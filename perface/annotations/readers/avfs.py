"""Reader for A View From Somewhere (AVFS, Sony AI, ICLR 2023) odd-one-out judgments.

``ooo_train_val.json`` (and the ``ooo_test_*.json`` files) map a set index to one annotator's set of trials::

    {"0": {"triplet_questions": [[i, j, k], ...],   # FFHQ image ids
           "odd_one_out_positions": [p, ...],        # 0, 1 or 2: which face the annotator found the odd one
           "split": [1, 0, ...],                     # 1 train, 0 validation (absent in the test files)
           "annotator_id": "..."}, ...}

Images are ``<image_dir>/NNN00/NNNNN.png`` (5-digit id, one folder per thousand), ``image_dir`` defaulting to
``ffhq160x160`` under the dataset root.

**Odd-one-out to 2AFC.** If ``k`` is the odd one out of ``(i, j, k)``, the two kept faces ``i`` and ``j`` are
more alike than either is to ``k``. Each answer therefore yields two judgments, one per kept face as anchor:
``anchor=i`` with candidates ``j`` and ``k`` (``j`` more similar) and ``anchor=j`` with ``i`` and ``k``. The
two candidates keep the order in which they appeared in the question, so ``choice`` is ``a`` or ``b``.
``read`` counts these derived judgments (2 per well-formed answer); a malformed answer or set counts once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from perface.annotations.readers.record import RawRecord
from perface.annotations.readers.textfile import load_json
from perface.errors import AnnotationError

__all__ = ["read_avfs", "avfs_image_path", "FFHQ_IMAGES"]

#: Number of images in FFHQ (ids 0..69999).
FFHQ_IMAGES = 70000
_SPLITS = {1: "train", 0: "val"}


def avfs_image_path(image_id: int, image_dir: str = "ffhq160x160") -> str:
    """Root-relative path of an FFHQ image, e.g. ``12345 -> ffhq160x160/12000/12345.png``."""
    prefix = f"{image_dir.strip('/')}/" if image_dir else ""
    return f"{prefix}{image_id - image_id % 1000:05d}/{image_id:05d}.png"


def _as_id(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < FFHQ_IMAGES else None
    if isinstance(value, float) and value.is_integer():
        return _as_id(int(value))
    return None


def read_avfs(path: str | Path, image_dir: str = "ffhq160x160", **_ignored) -> Iterator[RawRecord]:
    """Yield two 2AFC :class:`RawRecord` per odd-one-out answer in an AVFS ``ooo_*.json`` file.

    Raises:
        AnnotationError: not JSON, or not an object of annotator sets (names the file and line).
    """
    path = Path(path)
    file = str(path)
    data = load_json(path, "an AVFS ooo_*.json object of annotator sets")
    if isinstance(data, list):  # tolerate a list of sets
        items = [(str(i), s) for i, s in enumerate(data)]
    elif isinstance(data, dict):
        items = list(data.items())
    else:
        raise AnnotationError(f"{path}:1: expected a JSON object mapping set index to a set with "
                              f"triplet_questions/odd_one_out_positions/annotator_id, got {type(data).__name__}")
    if items and not any(isinstance(s, dict) and "triplet_questions" in s for _, s in items):
        raise AnnotationError(f"{path}:1: no set has 'triplet_questions': not an AVFS ooo_*.json file (for other "
                              "exports use --format generic, label-studio or mturk)")
    for key, entry in items:
        where = f"set {key!r}"
        if not isinstance(entry, dict):
            yield RawRecord(file=file, location=where, raw=entry, source="avfs").reject(
                "malformed-row", f"set is a {type(entry).__name__}, not an object")
            continue
        questions = entry.get("triplet_questions")
        positions = entry.get("odd_one_out_positions")
        splits = entry.get("split")
        annotator = entry.get("annotator_id")
        if not isinstance(questions, list) or not isinstance(positions, list):
            yield RawRecord(file=file, location=where, raw=entry, source="avfs").reject(
                "malformed-row", "set lacks a triplet_questions or odd_one_out_positions list")
            continue
        if annotator is None or not str(annotator).strip():
            bad_set = "set has no annotator_id"
        else:
            bad_set = None
        for q, question in enumerate(questions):
            loc = f"{where} question {q}"
            raw = {"triplet": question, "odd_one_out_position": positions[q] if q < len(positions) else None,
                   "split": splits[q] if isinstance(splits, list) and q < len(splits) else None,
                   "annotator_id": annotator}
            base = RawRecord(file=file, location=loc, raw=raw, source="avfs",
                             annotator_id=None if annotator is None else str(annotator))
            if bad_set:
                yield base.reject("malformed-row", bad_set)
                continue
            if not isinstance(question, list) or len(question) != 3:
                yield base.reject("malformed-row", f"triplet {question!r} is not a list of 3 image ids")
                continue
            ids = [_as_id(v) for v in question]
            if any(v is None for v in ids):
                yield base.reject("malformed-row", f"triplet {question!r} has an id that is not an integer in "
                                                   f"0..{FFHQ_IMAGES - 1}")
                continue
            if q >= len(positions):
                yield base.reject("malformed-row", "no odd_one_out_position for this question")
                continue
            odd = positions[q]
            if isinstance(odd, bool) or not isinstance(odd, int) or odd not in (0, 1, 2):
                yield base.reject("malformed-row", f"odd_one_out_position {odd!r} is not 0, 1 or 2")
                continue
            split = None
            if isinstance(splits, list) and q < len(splits):
                split = _SPLITS.get(splits[q]) if not isinstance(splits[q], bool) else None
                if split is None:
                    yield base.reject("malformed-row", f"split {splits[q]!r} is not 1 (train) or 0 (validation)")
                    continue
            paths = [avfs_image_path(v, image_dir) for v in ids]
            kept = [i for i in range(3) if i != odd]
            for anchor_pos in kept:
                other_kept = kept[0] if anchor_pos == kept[1] else kept[1]
                cand = [i for i in range(3) if i != anchor_pos]  # question order
                yield RawRecord(file=file, location=f"{loc} anchor {anchor_pos}", raw=raw, source="avfs",
                                anchor=paths[anchor_pos], a=paths[cand[0]], b=paths[cand[1]],
                                choice="a" if cand[0] == other_kept else "b",
                                annotator_id=str(annotator).strip(), split=split)
