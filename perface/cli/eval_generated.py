"""``perface eval swap|anonymization|video|distribution``: evaluate generated faces (face swaps, anonymised
faces, generated videos, sets of synthetic faces). Each command parses its options, calls one library
function (:mod:`perface.evaluation.swap`, ``.anonymization``, ``.video``, ``.distribution``) and prints the
report's table (or one JSON object with ``--json``) and its warnings; ``--report DIR`` writes report.md,
metrics.json, Parquet and plots. Options shared with other commands come from :mod:`perface.cli.options`.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial

from perface.cli.options import (add_batch_options, add_bootstrap_option, add_face_options, add_id_model_option,
                                 add_model_option, add_output_options, add_root_option, load_model, progress_enabled)
from perface.evaluation import anonymization, distribution, swap, video
from perface.evaluation.generated_report import write_report
from perface.io.video import BACKENDS
from perface.progress import bars

__all__ = ["add_parsers"]


def add_parsers(evsub) -> None:
    """Add the four sub-commands to ``perface eval``'s sub-parsers."""
    s = evsub.add_parser("swap", help="face swaps: identity transfer, target leakage, pose/expression, clarity",
                         description="Evaluate face swaps from a pairs file (source,target,result) or three folders "
                                     "matched by file name. Per row and aggregated (mean, std, median, bootstrap 95% "
                                     "CI): identity similarity to source (and on 0-100), target leakage, ID "
                                     "retrieval, perceptual similarity, pose and expression error, attribute score, "
                                     "clarity ratio. Rows without usable faces are listed.")
    _rows(s, swap.COLUMNS, "source,target,result[,source_identity]")
    _common(s)
    s.set_defaults(func=run_swap)

    a = evsub.add_parser("anonymization", help="anonymised faces: re-identification rate at T, naturalness",
                         description="Evaluate anonymised faces (original,anonymized): re-identification rate at "
                                     "the identity model's threshold T (the one 'perface select' uses: FAR 1e-3 on "
                                     "LFW pairs.txt), identity cosines, perceptual similarity, pose and expression "
                                     "preservation; a one-line verdict.")
    _rows(a, anonymization.COLUMNS, "original,anonymized")
    a.add_argument("--threshold", type=float, metavar="T",
                   help="re-identification threshold (default: measured on $PERFACE_DATA/lfw/pairs.txt, cached)")
    _common(a)
    a.set_defaults(func=run_anonymization)

    v = evsub.add_parser("video", help="generated videos: similarity to a reference and across frames",
                         description="Per video: similarity of each frame's face to the reference (identity and "
                                     "perceptual): mean, std, min, 1 - std consistency, frame-to-frame similarity, "
                                     "VBench-style subject consistency, the change point; frames without a face are "
                                     "listed. MP4, AVI, WEBM, MOV, GIF or a folder of frames.")
    v.add_argument("videos", nargs="*", metavar="VIDEO", help="video files or frame folders")
    v.add_argument("--videos", dest="videos_file", metavar="CSV", help="CSV/TSV/Parquet with columns video[,reference]")
    add_root_option(v, "the --videos file")
    v.add_argument("--reference", metavar="IMG", help="reference face image (default: the first frame with a face)")
    sel = v.add_mutually_exclusive_group()
    sel.add_argument("--frames", type=int, metavar="N", help="analyse N frames evenly spaced over each video")
    sel.add_argument("--every", type=int, default=1, metavar="K", help="analyse every K-th frame (default: 1)")
    v.add_argument("--video-backend", choices=BACKENDS, default="pyav", help="decoder (default: pyav)")
    _common(v, bootstrap=False)
    v.set_defaults(func=run_video)

    d = evsub.add_parser("distribution", help="real vs generated face sets: FD, KID, precision/recall, density/coverage",
                         description="Fréchet distance, KID (unbiased MMD^2, cubic kernel, 100 subsets), precision/"
                                     "recall (k=3) and density/coverage (k=5) on face-chip features; repeat "
                                     "--features for a side-by-side table.")
    d.add_argument("--real", required=True, metavar="DIR", help="folder of real face images (recursive)")
    d.add_argument("--fake", required=True, metavar="DIR", help="folder of generated face images (recursive)")
    d.add_argument("--features", action="append", metavar="F",
                   help="base, a model file, or timm:NAME (repeat; default: base)")
    d.add_argument("--features-weights", action="append", metavar="FILE",
                   help="weights file for a timm: extractor (one per timm: extractor, in order)")
    d.add_argument("--random-weights", action="store_true",
                   help="timm: extractors without weights get random weights (plumbing checks only; numbers "
                        "are meaningless)")
    d.add_argument("--l2-normalize", nargs="?", const="both", default="off", choices=distribution.L2_CHOICES,
                   help="L2-normalise features: on, or both (adds NAME+l2 entries; the default when given alone)")
    d.add_argument("--kid-subsets", type=int, default=100, metavar="N", help="KID subsets (default: 100)")
    d.add_argument("--kid-subset-size", type=int, metavar="M",
                   help="KID subset size (default: min(1000, half the smaller set))")
    d.add_argument("--seed", type=int, default=0, help="seed of the KID subsets (default: 0)")
    add_face_options(d)
    add_output_options(d)
    add_batch_options(d, cache=True)
    d.set_defaults(func=run_distribution)


