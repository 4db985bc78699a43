"""Anonymisation identity selection: replacement identities the identity model would not confuse with a
target face (anonymity) that still look like it (naturalness).

Typical use::

    import perface
    from perface.selection import Gallery, select, selection_report

    model = perface.load("base")                                   # the perceptual model
    gallery = Gallery.build(image_paths, model, labels="lfw/gender.csv")   # identity model: base
    gallery.save("gallery.parquet")

    gallery = Gallery.load("gallery.parquet")
    sel = select("target.jpg", gallery, same=["gender"], top=5)    # models: the ones the gallery records
    for c in sel.candidates:
        print(c.identity, c.perceptual_similarity, c.identity_similarity)
    print(sel.excluded)                                            # counts per exclusion reason

The command line's work, one call each: :func:`build_gallery_file` (``perface gallery build``) and
:func:`select_files` (``perface select``, one target or a summary over many, ``--report DIR``).

The rules: :mod:`perface.selection.select` (exclusions, ranking), :mod:`perface.selection.band` (the default
band), :mod:`perface.selection.threshold` (the re-identification threshold), :mod:`perface.selection.search`
(exact numpy search and the FAISS index), :mod:`perface.selection.gallery` (the file format).
"""

from perface.selection.band import Band, default_band_levels, gallery_band, parse_band
from perface.selection.gallery import Gallery, GalleryBuild, build_gallery_file
from perface.selection.report import selection_report, selections_table, write_report
from perface.selection.run import SelectionRun, select_files
from perface.selection.search import EXACT_LIMIT, ExactSearch, FaissSearch, make_search
from perface.selection.select import (EXCLUSION_REASONS, Candidate, Selection, Target, embed_targets,
                                      resolve_threshold, select, select_many)
from perface.selection.threshold import DEFAULT_FAR, ReidThreshold, reid_threshold

__all__ = [
    "Band", "Candidate", "DEFAULT_FAR", "EXACT_LIMIT", "EXCLUSION_REASONS", "ExactSearch", "FaissSearch", "Gallery",
    "GalleryBuild", "ReidThreshold", "Selection", "SelectionRun", "Target", "build_gallery_file",
    "default_band_levels", "embed_targets", "gallery_band", "make_search", "parse_band", "reid_threshold",
    "resolve_threshold", "select", "select_files", "select_many", "selection_report", "selections_table",
    "write_report",
]
