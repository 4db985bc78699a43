"""``perface ingest``: read annotation-tool exports into canonical judgments, with a rejects file.

Writes into ``--out``: ``judgments.csv`` (or ``.parquet``), ``rejects.csv`` (every refused answer with its
reason), ``triplets.csv`` (votes aggregated), ``annotators.csv`` (per-annotator agreement and gold accuracy),
``ingest_summary.json``; with ``--min-agreement`` / ``--min-gold-accuracy`` also ``dropped_annotators.csv``
(``triplets.csv`` then leaves their judgments out). Prints read / accepted / rejected-by-reason counts.
Exit 0 when at least one answer was accepted, 1 when none was (or on a malformed file), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_parser", "run", "parse_mapping"]


def parse_mapping(items: list[str] | None, what: str) -> dict[str, str]:
    """``["anchor=query,a=left", "b=right"]`` -> ``{"anchor": "query", "a": "left", "b": "right"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise ValueError(f"{what} entry {part!r} is not NAME=VALUE")
            key, value = (s.strip() for s in part.split("=", 1))
            if not key or not value:
                raise ValueError(f"{what} entry {part!r} is not NAME=VALUE")
            out[key] = value
    return out


def add_parser(subparsers) -> argparse.ArgumentParser:
    from perface.annotations.readers import READERS

    p = subparsers.add_parser(
        "ingest", help="read annotation exports (generic, AVFS, Label Studio, MTurk) into canonical judgments",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="export file(s)")
    p.add_argument("--format", "-f", required=True, choices=sorted(READERS), dest="fmt",
                   help="export format")
    p.add_argument("--root", help="dataset root the image paths are relative to (default: $PERFACE_DATA)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--map", action="append", metavar="FIELD=COLUMN",
                   help="column mapping for generic / mturk exports, e.g. anchor=query,a=left,b=right,"
                        "choice=answer,annotator_id=worker (repeatable)")
    p.add_argument("--choice-map", action="append", metavar="VALUE=a|b",
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
    p.add_argument("--min-agreement", type=float, metavar="X",
                   help="leave out annotators whose leave-one-out agreement is below X when aggregating")
    p.add_argument("--min-gold-accuracy", type=float, metavar="X",
                   help="leave out annotators whose gold accuracy is below X when aggregating")
    p.add_argument("--min-compared", type=int, default=5, metavar="N",
                   help="judge agreement only for annotators with at least N comparisons (default: 5)")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the counts line")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from perface.annotations.aggregate import aggregate, annotator_quality, filter_annotators
    from perface.annotations.ingest import ingest, write_ingest
    from perface.annotations.paths import DEFAULT_URL_PREFIXES, data_root
    from perface.annotations.schema import write_table, write_triplets

    try:
        columns = parse_mapping(args.map, "--map")
        choice_map = parse_mapping(args.choice_map, "--choice-map")
    except ValueError as exc:
        print(f"perface: {exc}", file=sys.stderr)
        return 2
    bad = [v for v in choice_map.values() if v.lower() not in ("a", "b")]
    if bad:
        print(f"perface: --choice-map values must be a or b (got {', '.join(bad)})", file=sys.stderr)
        return 2
    for name in ("min_agreement", "min_gold_accuracy"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value <= 1.0:
            print(f"perface: --{name.replace('_', '-')} must be between 0 and 1 (got {value:g})", file=sys.stderr)
            return 2
    root = data_root(args.root)
    options = {"columns": columns, "choice_map": choice_map, "image_dir": args.image_dir}
    prefixes = tuple(args.url_prefix or ()) + DEFAULT_URL_PREFIXES
    result = ingest(args.inputs, args.fmt, root, check_images=not args.no_check_images, url_prefixes=prefixes,
                    reader_options=options)
    paths = write_ingest(result, args.out, args.table_format)
    ext = "parquet" if args.table_format == "parquet" else "csv"
    judgments = result.judgments
    quality = annotator_quality(judgments)
    write_table(quality, f"{args.out}/annotators.csv")
    dropped = None
    if args.min_agreement is not None or args.min_gold_accuracy is not None:
        judgments, dropped = filter_annotators(judgments, min_agreement=args.min_agreement,
                                               min_gold_accuracy=args.min_gold_accuracy,
                                               min_compared=args.min_compared, quality=quality)
        write_table(dropped, f"{args.out}/dropped_annotators.csv")
    triplets = aggregate(judgments)
    triplets_path = f"{args.out}/triplets.{ext}"
    if len(triplets):
        write_triplets(triplets, triplets_path)
    else:
        write_table(triplets, triplets_path)
    summary = result.summary()
    summary["triplets"] = int(len(triplets))
    if dropped is not None:
        summary["dropped_annotators"] = int(len(dropped))
        summary["judgments_left_out"] = int(len(result.judgments) - len(judgments))
    paths["summary"].write_text(json.dumps(summary, indent=2) + "\n")

    print(f"read {result.read}  accepted {result.accepted}  rejected {result.rejected}")
    if not args.quiet:
        width = max((len(r) for r in result.by_reason), default=0)
        for reason, count in result.by_reason.items():
            print(f"  {reason:<{width}}  {count}")
        if dropped is not None:
            print(f"dropped {len(dropped)} annotator(s) below threshold "
                  f"({summary['judgments_left_out']} judgments left out of the triplets)")
            for row in dropped.itertuples(index=False):
                print(f"  {row.annotator_id}: {row.reason}")
        print(f"wrote {paths['judgments']} ({result.accepted} judgments), {paths['rejects']} ({result.rejected} "
              f"rejects), {triplets_path} ({len(triplets)} triplets)")
    if result.accepted == 0:
        top = next(iter(result.by_reason), None)
        hint = f"most common reason: {top}; " if top else ""
        print(f"perface: no answer accepted from {result.read} read ({hint}see {paths['rejects']})",
              file=sys.stderr)
        return 1
    return 0
