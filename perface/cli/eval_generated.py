"""``perface eval swap|anonymization|video|distribution``: evaluate generated faces (face swaps, anonymised
faces, generated videos, sets of synthetic faces). Each command parses its options, calls one library
function (:mod:`perface.evaluation.swap`, ``.anonymization``, ``.video``, ``.distribution``) and prints a
table, or one JSON object with ``--json``; ``--report DIR`` writes report.md, metrics.json, Parquet and plots.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_parsers"]


def add_parsers(evsub) -> None:
    """Add the four sub-commands to ``perface eval``'s sub-parsers."""
    s = evsub.add_parser("swap", help="face swaps: identity transfer, target leakage, pose/expression, clarity",
                         description="Evaluate face swaps from a pairs file (source,target,result) or three folders "
                                     "matched by file name. Per row and aggregated (mean, std, median, bootstrap 95% "
                                     "CI): identity similarity to source (and on 0-100), target leakage, ID "
                                     "retrieval, perceptual similarity, pose and expression error, attribute score, "
                                     "clarity ratio. Rows without usable faces are listed.")
    s.add_argument("--pairs", metavar="FILE", help="CSV/TSV/Parquet with columns source,target,result "
                                                   "[,source_identity]")
    for col in ("source", "target", "result"):
        s.add_argument(f"--{col}", metavar="DIR", help=f"folder of {col} images (instead of --pairs; matched by name)")
    s.add_argument("--root", metavar="DIR", help="folder the pairs' paths are relative to (default: the file's folder)")
    _models(s)
    _common(s)
    s.set_defaults(func=run_swap)

    a = evsub.add_parser("anonymization", help="anonymised faces: re-identification rate at T, naturalness",
                         description="Evaluate anonymised faces (original,anonymized): re-identification rate at "
                                     "the identity model's threshold T (the one 'perface select' uses: FAR 1e-3 on "
                                     "LFW pairs.txt), identity cosines, perceptual similarity, pose and expression "
                                     "preservation; a one-line verdict.")
    a.add_argument("--pairs", metavar="FILE", help="CSV/TSV/Parquet with columns original,anonymized")
    a.add_argument("--original", metavar="DIR", help="folder of originals (instead of --pairs; matched by name)")
    a.add_argument("--anonymized", metavar="DIR", help="folder of anonymised images (matched by name)")
    a.add_argument("--root", metavar="DIR", help="folder the pairs' paths are relative to (default: the file's folder)")
    a.add_argument("--threshold", type=float, metavar="T",
                   help="re-identification threshold (default: measured on $PERFACE_DATA/lfw/pairs.txt, cached)")
    _models(a)
    _common(a)
    a.set_defaults(func=run_anonymization)

    v = evsub.add_parser("video", help="generated videos: similarity to a reference and across frames",
                         description="Per video: similarity of each frame's face to the reference (identity and "
                                     "perceptual): mean, std, min, 1 - std consistency, frame-to-frame similarity, "
                                     "VBench-style subject consistency, the change point; frames without a face are "
                                     "listed. MP4, AVI, WEBM, MOV, GIF or a folder of frames.")
    v.add_argument("videos", nargs="*", metavar="VIDEO", help="video files or frame folders")
    v.add_argument("--videos", dest="videos_file", metavar="CSV", help="CSV with columns video[,reference]")
    v.add_argument("--reference", metavar="IMG", help="reference face image (default: the first frame with a face)")
    sel = v.add_mutually_exclusive_group()
    sel.add_argument("--frames", type=int, metavar="N", help="analyse N frames evenly spaced over each video")
    sel.add_argument("--every", type=int, default=1, metavar="K", help="analyse every K-th frame (default: 1)")
    v.add_argument("--video-backend", choices=("pyav", "opencv"), default="pyav", help="decoder (default: pyav)")
    _models(v)
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
    d.add_argument("--l2-normalize", nargs="?", const="both", default="off", choices=("off", "on", "both"),
                   help="L2-normalise features: on, or both (adds NAME+l2 entries; the default when given alone)")
    d.add_argument("--kid-subsets", type=int, default=100, metavar="N", help="KID subsets (default: 100)")
    d.add_argument("--kid-subset-size", type=int, metavar="M",
                   help="KID subset size (default: min(1000, half the smaller set))")
    d.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    d.add_argument("--workers", type=int, default=0, metavar="N",
                   help="processes for decoding and detection (default: 0 = none)")
    _detector(d)
    _common(d, bootstrap=False, on_no_face=("skip", "whole-image"))
    d.set_defaults(func=run_distribution)


def _detector(p: argparse.ArgumentParser) -> None:
    from perface.preprocessing import DETECTOR_CHOICES

    p.add_argument("--detector", choices=DETECTOR_CHOICES, default="hog", help="face detector (default: hog)")
    p.add_argument("--upsample", type=int, default=0, metavar="N", help="detector upsampling steps (default: 0)")


def _models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="base", metavar="M",
                   help="PerFace (perceptual) model: base, a registry name or a model file (default: base)")
    p.add_argument("--id-model", default="base", metavar="M", help="identity model (default: base, dlib ResNet)")
    _detector(p)