def _rows(p: argparse.ArgumentParser, columns: tuple[str, ...], header: str) -> None:
    """``--pairs FILE`` or one folder option per column, ``--root``."""
    p.add_argument("--pairs", metavar="FILE", help=f"CSV/TSV/Parquet with columns {header}")
    for col in columns:
        p.add_argument(f"--{col}", metavar="DIR", help=f"folder of {col} images (instead of --pairs; matched by name)")
    add_root_option(p, "the pairs file")


def _common(p: argparse.ArgumentParser, bootstrap: bool = True) -> None:
    add_model_option(p, help="PerFace (perceptual) model: 'base', a registry name, or a .pt/.ckpt/.onnx/.pth file; "
                             "its face options find the faces (default: base)")
    add_id_model_option(p)
    add_face_options(p)
    add_output_options(p)
    if bootstrap:
        add_bootstrap_option(p)
        p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    add_batch_options(p, workers=False)


def _emit(args, report) -> int:
    """Write ``--report``, print the warnings on stderr and the table (or JSON) on stdout."""
    if args.report:
        path = write_report(report, args.report)
        print(f"perface: wrote {path} (with metrics.json, Parquet and plots)", file=sys.stderr)
    for line in report.warnings():
        print(f"perface: {line}", file=sys.stderr)
    print(json.dumps(report.to_dict()) if args.json else "\n".join(report.table()))
    return 0


def _models(args) -> dict:
    return dict(model=args.model, id_model=args.id_model, load=partial(load_model, args), batch_size=args.batch_size)


def run_swap(args) -> int:
    with bars(progress_enabled(args)) as bar:
        report = swap.evaluate(args.pairs, args.root, folders={c: getattr(args, c) for c in swap.COLUMNS},
                               n_boot=args.bootstrap, seed=args.seed, progress=bar, **_models(args))
    return _emit(args, report)


def run_anonymization(args) -> int:
    with bars(progress_enabled(args)) as bar:
        report = anonymization.evaluate(args.pairs, args.root, threshold=args.threshold, n_boot=args.bootstrap,
                                        folders={c: getattr(args, c) for c in anonymization.COLUMNS},
                                        seed=args.seed, progress=bar, **_models(args))
    return _emit(args, report)


def run_video(args) -> int:
    with bars(progress_enabled(args)) as bar:
        report = video.evaluate(args.videos, args.reference, videos_file=args.videos_file, frames=args.frames,
                                every=args.every, backend=args.video_backend, root=args.root,
                                on_no_face=args.on_no_face, progress=bar, **_models(args))
    return _emit(args, report)


def run_distribution(args) -> int:
    with bars(progress_enabled(args)) as bar:
        report = distribution.evaluate(args.real, args.fake, args.features or ["base"], l2=args.l2_normalize,
                                       kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size,
                                       seed=args.seed, features_weights=args.features_weights,
                                       random_weights=args.random_weights, cache=not args.no_cache,
                                       batch_size=args.batch_size, workers=args.workers,
                                       load=partial(load_model, args), progress=bar)
    return _emit(args, report)
