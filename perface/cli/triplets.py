"""``perface triplets``: inspect, aggregate, split, sample and build triplet files.

Sub-commands:

* ``stats FILE``: counts, agreement (mean pairwise, Krippendorff's alpha), per-annotator table, how often
  images repeat (judgments or triplets file).
* ``aggregate JUDGMENTS --out FILE``: votes -> triplets, optionally leaving out low-quality annotators.
* ``split FILE --out FILE``: seeded train/val/test split, disjoint by image (and by person with
  ``--identities``); reports how many triplets were dropped to keep it so.
* ``sample --images DIR --n N --strategy random|stratified|uncertain --out FILE``: triplets for a new
  annotation campaign, as CSV and (``--label-studio``) Label Studio tasks.
* ``from-labels``: proxy triplets from identity or attribute labels (``--config FILE`` or flags).
* ``labeling-config``: print the Label Studio labeling config of the triplet task.

Every sub-command but ``labeling-config`` takes ``--json`` (one JSON object instead of text). Image paths in
triplet files are relative to the dataset root: ``--root DIR``, default ``$PERFACE_DATA``. The work is done by
:mod:`perface.annotations`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from perface.annotations.aggregate import aggregate_file
from perface.annotations.labeling_config import labeling_config
from perface.annotations.proxy_config import ProxyConfig, write_proxy_triplets
from perface.annotations.sample import STRATEGIES, sample_file
from perface.annotations.split import split_file
from perface.annotations.stats import file_stats, format_stats
from perface.cli.commands import COMMANDS
from perface.cli.options import (add_batch_options, add_face_options, add_model_option, add_output_options,
                                 add_root_option, load_model, progress_enabled)
from perface.errors import UsageError

__all__ = ["add_dataset_root_option", "add_parser", "add_quality_options"]


def add_dataset_root_option(parser: argparse.ArgumentParser, what: str) -> None:
    """The shared ``--root DIR`` with the annotation files' default: the dataset root
    (:func:`perface.io.files.data_root`: ``$PERFACE_DATA``, else ``shared/data`` beside a source checkout)."""
    add_root_option(parser, what, dataset_root=True)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("triplets", help=COMMANDS["triplets"].help,
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="triplets_command", metavar="SUBCOMMAND", parser_class=type(p))

    s = sub.add_parser("stats", help="counts, agreement, per-annotator table, image repetition")
    s.add_argument("file", help="judgments or triplets file (CSV or Parquet)")
    s.add_argument("--top", type=int, default=20, metavar="N",
                   help="annotators and images listed in the tables (default: 20; 0 = all)")
    add_output_options(s, report=False)
    s.set_defaults(func=run_stats)

    a = sub.add_parser("aggregate", help="votes -> triplets (n_a, n_b, p_a), optional annotator filtering")
    a.add_argument("file", help="judgments file")
    a.add_argument("--out", required=True, help="triplets file to write (.csv or .parquet)")
    add_quality_options(a)
    add_output_options(a, report=False)
    a.set_defaults(func=run_aggregate)

    sp = sub.add_parser("split", help="seeded train/val/test split, disjoint by image (and person)")
    sp.add_argument("file", help="triplets file")
    sp.add_argument("--out", required=True, help="split triplets file to write (kept triplets + split column)")
    sp.add_argument("--fractions", default="0.8,0.1,0.1", help="train,val,test shares (default: 0.8,0.1,0.1)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--identities", metavar="CSV",
                    help="label file with path and identity columns (e.g. lfw/gender.csv): keep people disjoint")
    sp.add_argument("--identity-column", default="identity")
    add_dataset_root_option(sp, "the triplets file (used with --identities)")
    sp.add_argument("--dropped", metavar="FILE", help="also write the dropped triplets here")
    add_output_options(sp, report=False)
    sp.set_defaults(func=run_split)

    sa = sub.add_parser("sample", help="choose triplets for a new annotation campaign")
    sa.add_argument("--images", required=True, metavar="DIR", help="folder of images (searched recursively)")
    sa.add_argument("--n", type=int, required=True, help="number of triplets")
    sa.add_argument("--strategy", choices=STRATEGIES, default="random")
    sa.add_argument("--out", required=True, help="triplets to annotate (.csv or .parquet)")
    sa.add_argument("--label-studio", metavar="JSON", help="also write Label Studio tasks here")
    sa.add_argument("--url-prefix", default="/data/local-files/?d=",
                    help="prefix of image URLs in Label Studio tasks (default: local-files serving)")
    add_root_option(sa, "the output")
    sa._option_string_actions["--root"].help = ("folder the image paths in the output are relative to (default: "
                                                "$PERFACE_DATA if it contains --images, else --images itself)")
    sa.add_argument("--labels", metavar="CSV", help="attribute labels (stratified)")
    sa.add_argument("--attributes", default="gender,race,age", help="attributes to stratify by")
    add_model_option(sa, default=None, help="model for the uncertain strategy (e.g. base, a .ckpt/.pt/.onnx file)")
    add_face_options(sa)
    sa.add_argument("--pool-factor", type=int, default=20, help="uncertain: candidates scored per kept triplet")
    sa.add_argument("--max-images", type=int, default=2000, help="uncertain: images embedded at most")
    sa.add_argument("--within-group", type=float, default=0.5,
                    help="stratified: share of triplets with both candidates from the anchor's group")
    sa.add_argument("--seed", type=int, default=0)
    add_batch_options(sa, cache=True)
    add_output_options(sa, report=False)
    sa.set_defaults(func=run_sample)

    fl = sub.add_parser("from-labels", help="proxy triplets from identity or attribute labels")
    fl.add_argument("--config", metavar="YAML", help="a configs/triplets/*.yaml file (flags override it)")
    fl.add_argument("--kind", choices=("identity", "attribute"), help="proxy-identity or proxy-attribute")
    fl.add_argument("--labels", action="append", metavar="CSV",
                    help="label file(s), relative to the dataset root or the current folder (repeatable; "
                         "attribute triplets are drawn within each file)")
    fl.add_argument("--attributes", help="attribute triplets: among gender,race,age (default: all the file has)")
    fl.add_argument("--identity-column", help="identity column (identity triplets; attribute triplets: keep "
                                              "a and b other people than the anchor)")
    fl.add_argument("--negative-same", help="identity triplets: attributes b's person shares with the anchor")
    fl.add_argument("--n", type=int, help="number of triplets")
    fl.add_argument("--seed", type=int)
    fl.add_argument("--min-age-gap", type=int, help="age bands apart for ages to count as different (default 1)")
    fl.add_argument("--split", metavar="FRACTIONS",
                    help="give images (people) to train,val,test first, e.g. 0.8,0.1,0.1; adds a split column")
    add_dataset_root_option(fl, "the label files and the output")
    fl.add_argument("--out", help="triplets file to write (default: the config's out)")
    add_output_options(fl, report=False)
    fl.set_defaults(func=run_from_labels)

    lc = sub.add_parser("labeling-config", help="print the Label Studio labeling config of the triplet task")
    lc.add_argument("--out", help="write it to this file instead of printing")
    lc.set_defaults(func=run_labeling_config)

    p.set_defaults(func=_missing_subcommand)
    return p


def add_quality_options(p: argparse.ArgumentParser) -> None:
    """Annotator thresholds (also on ``perface ingest``)."""
    p.add_argument("--min-agreement", type=float, metavar="X", help="drop annotators with LOO agreement < X")
    p.add_argument("--min-gold-accuracy", type=float, metavar="X", help="drop annotators with gold accuracy < X")
    p.add_argument("--min-compared", type=int, default=5, metavar="N",
                   help="judge agreement only for annotators with at least N comparisons (default: 5)")


def _missing_subcommand(args: argparse.Namespace) -> int:
    raise UsageError("triplets needs a sub-command: stats, aggregate, split, sample, from-labels or labeling-config")


def _print(args: argparse.Namespace, run) -> int:
    """One JSON object (``--json``) or the run's text lines."""
    print(json.dumps(run.to_dict(), indent=2) if args.json else "\n".join(run.lines()))
    return 0


