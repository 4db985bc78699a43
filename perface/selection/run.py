"""``perface select`` as one library call: :func:`select_files` checks the request, loads the gallery and its
models, embeds the target images and selects for one target (a :class:`~perface.selection.Selection`) or many
(a summary, :func:`perface.selection.selection_report`), returning a :class:`SelectionRun`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from perface.errors import SelectionError, SettingsError, UsageError
from perface.face.batch import auto_workers
from perface.io.files import collect_images
from perface.loading import load
from perface.progress import bars
from perface.selection.band import Band, parse_band
from perface.selection.gallery import Gallery
from perface.selection.report import selection_report, summary_lines, write_report
from perface.selection.select import (Selection, check_same, embed_targets, raise_target_failure,
                                      resolve_threshold, select_many, target_attributes)
from perface.selection.threshold import ReidThreshold

__all__ = ["SelectionRun", "select_files"]

#: ``loader(source) -> model``: how a model named on the command line or recorded in a gallery is loaded.
Loader = Callable[[str], Any]


@dataclass
class SelectionRun:
    """The outcome of :func:`select_files`.

    Attributes:
        gallery: The gallery selected from.
        selections: One :class:`Selection` per usable target (input order).
        failures: Targets left out, ``{"path", "status", "error"}`` (summary mode only: with one target a
            failure is raised).
        summary: Whether the run is over many targets (``--summary`` / ``--report``).
        report: The :func:`selection_report` dict (summary mode), else None.
        notes: Things found while listing the target images (link loops, duplicate files).
    """

    gallery: Gallery
    selections: list[Selection]
    failures: list[dict] = field(default_factory=list)
    summary: bool = False
    report: dict | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The ``--json`` object: the selection of the one target, or the summary over many."""
        return self.report if self.summary else self.selections[0].to_dict()

    def lines(self) -> list[str]:
        """What ``perface select`` prints."""
        return summary_lines(self.report) if self.summary else self.selections[0].lines()

    def write_report(self, directory: str | os.PathLike) -> Path:
        """``report.md``, ``metrics.json``, ``selections.parquet`` and a plot in ``directory`` (see
        :func:`perface.selection.report.write_report`); returns the path of ``report.md``."""
        report = self.report if self.report is not None else selection_report(
            self.selections, self.gallery, self.failures)
        return write_report(directory, report, self.selections, self.failures)


def _default_loader(options: Mapping[str, Any]) -> Loader:
    def loader(source: str):
        return load(source, **options)

    return loader


def _band(band) -> Band | None:
    if band is None or isinstance(band, Band):
        return band
    try:
        return parse_band(band) if isinstance(band, str) else Band(*map(float, band))
    except SelectionError as exc:
        raise SettingsError(f"--{exc}") from None
    except (TypeError, ValueError):
        raise SettingsError(f"--band {band!r}: expected LO:HI, two similarities such as 0.55:0.70") from None


