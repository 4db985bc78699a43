"""``perface gallery build PATH... --out gallery.parquet``: a gallery of candidate replacement identities;
``perface gallery info gallery.parquet``: what is in one.

Identity: the label file's ``identity`` column when the image is listed, else the image's folder name. Several
images per identity are averaged and re-normalised, once with the perceptual model (``--model``) and once with
the identity model (``base``). Images without a usable face are recorded in the gallery and skipped. The work is
done by :func:`perface.selection.build_gallery_file` and :class:`perface.selection.Gallery`.
"""

from __future__ import annotations

import argparse
import json
import sys

from perface.cli.commands import COMMANDS
from perface.cli.options import (add_batch_options, add_face_options, add_model_option, add_output_options,
                                 load_model, progress_enabled)
from perface.errors import UsageError
from perface.selection.gallery import Gallery, build_gallery_file


def add_parser(sub) -> None:
    p = sub.add_parser("gallery", help=COMMANDS["gallery"].help,
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
    add_output_options(i, report=False)
    i.set_defaults(func=run_info)

    p.set_defaults(func=_missing_subcommand)


def _missing_subcommand(args) -> int:
    raise UsageError("gallery needs a sub-command: build or info")


def run_build(args: argparse.Namespace) -> int:
    result = build_gallery_file(args.paths, args.out, model=args.model, identity_model=args.identity_model,
                                loader=lambda name: load_model(args, name), labels=args.labels,
                                max_identity_sim=args.max_identity_sim, far=args.far, pairs=args.pairs,
                                pairs_root=args.pairs_root, index=args.index, batch_size=args.batch_size,
                                workers=args.workers, cache=not args.no_cache, progress=progress_enabled(args))
    print("\n".join(f"perface: {line}" for line in result.notes + result.lines()), file=sys.stderr)
    return 0


def run_info(args: argparse.Namespace) -> int:
    gallery = Gallery.load(args.gallery)
    print(json.dumps(gallery.summary(), indent=2) if args.json else "\n".join(gallery.summary_lines()))
    return 0
