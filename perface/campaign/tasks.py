"""Reading a campaign's task and gold files and checking every image before anyone is asked to judge it.

Task files are triplet tables (CSV or Parquet, see ``data/annotations/README.md``) with at least
``anchor, a, b``: root-relative image paths, e.g. ``perface triplets sample`` output. Gold files add the known
answer, ``gold_choice`` (``a``/``b``), or give it as ``p_a`` 1 (``a``) or 0 (``b``).

An image is usable when its path stays inside the root (no ``..``, no absolute path elsewhere, and its real
path, symbolic links resolved, inside the root's real path), it is a regular file, decodes with
:func:`perface.io.image.load_image`, and is a format browsers show (JPEG, PNG, WEBP, GIF, BMP).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from perface.annotations.paths import PathProblem, normalize_path
from perface.annotations.schema import read_table
from perface.errors import AnnotationError, CampaignError, ImageLoadError
from perface.io.image import load_image, sniff_format

__all__ = ["BadRow", "MEDIA_TYPES", "TaskSet", "load_tasks", "real_path_inside"]

#: Pillow format name -> media type, for the formats browsers display.
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
               "BMP": "image/bmp"}


@dataclass(frozen=True)
class BadRow:
    """A task or gold row that cannot be shown: ``where`` is ``file:line``, ``column`` the image column."""

    where: str
    column: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.column} {self.path!r}: {self.reason}"


@dataclass
class TaskSet:
    """Checked tasks of a campaign.

    Attributes:
        triplets: ``(anchor, a, b, line)`` per usable, distinct triplet (first orientation kept).
        gold: ``(anchor, a, b, gold_choice, line)`` per usable gold triplet.
        media_types: Root-relative path -> media type, for every image of the usable rows.
        bad: Rows left out because an image is unusable, with the reason.
        duplicates: Task rows repeating an earlier triplet (same anchor and candidate pair), left out.
    """

    triplets: list[tuple[str, str, str, int]] = field(default_factory=list)
    gold: list[tuple[str, str, str, str, int]] = field(default_factory=list)
    media_types: dict[str, str] = field(default_factory=dict)
    bad: list[BadRow] = field(default_factory=list)
    duplicates: int = 0


def real_path_inside(root_real: Path, rel: str) -> Path | None:
    """The real path of ``root_real / rel`` if it stays inside ``root_real`` (symlinks resolved), else None.

    Args:
        root_real: The root's real path (``os.path.realpath``).
        rel: A root-relative POSIX path.
    """
    real = Path(os.path.realpath(root_real / rel))
    return real if real != root_real and real.is_relative_to(root_real) else None


class _ImageChecker:
    def __init__(self, root: Path):
        self.root = root
        self.root_real = Path(os.path.realpath(root))
        self.cache: dict[str, tuple[str, str]] = {}  # raw value -> (rel path, media type) or ("", reason)

    def check(self, value: str) -> tuple[str, str | None, str | None]:
        """``(rel, media_type, None)`` for a usable image, ``(value, None, reason)`` otherwise."""
        if value in self.cache:
            rel, info = self.cache[value]
            return (rel, info, None) if rel else (value, None, info)
        rel, media, reason = self._check(value)
        self.cache[value] = (rel, media) if reason is None else ("", reason)
        return rel, media, reason

    def _check(self, value: str) -> tuple[str, str | None, str | None]:
        try:
            rel = normalize_path(value, self.root, url_prefixes=())
        except PathProblem as exc:
            return value, None, f"{exc.reason}: {exc.detail}"
        real = real_path_inside(self.root_real, rel)
        if real is None:
            return value, None, (f"path-escapes-root: resolves (symbolic links followed) to "
                                 f"{os.path.realpath(self.root_real / rel)}, outside the root {self.root_real}")
        if not real.is_file():
            return value, None, f"missing-image: no file {self.root / rel}"
        try:
            load_image(real)
        except ImageLoadError as exc:
            return value, None, f"unreadable-image: {' '.join(str(exc).split())}"
        fmt = sniff_format(real)
        if fmt not in MEDIA_TYPES:
            return value, None, f"unsupported-format: {fmt} images are not shown by browsers; convert to PNG or JPEG"
        return rel, MEDIA_TYPES[fmt], None


def _read(path: Path, what: str):
    try:
        frame, kind = read_table(path)
    except FileNotFoundError:
        raise CampaignError(f"{what} file {path} not found (check the path)") from None
    except AnnotationError as exc:
        raise CampaignError(str(exc)) from None
    missing = [c for c in ("anchor", "a", "b") if c not in frame.columns]
    if missing:
        raise CampaignError(f"{path}:1: missing column(s) {','.join(missing)} in the {what} file (found: "
                            f"{','.join(map(str, frame.columns)) or '(none)'}); it needs anchor,a,b image paths "
                            "relative to --root, as 'perface triplets sample' writes")
    if not len(frame):
        raise CampaignError(f"{path}: the {what} file has no rows")
    return frame, kind


def _where(path: Path, kind: str, i: int) -> str:
    return f"{path}: row {i + 1}" if kind == "parquet" else f"{path}:{i + 2}"


def _gold_choice(row, path: Path, where: str) -> str:
    choice = str(row.get("gold_choice", "") or "").strip().lower()
    if choice in ("a", "b"):
        return choice
    p_a = str(row.get("p_a", "") or "").strip()
    try:
        p = float(p_a)
    except ValueError:
        p = float("nan")
    if p == 1.0:
        return "a"
    if p == 0.0:
        return "b"
    raise CampaignError(f"{where}: gold triplet without a known answer (gold_choice {choice!r}, p_a {p_a!r}); "
                        f"give gold_choice a/b, or p_a 1 or 0, in {path}")


def load_tasks(tasks: str | os.PathLike, root: str | os.PathLike, gold: str | os.PathLike | None = None
               ) -> TaskSet:
    """Read the task (and gold) file and check every image they reference.

    Rows naming the same image twice are bad rows (``same-image``); a row is bad when any of its three
    images is unusable (see the module doc). Nothing is raised for bad rows: the caller decides (``serve``
    refuses to start unless ``--skip-bad``).

    Raises:
        CampaignError: a file is missing, unreadable, lacks ``anchor,a,b``, is empty, or a gold row has no
            known answer.
    """
    root = Path(root)
    if not root.is_dir():
        raise CampaignError(f"--root {root} is not a folder (the dataset root the task paths are relative to)")
    checker = _ImageChecker(root)
    out = TaskSet()
    seen: set[tuple[str, frozenset]] = set()
    for path, what in ((Path(tasks), "tasks"), (Path(gold) if gold is not None else None, "gold")):
        if path is None:
            continue
        frame, kind = _read(path, what)
        for i, row in enumerate(frame.to_dict("records")):
            where = _where(path, kind, i)
            choice = _gold_choice(row, path, where) if what == "gold" else ""
            values = [str(row[c]).strip() for c in ("anchor", "a", "b")]
            rels, bad = [], None
            for column, value in zip(("anchor", "a", "b"), values):
                rel, media, reason = checker.check(value)
                if reason is not None:
                    bad = BadRow(where, column, value, reason)
                    break
                rels.append(rel)
                out.media_types[rel] = media
            if bad is None and len(set(rels)) < 3:
                bad = BadRow(where, "anchor", values[0], "same-image: anchor, a and b must be three different images")
            if bad is not None:
                out.bad.append(bad)
                continue
            anchor, a, b = rels
            key = (what, anchor, frozenset((a, b)))
            if key in seen:
                out.duplicates += 1
                continue
            seen.add(key)
            if what == "gold":
                out.gold.append((anchor, a, b, choice, i + 1))
            else:
                out.triplets.append((anchor, a, b, i + 1))
    used = {p for t in out.triplets for p in t[:3]} | {p for t in out.gold for p in t[:3]}
    out.media_types = {p: m for p, m in out.media_types.items() if p in used}
    return out
