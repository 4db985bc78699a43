"""``perface gallery build PATH... --out gallery.parquet``: a gallery of candidate replacement identities;
``perface gallery info gallery.parquet``: what is in one.

Identity: the label file's ``identity`` column when the image is listed, else the image's folder name. Several
images per identity are averaged and re-normalised, once with the perceptual model (``--model``) and once with
the identity model (``base``). Images without a usable face are recorded in the gallery and skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from perface.cli.options import (add_batch_options, add_face_options, add_model_option, load_model, pool_workers,
                                 progress_enabled)
from perface.errors import UsageError
from perface.io.files import collect_images
from perface.progress import bars


def add_parser(sub) -> None:
    p = sub.add_parser("gallery", help="build or describe a gallery of replacement identities (perface select)",
                       description="Galleries of candidate replacement identities for 'perface select'.")
    gsub = p.add_subparsers(dest="gallery_command", metavar="GALLERY", parser_class=type(p))

    b = gsub.add_parser("build", help="embed candidate faces into a gallery file",
                        description="Embed candidate faces with the perceptual model (--model) and the identity model "
                                    "(base), one row per identity (images averaged and re-normalised). The identity "
                                    "is the folder name, or the label file's 'identity' column; other label columns "
                                    "(gender, age_group, ...) become attributes. Also stores the re-identification "
                                    "threshold (identity model at FAR 1e-3 on LFW pairs.txt, measured once per model "
                                    "and cached) and the default band.")
    b.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    b.add_argument("--out", required=True, metavar="FILE.parquet", help="gallery file to write")
    b.add_argument("--labels", metavar="FILE", help="CSV with path[,identity] and attribute columns; paths relative "
                                                    "to the CSV's folder")
    add_model_option(b)
    add_face_options(b)
    b.add_argument("--identity-model", default="base", metavar="M",
                   help="model deciding whether two faces are the same person (default: base)")
    b.add_argument("--max-identity-sim", type=float, default=None, metavar="T",
                   help="store this re-identification threshold instead of measuring it")
    b.add_argument("--far", type=float, default=1e-3, help="false accept rate of the threshold (default: 1e-3)")
    b.add_argument("--pairs", metavar="FILE", help="pairs to measure the threshold on (default: "
                                                   "$PERFACE_DATA/lfw/pairs.txt); LFW pairs.txt or CSV a,b,same")
    b.add_argument("--pairs-root", metavar="DIR", help="folder the pair paths are relative to (default: images/ "
                                                       "beside the pairs file)")
    b.add_argument("--index", choices=("auto", "exact", "faiss"), default="auto",
                   help="also train the FAISS index and keep it beside the gallery (FILE.parquet.faiss): faiss, or "
                        "auto beyond 100,000 identities when faiss-cpu is installed (default: auto)")
    add_batch_options(b, cache=True)
    b.set_defaults(func=run_build)

    i = gsub.add_parser("info", help="describe a gallery file", description="Identities, models, attributes, "
                                                                           "threshold and default band of a gallery.")
    i.add_argument("gallery", metavar="FILE.parquet")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=run_info)

    p.set_defaults(func=_missing_subcommand)


def _missing_subcommand(args) -> int:
    raise UsageError("gallery needs a sub-command: build or info")


def run_build(args: argparse.Namespace) -> int:
    from perface.selection import Gallery

    out = Path(args.out)
    if out.suffix.lower() != ".parquet":
        raise UsageError(f"--out {args.out}: the gallery must be a .parquet file")
    if not 0.0 < args.far < 1.0:
        raise UsageError(f"--far {args.far:g}: expected a rate strictly between 0 and 1, e.g. 1e-3")
    if args.max_identity_sim is not None and not -1.0 <= args.max_identity_sim <= 1.0:
        raise UsageError(f"--max-identity-sim {args.max_identity_sim:g}: a cosine similarity in [-1, 1]")
    if args.labels and not Path(args.labels).is_file():
        raise FileNotFoundError(2, "label file not found", args.labels)
    if args.pairs and not Path(args.pairs).is_file():
        raise FileNotFoundError(2, "pairs file not found", args.pairs)
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(2, "no such file or folder", missing[0])
    found = collect_images(args.paths)
    for note in found.notes():
        print(f"perface: {note}", file=sys.stderr)
    images = found.files
    model = load_model(args)
    identity_model = model if args.identity_model == args.model else load_model(args, args.identity_model)
    with bars(progress_enabled(args)) as factory:
        gallery = Gallery.build(images, model, identity_model, labels=args.labels,
                                max_identity_sim=args.max_identity_sim, far=args.far, pairs=args.pairs,
                                pairs_root=args.pairs_root, model_source=args.model,
                                identity_model_source=args.identity_model, batch_size=args.batch_size,
                                workers=pool_workers(args, len(images)), cache=not args.no_cache, progress=factory)
    gallery.save(out)
    search = gallery.search(args.index)  # trains and keeps the FAISS index when one is used
    t = gallery.threshold
    band = gallery.default_band
    lines = [f"perface: {len(images)} images -> {len(gallery)} identities ({int(gallery.n_images.sum())} images used, "
             f"{len(gallery.failures)} left out); wrote {out}"]
    why = gallery.info.get("reid_threshold_error")
    lines.append(f"perface: re-identification threshold {t.describe()}" if t else
                 f"perface: warning: no re-identification threshold stored ({why}); "
                 "'perface select' will need --max-identity-sim")
    if band:
        lines.append(f"perface: default band {band.lo:.4f}:{band.hi:.4f} ({band.source})")
    if search.kind == "faiss":
        lines.append(f"perface: FAISS index ({search.nlist} lists) kept in {gallery.index_path()}")
    print("\n".join(lines), file=sys.stderr)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from perface.selection import Gallery

    gallery = Gallery.load(args.gallery)
    summary = gallery.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    t, band = gallery.threshold, gallery.default_band
    pm, im = summary["perceptual_model"] or {}, summary["identity_model"] or {}
    print(f"gallery          {args.gallery}")
    print(f"identities       {summary['identities']} ({summary['images_used']} images, "
          f"{summary['images_left_out']} left out)")
    print(f"perceptual model {pm.get('name')} ({pm.get('source')})")
    print(f"identity model   {im.get('name')} ({im.get('source')})")
    for a, counts in summary["attributes"].items():
        print(f"attribute        {a}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"threshold        {t.describe() if t else 'none (' + str(summary['reid_threshold_error']) + ')'}")
    print(f"default band     {f'{band.lo:.4f}:{band.hi:.4f} ({band.source})' if band else 'none'}")
    return 0
