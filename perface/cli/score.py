"""``perface score A B``: similarity of the faces in two images (higher = more similar)."""

from __future__ import annotations

import argparse
import json

from perface.cli.commands import COMMANDS
from perface.cli.options import add_face_options, add_model_option, load_model


def add_parser(sub) -> None:
    p = sub.add_parser("score", help=COMMANDS["score"].help,
                       description="Print the cosine similarity (in [-1, 1], higher = more similar) of the faces "
                                   "in two images. An image without a usable face is an error (exit 1) unless "
                                   "--on-no-face whole-image.")
    p.add_argument("a", help="first image")
    p.add_argument("b", help="second image")
    add_model_option(p)
    add_face_options(p)
    p.add_argument("--json", action="store_true",
                   help="print a JSON object: score, model, face_options (effective), faces (boxes used)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = load_model(args).compare(args.a, args.b)
    print(json.dumps(result) if args.json else f"{result['score']:.6f}")
    return 0
