"""``perface select TARGET --gallery gallery.parquet``: replacement identities for a face to anonymise.

Candidates lie in the perceptual-similarity band (default: from the gallery's own similarity distribution, see
:mod:`perface.selection.band`), are not confused with the target by the identity model (identity similarity
below the re-identification threshold T), optionally share attributes with the target, and are ranked by
closeness to the band's centre. The target's own identity is never selected. ``--summary`` runs many targets
(images or folders) and summarises the policy: the share of selections the identity model would confuse with
their target (0 at the threshold used), the distribution of selected similarities, and how often no candidate
qualified; ``--report DIR`` does the same and also writes report.md, metrics.json, selections.parquet and a plot.
The work is done by :func:`perface.selection.select_files`.
"""

from __future__ import annotations

import argparse
import json
import sys

from perface.cli.commands import COMMANDS
from perface.cli.options import (add_batch_options, add_face_options, add_model_option, add_output_options,
                                 load_model, progress_enabled)
from perface.selection.run import select_files


def target_attribute(text: str) -> tuple[str, str]:
    """``"gender=female"`` -> ``("gender", "female")`` (an argparse ``type``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. gender=female")
    return key.strip(), value.strip()


def add_parser(sub) -> None:
    p = sub.add_parser("select", help=COMMANDS["select"].help,
                       description="Choose replacement identities for a target face from a gallery built with "
                                   "'perface gallery build': perceptually close (inside the band) but not the same "
                                   "person to the identity model (identity similarity < T); ranked by closeness to "
                                   "the band's centre. Similarities are cosines, higher = more similar.")
    p.add_argument("targets", nargs="+", metavar="TARGET",
                   help="image of the face to anonymise (with --summary / --report: any number of images or folders)")
    p.add_argument("--gallery", required=True, metavar="FILE.parquet", help="gallery from 'perface gallery build'")
    add_model_option(p, default=None, help="perceptual model; default: the one the gallery was built with")
    p.add_argument("--identity-model", default=None, metavar="M",
                   help="identity model; default: the one the gallery was built with (base)")
    add_face_options(p)
    p.add_argument("--band", metavar="LO:HI", help="perceptual-similarity band, e.g. 0.88:0.92 (default: the "
                                                   "gallery's, from its own similarity distribution)")
    p.add_argument("--max-identity-sim", type=float, default=None, metavar="T",
                   help="exclude identities whose identity similarity to the target is >= T (default: the identity "
                        "model's threshold at FAR 1e-3 on LFW pairs.txt, stored in the gallery)")
    p.add_argument("--same", default="", metavar="ATTR[,ATTR]", help="attributes candidates must share with the "
                                                                      "target, e.g. gender,age_group")
    p.add_argument("--top", type=int, default=10, metavar="K", help="candidates to return (default: 10)")
    p.add_argument("--labels", metavar="FILE", help="label file giving the targets' identities and attributes")
    p.add_argument("--target-identity", default=None, metavar="NAME",
                   help="the target's identity name (default: the label file's, else the image's folder name; "
                        "'' for unknown)")
    p.add_argument("--target-attr", action="append", default=[], type=target_attribute, metavar="KEY=VALUE",
                   help="a target attribute for --same (repeat), e.g. gender=female")
    p.add_argument("--index", choices=("auto", "exact", "faiss"), default="auto",
                   help="similarity search: exact numpy, a FAISS index, or auto (FAISS beyond 100,000 identities "
                        "when faiss-cpu is installed) (default: auto)")
    p.add_argument("--summary", action="store_true",
                   help="run every TARGET (images or folders) and print a summary of the selections")
    add_output_options(p)
    p.set_defaults(func=run)
    add_batch_options(p, cache=True)


def run(args: argparse.Namespace) -> int:
    result = select_files(args.targets, args.gallery, model=args.model, identity_model=args.identity_model,
                          loader=lambda name: load_model(args, name), band=args.band,
                          max_identity_sim=args.max_identity_sim, same=args.same, top=args.top, labels=args.labels,
                          target_identity=args.target_identity, attributes=dict(args.target_attr), index=args.index,
                          summary=args.summary or bool(args.report), batch_size=args.batch_size, workers=args.workers,
                          cache=not args.no_cache, progress=progress_enabled(args))
    for note in result.notes:
        print(f"perface: {note}", file=sys.stderr)
    if args.report:
        print(f"perface: wrote {result.write_report(args.report)} (with metrics.json, selections.parquet and a plot)",
              file=sys.stderr)
    print(json.dumps(result.to_dict(), indent=2) if args.json else "\n".join(result.lines()))
    return 0
