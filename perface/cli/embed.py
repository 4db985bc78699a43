"""``perface embed PATH... --out FILE.parquet``: embeddings of every face in files and folders.

Bad files never abort the run: each gets a row with ``status`` (``ok``, ``no_face``, ``error``) and ``error``.
Folders are searched recursively, following symbolic links (see :func:`perface.io.files.collect_images`).
"""

from __future__ import annotations

import argparse
import sys

from perface.cli.commands import COMMANDS
from perface.cli.options import add_batch_options, add_face_options, add_model_option, load_model, progress_enabled
from perface.io.embeddings import embed_to_parquet
from perface.progress import bars


def add_parser(sub) -> None:
    p = sub.add_parser("embed", help=COMMANDS["embed"].help,
                       description="Embed faces (rows L2-normalised; cosine = dot product, higher = more similar). "
                                   "Folders are searched recursively for image files, following symbolic links.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--out", required=True, metavar="FILE.parquet", help="output Parquet file (written as it goes)")
    p.add_argument("--resume", action="store_true",
                   help="keep the rows of an existing --out (same model and face options) and embed only the images "
                        "not in it; Ctrl-C or SIGTERM leaves a valid --out with everything finished so far")
    add_model_option(p)
    add_face_options(p, allow_all=True)
    add_batch_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with bars(progress_enabled(args)) as bar:
        summary = embed_to_parquet(lambda: load_model(args), args.paths, args.out, batch_size=args.batch_size,
                                   workers=args.workers, resume=args.resume, progress=bar,
                                   notes=lambda line: print(f"perface: {line}", file=sys.stderr))
    print(f"perface: {summary.line()}", file=sys.stderr)
    # every image unreadable (a mistyped path, a folder of broken files): the rows say why, the exit code too
    return 1 if summary.failed and summary.failed == summary.images - summary.resumed else 0
