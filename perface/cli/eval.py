"""``perface eval agreement|attributes|verification``: is a model better than the base model, on which
judgments, and did it keep identity? (``swap|anonymization|video|distribution`` evaluate generated faces, see
:mod:`perface.cli.eval_generated`.)

Every sub-command takes ``--model`` several times (the first is the baseline others are compared with),
prints a table (or one JSON object with ``--json``) and can write ``--report DIR``. Each model finds faces
with its own face options unless face options are given here. Images without a usable face are listed, never
dropped silently.
"""

from __future__ import annotations

import argparse
import json
import sys

from perface.cli.commands import COMMANDS
from perface.cli.eval_generated import add_parsers as add_generated_parsers
from perface.cli.options import (add_batch_options, add_face_options, add_model_option, add_output_options,
                                 add_root_option, load_model, models_argument, progress_enabled)
from perface.errors import UsageError
from perface.evaluation.evaluate import EmbedOptions, agreement_file, attributes_file, verification_file
from perface.progress import bars


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help=COMMANDS["eval"].help,
                       description="Evaluate one or more models (repeat --model; the first is the baseline).")
    evsub = p.add_subparsers(dest="eval_command", metavar="EVAL", parser_class=type(p))

    a = evsub.add_parser("agreement", help="2AFC agreement with triplet judgments (bootstrap 95%% CI)",
                         description="2AFC agreement with triplet judgments: credit p_a when the model finds 'a' "
                                     "more similar to the anchor, 1 - p_a otherwise, 0.5 on ties (plain accuracy "
                                     "for hard labels); bootstrap 95% CI, per-stratum results, and the paired "
                                     "bootstrap difference of every model against the first.")
    a.add_argument("--triplets", required=True, metavar="FILE", help="triplets CSV/Parquet (anchor,a,b,p_a[,stratum])")
    a.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="bootstrap resamples (default: 2000)")
    a.add_argument("--split", metavar="NAME", help="only rows whose 'split' column is NAME (e.g. test)")
    _common(a, "the triplets file")
    a.set_defaults(func=run_agreement)

    t = evsub.add_parser("attributes", help="linear probes for label columns (gender, age, race, ...)",
                         description="Logistic-regression probes (stratified 5-fold CV) per label column: accuracy "
                                     "and balanced accuracy +- std; a numeric column (age) gets a ridge regression "
                                     "probe (MAE).")
    t.add_argument("--labels", required=True, metavar="FILE", help="label file with a path column and label columns")
    t.add_argument("--column", action="append", dest="columns", metavar="COL",
                   help="label column to probe (repeat; default: every column except path)")
    t.add_argument("--folds", type=int, default=5, metavar="K", help="cross-validation folds (default: 5)")
    _common(t, "the label file")
    t.set_defaults(func=run_attributes)

    v = evsub.add_parser("verification", help="same/different person pairs: LFW 10-fold accuracy, AUC, TAR@FAR, EER",
                         description="Face verification on LFW pairs.txt or a CSV with columns a,b,same[,fold]: "
                                     "10-fold accuracy (threshold chosen on 9 folds, tested on the 10th), ROC AUC, "
                                     "TAR at FAR 1e-2 and 1e-3, EER.")
    v.add_argument("--pairs", required=True, metavar="FILE", help="LFW pairs.txt or a CSV a,b,same[,fold]")
    v.add_argument("--format", choices=("auto", "lfw", "csv"), default="auto",
                   help="pairs file format (default: auto, .csv is CSV, anything else LFW pairs.txt)")
    _common(v, "the pairs file")
    v.set_defaults(func=run_verification)

    add_generated_parsers(evsub)
    p.set_defaults(func=_missing_subcommand)


def _missing_subcommand(args) -> int:
    raise UsageError("eval needs a sub-command: agreement, attributes, verification, swap, anonymization, video or "
                     "distribution")


def _common(p: argparse.ArgumentParser, what: str) -> None:
    add_root_option(p, what)
    add_model_option(p, multiple=True)
    add_face_options(p)
    add_output_options(p)
    p.add_argument("--seed", type=int, default=0, help="seed of bootstrap / cross-validation (default: 0)")
    add_batch_options(p, cache=True)


def _run(args, evaluate, **kwargs) -> int:
    models = {m: (lambda m=m: load_model(args, m)) for m in models_argument(args)}
    with bars(progress_enabled(args)) as bar:
        options = EmbedOptions(batch_size=args.batch_size, workers=args.workers, cache=not args.no_cache,
                               progress=bar)
        result = evaluate(models=models, root=args.root, options=options, **kwargs)
    if args.report:
        from perface.evaluation.report import write_report

        report = write_report(args.report, result.command, result.payload, result.runs, result.comparisons)
        print(f"perface: wrote {report} (with metrics.json and plots)", file=sys.stderr)
    for run in result.runs:
        u = run.metrics["unusable"]
        if u["count"]:
            shown = ", ".join(u["files"][:3]) + (", ..." if u["count"] > 3 else "")
            print(f"perface: {run.label}: {u['count']} image(s) without a usable face left out ({shown}); "
                  f"evaluated {run.metrics['n']} of {run.metrics['n_total']} items; all are listed with --json/--report; "
                  "--on-no-face whole-image embeds tight crops whole", file=sys.stderr)
    print(json.dumps(result.payload) if args.json else "\n".join(result.table()))
    return 0


def run_agreement(args) -> int:
    return _run(args, agreement_file, triplets=args.triplets, split=args.split, n_boot=args.bootstrap,
                seed=args.seed)


def run_verification(args) -> int:
    return _run(args, verification_file, pairs=args.pairs, format=args.format)


def run_attributes(args) -> int:
    return _run(args, attributes_file, labels=args.labels, columns=args.columns, folds=args.folds, seed=args.seed)