def run_stats(args: argparse.Namespace) -> int:
    info = file_stats(args.file)
    print(json.dumps(info, indent=2) if args.json else format_stats(info, args.top))
    return 0


def run_aggregate(args: argparse.Namespace) -> int:
    return _print(args, aggregate_file(args.file, args.out, min_agreement=args.min_agreement,
                                       min_gold_accuracy=args.min_gold_accuracy, min_compared=args.min_compared))


def run_split(args: argparse.Namespace) -> int:
    return _print(args, split_file(args.file, args.out, fractions=args.fractions, seed=args.seed,
                                   identities=args.identities, identity_column=args.identity_column, root=args.root,
                                   dropped=args.dropped))


def run_sample(args: argparse.Namespace) -> int:
    run = sample_file(args.images, args.n, args.out, strategy=args.strategy, root=args.root, labels=args.labels,
                      attributes=args.attributes, model=(lambda: load_model(args)) if args.model else None,
                      seed=args.seed, pool_factor=args.pool_factor, max_images=args.max_images,
                      within_group=args.within_group, label_studio=args.label_studio, url_prefix=args.url_prefix,
                      on_no_face=args.on_no_face, batch_size=args.batch_size, workers=args.workers,
                      cache=not args.no_cache, progress=progress_enabled(args))
    for note in run.notes:
        print(f"perface: {note}", file=sys.stderr)
    return _print(args, run)


def run_from_labels(args: argparse.Namespace) -> int:
    return _print(args, write_proxy_triplets(ProxyConfig.from_args(vars(args))))


def run_labeling_config(args: argparse.Namespace) -> int:
    xml = labeling_config()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(xml)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(xml)
    return 0