def select_files(targets: Sequence[str | os.PathLike], gallery: Gallery | str | os.PathLike, *,
                 model: Any = None, identity_model: Any = None, loader: Loader | None = None,
                 load_options: Mapping[str, Any] | None = None, band=None,
                 max_identity_sim: float | ReidThreshold | None = None, same: Sequence[str] | str = (),
                 top: int = 10, labels: str | os.PathLike | None = None, target_identity: str | None = None,
                 attributes: Mapping[str, str] | None = None, index: str = "auto", summary: bool = False,
                 batch_size: int = 32, workers: int | None = None, cache: bool = True,
                 progress: bool | None = None) -> SelectionRun:
    """Replacement identities for one target image, or a summary of the policy over many (``perface select``).

    Args:
        targets: One image; with ``summary``, any number of images and folders (searched recursively).
        gallery: A :class:`Gallery` or its file (``perface gallery build``).
        model, identity_model: Perceptual / identity model: a loaded model, a name or file (loaded with
            ``loader``), or None for the one the gallery records; checked against the gallery.
        loader: ``loader(source) -> model`` (default :func:`perface.load` with ``load_options``).
        load_options: Keyword arguments of :func:`perface.load` for the default loader (``threads``, face
            options).
        band: ``"lo:hi"``, ``(lo, hi)`` or a :class:`Band`; default: the gallery's.
        max_identity_sim: T; default: the threshold stored in the gallery.
        same: Attributes candidates must share with the target.
        top: Candidates per target.
        labels: Label file giving the targets' identities and attributes.
        target_identity: The target's identity name; None: the label file's, else the image's folder name;
            ``""``: unknown.
        attributes: Attribute values of the target(s) (``{"gender": "female"}``).
        index: ``auto``, ``exact`` or ``faiss``.
        summary: Run every target and summarise (:func:`perface.selection.selection_report`); targets whose
            face or ``same`` attributes are unusable are counted, not selected.
        batch_size, workers, cache: Embedding options (``workers`` None: one per core for large jobs).
        progress: Progress bars in summary mode (default: when stderr is a terminal).

    Raises:
        SettingsError: a bad ``top``, ``max_identity_sim``, ``band`` or ``same``.
        UsageError: several targets or a folder without ``summary``.
        FileNotFoundError: a missing target, label or gallery file.
        GalleryError: an unreadable gallery, or a model that does not match it.
        NoFaceError: (one target) no face in it. SelectionError: (one target) any other unusable target.
    """
    if int(top) < 1:
        raise SettingsError(f"--top {top}: must be at least 1")
    if isinstance(max_identity_sim, (int, float)) and not -1.0 <= max_identity_sim <= 1.0:
        raise SettingsError(f"--max-identity-sim {max_identity_sim:g}: a cosine similarity in [-1, 1]")
    band = _band(band)
    if not summary and len(targets) != 1:
        raise UsageError(f"{len(targets)} targets given: select takes one TARGET (use --summary or --report DIR "
                         "for many)")
    for t in targets:
        if not Path(t).exists():
            raise FileNotFoundError(2, "target not found", os.fspath(t))
    if not summary and Path(targets[0]).is_dir():
        raise UsageError(f"{targets[0]} is a folder: select takes one image (use --summary or --report DIR for "
                         "folders)")
    if labels and not Path(labels).is_file():
        raise FileNotFoundError(2, "label file not found", os.fspath(labels))
    found = collect_images(targets)
    images = found.files

    if not isinstance(gallery, Gallery):
        gallery = Gallery.load(gallery)
    same = check_same(gallery, same)
    loader = loader or _default_loader(load_options or {})
    model = loader(model) if isinstance(model, (str, os.PathLike)) else model
    identity_model = loader(identity_model) if isinstance(identity_model, (str, os.PathLike)) else identity_model
    model, identity_model = gallery.load_models(model, identity_model, loader=loader)
    threshold = resolve_threshold(gallery, max_identity_sim, identity_model)
    who = {} if target_identity is None else {"identity": target_identity or None}

    with bars(progress if summary else False) as factory:
        embedded, failures = embed_targets(images, model, identity_model, labels=labels,
                                           attributes=dict(attributes or {}), batch_size=batch_size,
                                           workers=auto_workers(len(images), workers), cache=cache,
                                           progress=factory, **who)
    if not summary:
        if failures:
            raise_target_failure(failures[0])
        selections = select_many(embedded, gallery, band=band, same=same, top=top, index=index, threshold=threshold)
        return SelectionRun(gallery, selections, [], False, None, found.notes())

    usable = []
    for tg in embedded:  # targets whose attributes are unknown cannot be matched: counted, not selected
        values = target_attributes(tg, gallery, same) if same else {}
        missing = [a for a in same if not values[a]]
        if missing:
            failures.append({"path": tg.name, "status": "attribute_unknown",
                             "error": f"{missing[0]} unknown (give it in --labels)"})
        else:
            usable.append(tg)
    selections = select_many(usable, gallery, band=band, same=same, top=top, index=index, threshold=threshold)
    report = selection_report(selections, gallery, failures, band=band or gallery.default_band, threshold=threshold,
                              same=same, top=top)
    return SelectionRun(gallery, selections, failures, True, report, found.notes())
