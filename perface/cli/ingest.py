"""``perface ingest``: read annotation-tool exports into canonical judgments, with a rejects file.

Writes into ``--out``: ``judgments.csv`` (or ``.parquet``), ``rejects.csv`` (every refused answer with its
reason), ``triplets.csv`` (votes aggregated), ``annotators.csv`` (per-annotator agreement and gold accuracy),
``ingest_summary.json``; with ``--min-agreement`` / ``--min-gold-accuracy`` also ``dropped_annotators.csv``
(``triplets.csv`` then leaves their judgments out). Prints read / accepted / rejected-by-reason counts.
Exit 0 when at least one answer was accepted, 1 when none was (or on a malformed file), 2 on usage errors.
The work is done by :func:`perface.annotations.ingest.ingest_folder`.
"""

from __future__ import annotations

import argparse
import json

from perface.annotations.ingest import ingest_folder
from perface.annotations.readers import READERS
from perface.cli.commands import COMMANDS
from perface.cli.options import add_output_options
from perface.cli.triplets import add_dataset_root_option, add_quality_options

__all__ = ["add_parser", "parse_mapping", "run"]


def parse_mapping(text: str) -> dict[str, str]:
    """``"anchor=query,a=left"`` -> ``{"anchor": "query", "a": "left"}`` (an argparse ``type``)."""
    out: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(f"entry {part!r} is not NAME=VALUE")
        out[key] = value
    return out


def _merged(items: list[dict[str, str]] | None) -> dict[str, str]:
    return {k: v for item in items or [] for k, v in item.items()}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "ingest", help=COMMANDS["ingest"].help,
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="export file(s)")
    p.add_argument("--format", "-f", required=True, choices=sorted(READERS), dest="fmt",
                   help="export format")
    add_dataset_root_option(p, "the exports")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--map", action="append", type=parse_mapping, metavar="FIELD=COLUMN",
                   help="column mapping for generic / mturk exports, e.g. anchor=query,a=left,b=right,"
                        "choice=answer,annotator_id=worker (repeatable)")
    p.add_argument("--choice-map", action="append", type=parse_mapping, metavar="VALUE=a|b",
                   help="answer values meaning a or b, e.g. left=a,right=b (repeatable)")
    p.add_argument("--url-prefix", action="append", metavar="PREFIX",
                   help="prefix to strip from image URLs so that the rest is the root-relative path, e.g. "
                        "https://bucket.s3.amazonaws.com/faces/ (repeatable; Label Studio's /data/local-files/?d= "
                        "is always tried)")
    p.add_argument("--image-dir", default="ffhq160x160",
                   help="AVFS: folder of the FFHQ images under the root (default: ffhq160x160)")
    p.add_argument("--no-check-images", action="store_true", help="do not reject answers whose images are missing")
    p.add_argument("--table-format", choices=("csv", "parquet"), default="csv",
                   help="format of judgments and triplets (default: csv)")
    add_quality_options(p)
    p.add_argument("--quiet", "-q", action="store_true", help="print only the counts line")
    add_output_options(p, report=False)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    result = ingest_folder(args.inputs, args.fmt, args.out, root=args.root, columns=_merged(args.map),
                           choice_map=_merged(args.choice_map), url_prefixes=args.url_prefix or (),
                           image_dir=args.image_dir, check_images=not args.no_check_images,
                           table_format=args.table_format, min_agreement=args.min_agreement,
                           min_gold_accuracy=args.min_gold_accuracy, min_compared=args.min_compared)
    print(json.dumps(result.to_dict(), indent=2) if args.json else "\n".join(result.lines(args.quiet)))
    return 0