def _common(p: argparse.ArgumentParser, bootstrap: bool = True, on_no_face=("skip", "whole-image", "error")) -> None:
    p.add_argument("--face", default="largest", metavar="WHICH",
                   help="which face when there are several: largest, center, or an index k (default: largest)")
    p.add_argument("--on-no-face", choices=on_no_face, default="skip",
                   help="skip (list as unusable), whole-image (tight crops)" + (", error" if "error" in on_no_face
                                                                                 else "") + " (default: skip)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--report", metavar="DIR", help="write report.md, metrics.json, Parquet and PNG plots to DIR")
    p.add_argument("--seed", type=int, default=0, help="seed of bootstrap / KID subsets (default: 0)")
    if bootstrap:
        p.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="bootstrap resamples (default: 2000)")
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="faces per network call (default: 32)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


# --- helpers -----------------------------------------------------------------------------------------------
def _usage(msg: str):
    from perface.errors import UsageError

    return UsageError(msg)


def _face(value: str):
    from perface.preprocessing import parse_face

    try:
        return parse_face(value, allow_all=False)
    except ValueError as exc:
        raise _usage(f"--face: {exc}") from None


def _check(args) -> None:
    if args.batch_size < 1:
        raise _usage("--batch-size must be at least 1")
    if getattr(args, "bootstrap", 1000) < 100:
        raise _usage("--bootstrap must be at least 100")
    if args.upsample < 0:
        raise _usage("--upsample must be >= 0")


class _Progress:
    """A rich progress bar on stderr (hidden with --no-progress)."""

    def __init__(self, disabled: bool):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            disable=disabled or not sys.stderr.isatty(), transient=True, console=Console(stderr=True))

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def task(self, label: str, total: int | None):
        task = self.bar.add_task(label, total=total)
        return lambda n: self.bar.advance(task, n)


