"""``perface score A B``: similarity of the faces in two images (higher = more similar)."""

from __future__ import annotations

import argparse
import json

from perface.cli.options import add_face_options, add_model_options, load_model, parse_face


def add_parser(sub) -> None:
    p = sub.add_parser("score", help="similarity of the faces in two images (higher = more similar)",
                       description="Print the cosine similarity (in [-1, 1], higher = more similar) of the faces "
                                   "in two images.")
    p.add_argument("a", help="first image")
    p.add_argument("b", help="second image")
    add_model_options(p)
    add_face_options(p, on_no_face_default="error")
    p.add_argument("--json", action="store_true", help="print a JSON object: score, model, faces (boxes used)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    face = parse_face(args.face)
    model = load_model(args)
    result = model.compare(args.a, args.b, face=face, on_no_face=args.on_no_face)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['score']:.6f}")
    return 0