def _emit(args, report, table: list[str], warnings: list[str]) -> int:
    if args.report:
        from perface.evaluation.generated_report import write_report

        path = write_report(report, args.report)
        print(f"perface: wrote {path} (with metrics.json, Parquet and plots)", file=sys.stderr)
    for w in warnings:
        print(f"perface: {w}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print("\n".join(table))
    return 0


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _f(v, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _summary_rows(summary: dict) -> list[str]:
    rows = [["measure", "mean", "std", "median", "95% CI", "n"]]
    for key, s in summary.items():
        items = [(f"pose_error_deg.{k}", v, 2) for k, v in s.items()] if key == "pose_error_deg" else \
            ([(key, s, 4)] if isinstance(s, dict) and "mean" in s else [])
        for name, st, d in items:
            ci = st.get("ci95")
            rows.append([name, _f(st["mean"], d), _f(st["std"], d), _f(st["median"], d),
                         f"[{ci[0]:.{d}f}, {ci[1]:.{d}f}]" if ci else "-", str(st["n"])])
    return _table(rows)


def _unusable_warning(unusable: list[dict], n_total: int, what: str = "row") -> list[str]:
    if not unusable:
        return []
    shown = "; ".join(f"{what} {u.get('row', u.get('video'))}: {u['reason']}" for u in unusable[:3])
    more = ", ..." if len(unusable) > 3 else ""
    return [f"{len(unusable)} of {n_total} {what}s unusable and left out ({shown}{more}); all are listed with "
            "--json/--report"]


def _pairs_or_folders(args, columns: tuple[str, ...], driver: str):
    folders = {c: getattr(args, c) for c in columns}
    given = [c for c, v in folders.items() if v]
    if args.pairs and given:
        raise _usage(f"give --pairs or --{' --'.join(columns)}, not both")
    if args.pairs:
        if not Path(args.pairs).is_file():
            raise FileNotFoundError(2, "--pairs file not found", args.pairs)
        if args.root is not None and not Path(args.root).is_dir():
            raise _usage(f"--root {args.root}: not a folder")
        return args.pairs, args.root
    if len(given) != len(columns):
        raise _usage(f"give --pairs FILE or all of --{' DIR --'.join(columns)} DIR")
    from perface.evaluation.face_analysis import rows_from_folders

    return rows_from_folders(folders, driver=driver), None


# --- commands ----------------------------------------------------------------------------------------------
def run_swap(args) -> int:
    from perface.evaluation.swap import evaluate

    _check(args)
    pairs, root = _pairs_or_folders(args, ("source", "target", "result"), "result")
    with _Progress(args.no_progress) as bar:
        report = evaluate(pairs, root=root, model=args.model, id_model=args.id_model, face=_face(args.face),
                          on_no_face=args.on_no_face, n_boot=args.bootstrap, seed=args.seed,
                          batch_size=args.batch_size, detector=args.detector, upsample=args.upsample,
                          progress=bar.task("measuring faces", None))
    i = report.info
    head = [f"face swaps: {i['n']} of {i['n_total']} rows evaluated; identity model {i['id_model']}, perceptual model "
            f"{i['model']}; {i['source_identities']} source identities"]
    return _emit(args, report, head + _summary_rows(report.summary),
                 _unusable_warning(report.unusable, i["n_total"]))


def run_anonymization(args) -> int:
    from perface.evaluation.anonymization import evaluate

    _check(args)
    pairs, root = _pairs_or_folders(args, ("original", "anonymized"), "anonymized")
    with _Progress(args.no_progress) as bar:
        report = evaluate(pairs, root=root, model=args.model, id_model=args.id_model, threshold=args.threshold,
                          face=_face(args.face), on_no_face=args.on_no_face, n_boot=args.bootstrap, seed=args.seed,
                          batch_size=args.batch_size, detector=args.detector, upsample=args.upsample,
                          progress=bar.task("measuring faces", None))
    return _emit(args, report, [report.verdict] + _summary_rows(report.summary),
                 _unusable_warning(report.unusable, report.info["n_total"]))


def run_video(args) -> int:
    from perface.evaluation.video import evaluate

    _check(args)
    if args.videos and args.videos_file:
        raise _usage("give VIDEO arguments or --videos CSV, not both")
    if not args.videos and not args.videos_file:
        raise _usage("eval video needs VIDEO arguments or --videos CSV")
    if args.frames is not None and args.frames < 1:
        raise _usage("--frames must be at least 1")
    if args.every < 1:
        raise _usage("--every must be at least 1")
    if args.videos_file and not Path(args.videos_file).is_file():
        raise FileNotFoundError(2, "--videos file not found", args.videos_file)
    if args.reference and not Path(args.reference).is_file():
        raise FileNotFoundError(2, "--reference image not found", args.reference)
    with _Progress(args.no_progress) as bar:
        report = evaluate(args.videos_file or args.videos, reference=args.reference, model=args.model,
                          id_model=args.id_model, frames=args.frames, every=args.every, backend=args.video_backend,
                          face=_face(args.face), on_no_face="error" if args.on_no_face == "error" else "skip",
                          batch_size=args.batch_size, detector=args.detector, upsample=args.upsample,
                          progress=bar.task("frames", None))
    rows = [["video", "frames", "no face", "mean", "std", "min", "consistency", "frame-to-frame", "subject cons.",
             "change at"]]
    for v in report.videos:
        rows.append([v["video"], str(v["frames"]), str(len(v["frames_without_face"])), _f(v["mean"]), _f(v["std"]),
                     _f(v["min"]), _f(v["consistency"]), _f(v["frame_to_frame"]), _f(v["subject_consistency"]),
                     (f"{v['change_point']['frame']} (drop {v['change_point']['drop']:.3f})" if v["change_point"]
                      else "-")])
    warnings = [f"{v['video']}: no face in {len(v['frames_without_face'])} of {v['frames']} frames "
                f"({', '.join(map(str, v['frames_without_face'][:10]))}{', ...' if len(v['frames_without_face']) > 10 else ''})"
                for v in report.videos if v["frames_without_face"]]
    warnings += [f"{u['video']}: left out: {u['reason']}" for u in report.unusable]
    head = [f"identity model {report.info['id_model']} (numbers below), perceptual model {report.info['model']} "
            "(in --json/--report)"]
    return _emit(args, report, head + _table(rows), warnings)


def run_distribution(args) -> int:
    from perface.evaluation.distribution import evaluate

    _check(args)
    for opt in ("real", "fake"):
        if not Path(getattr(args, opt)).is_dir():
            raise _usage(f"--{opt} {getattr(args, opt)}: not a folder")
    if args.kid_subsets < 1:
        raise _usage("--kid-subsets must be at least 1")
    with _Progress(args.no_progress) as bar:
        report = evaluate(args.real, args.fake, features=args.features or ["base"], l2=args.l2_normalize,
                          kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size, seed=args.seed,
                          features_weights=args.features_weights, random_weights=args.random_weights,
                          face=_face(args.face), on_no_face=args.on_no_face, cache=not args.no_cache,
                          batch_size=args.batch_size, workers=max(0, args.workers), detector=args.detector,
                          upsample=args.upsample, progress=bar.task)
    rows = [["features", "FD", "KID mean", "KID std", "precision", "recall", "density", "coverage", "real", "fake"]]
    warnings = []
    for label, m in report.features.items():
        rows.append([label, f"{m['fd']:.5g}", f"{m['kid']['mean']:.5g}", f"{m['kid']['std']:.3g}", _f(m["precision"]),
                     _f(m["recall"]), _f(m["density"]), _f(m["coverage"]), str(m["n_real"]), str(m["n_fake"])])
        if m["random_weights"]:
            warnings.append(f"{label}: random weights (--random-weights): these numbers check the plumbing only")
        for which in ("real", "fake"):
            u = m["unusable"][which]
            if u["count"]:
                warnings.append(f"{label}: {u['count']} {which} image(s) without a usable face left out "
                                f"({', '.join(u['files'][:3])}{', ...' if u['count'] > 3 else ''}); "
                                "--on-no-face whole-image embeds tight crops whole")
        warnings += [f"{label}: {n}" for n in m["notes"]]
    return _emit(args, report, _table(rows), warnings)
