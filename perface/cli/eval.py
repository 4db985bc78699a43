"""``perface eval agreement|attributes|verification``: is a model better than the base model, on which
judgments, and did it keep identity?

Every sub-command takes ``--model`` several times (the first is the baseline others are compared with),
prints a table (or one JSON object with ``--json``) and can write ``--report DIR``. Images without a usable
face are listed, never dropped silently.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from perface.cli.options import add_batch_options, add_face_options, add_model_options, load_model, parse_face


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate models: triplet agreement, attribute probes, face verification",
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
    _common(a, "triplets file")
    a.set_defaults(func=run_agreement)

    t = evsub.add_parser("attributes", help="linear probes for label columns (gender, age, race, ...)",
                         description="Logistic-regression probes (stratified 5-fold CV) per label column: accuracy "
                                     "and balanced accuracy +- std; a numeric column (age) gets a ridge regression "
                                     "probe (MAE).")
    t.add_argument("--labels", required=True, metavar="FILE", help="CSV with a path column and label columns")
    t.add_argument("--column", action="append", dest="columns", metavar="COL",
                   help="label column to probe (repeat; default: every column except path)")
    t.add_argument("--folds", type=int, default=5, metavar="K", help="cross-validation folds (default: 5)")
    _common(t, "labels file")
    t.set_defaults(func=run_attributes)

    v = evsub.add_parser("verification", help="same/different person pairs: LFW 10-fold accuracy, AUC, TAR@FAR, EER",
                         description="Face verification on LFW pairs.txt or a CSV with columns a,b,same[,fold]: "
                                     "10-fold accuracy (threshold chosen on 9 folds, tested on the 10th), ROC AUC, "
                                     "TAR at FAR 1e-2 and 1e-3, EER.")
    v.add_argument("--pairs", required=True, metavar="FILE", help="LFW pairs.txt or a CSV a,b,same[,fold]")
    v.add_argument("--format", choices=("auto", "lfw", "csv"), default="auto",
                   help="pairs file format (default: auto, .csv is CSV, anything else LFW pairs.txt)")
    _common(v, "pairs file", lfw=True)
    v.set_defaults(func=run_verification)
    from perface.cli.eval_generated import add_parsers as add_generated_parsers  # swap, anonymization, video, distribution
    add_generated_parsers(evsub)

    p.set_defaults(func=lambda args: _missing_subcommand(p))


def _missing_subcommand(parser) -> int:
    from perface.cli.main import UsageError

    raise UsageError("eval needs a sub-command: agreement, attributes or verification")


def _common(p: argparse.ArgumentParser, what: str, lfw: bool = False) -> None:
    default_root = ("the images/ folder beside the pairs file if there is one, else the pairs file's folder" if lfw
                    else f"the {what}'s folder")
    p.add_argument("--root", default=None, metavar="DIR", help=f"folder the image paths are relative to (default: {default_root})")
    add_model_options(p, multiple=True)
    add_face_options(p, on_no_face_default="skip")
    p.add_argument("--json", action="store_true", help="print one JSON object (models: {--model argument: metrics})")
    p.add_argument("--report", metavar="DIR", help="write report.md, metrics.json and PNG plots to DIR")
    p.add_argument("--seed", type=int, default=0, help="seed of bootstrap / cross-validation (default: 0)")
    add_batch_options(p, cache=True)


# --- shared plumbing ---------------------------------------------------------------------------------------
def _models(args) -> dict:
    from perface.cli.main import UsageError

    models = args.models or ["base"]
    dup = sorted({m for m in models if models.count(m) > 1})
    if dup:
        raise UsageError(f"--model {dup[0]} given twice")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    return {m: (lambda m=m: load_model(args, m)) for m in models}


def _root(args, file: str, lfw: bool = False) -> Path:
    from perface.cli.main import UsageError

    if args.root is not None:
        root = Path(args.root)
        if not root.is_dir():
            raise UsageError(f"--root {args.root}: not a folder")
        return root
    parent = Path(file).resolve().parent
    if lfw and (parent / "images").is_dir():
        return parent / "images"
    return parent


def _check_file(path: str, option: str) -> None:
    if not Path(path).is_file():
        raise FileNotFoundError(2, f"{option} file not found", path)


def _options(args, n_images: int):
    from perface.evaluation.evaluate import EmbedOptions

    workers = (os.cpu_count() or 1) if args.workers is None else max(0, args.workers)
    workers = min(workers, n_images // 64)  # a process pool costs ~1 s to start: worth it only for big runs
    return EmbedOptions(face=parse_face(args.face), on_no_face=args.on_no_face, batch_size=args.batch_size,
                        workers=workers, cache=not args.no_cache)


class _Progress:
    """A rich progress bar per model on stderr (hidden with --no-progress)."""

    def __init__(self, disabled: bool):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("embedding {task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), disable=disabled, transient=True, console=Console(stderr=True))

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def __call__(self, label: str, total: int):
        task = self.bar.add_task(label, total=total)
        return lambda n: self.bar.advance(task, n)


def _warn_unusable(runs) -> None:
    for run in runs:
        u = run.metrics["unusable"]
        if u["count"]:
            shown = ", ".join(u["files"][:3]) + (", ..." if u["count"] > 3 else "")
            print(f"perface: {run.label}: {u['count']} image(s) without a usable face left out ({shown}); "
                  f"evaluated {run.metrics['n']} of {run.metrics['n_total']} items; all are listed with --json/--report; "
                  "--on-no-face whole-image embeds tight crops whole", file=sys.stderr)


def _emit(args, command: str, payload: dict, runs, comparisons=None, table: list[str] | None = None) -> int:
    if args.report:
        from perface.evaluation.report import write_report

        report = write_report(args.report, command, payload, runs, comparisons)
        print(f"perface: wrote {report} (with metrics.json and plots)", file=sys.stderr)
    _warn_unusable(runs)
    if args.json:
        print(json.dumps(payload))
    else:
        print("\n".join(table or []))
    return 0


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


# --- commands ----------------------------------------------------------------------------------------------
def run_agreement(args) -> int:
    from perface.annotations.schema import read_triplets
    from perface.cli.main import UsageError
    from perface.evaluation.evaluate import evaluate_agreement

    if args.bootstrap < 100:
        raise UsageError("--bootstrap must be at least 100")
    models = _models(args)
    _check_file(args.triplets, "--triplets")
    root = _root(args, args.triplets)
    triplets = read_triplets(args.triplets)
    if args.split:
        if "split" not in triplets.columns:
            raise UsageError(f"--split {args.split}: {args.triplets} has no 'split' column")
        triplets = triplets[triplets["split"] == args.split].reset_index(drop=True)
    if len(triplets) == 0:
        raise UsageError(f"--triplets {args.triplets}: no triplets in the file" + (f" with split {args.split}" if args.split else ""))
    n_images = len(set(triplets["anchor"]) | set(triplets["a"]) | set(triplets["b"]))
    options = _options(args, n_images)
    with _Progress(args.no_progress) as progress:
        options.progress = progress
        runs, comparisons = evaluate_agreement(models, triplets, root, options, n_boot=args.bootstrap, seed=args.seed)
    payload = {"command": "agreement", "triplets": str(args.triplets), "root": str(root),
               "on_no_face": args.on_no_face, "models": {r.label: r.metrics for r in runs},
               "comparisons": comparisons}
    rows = [["model", "agreement", "95% CI", "triplets"]]
    for r in runs:
        m = r.metrics
        rows.append([r.label, f"{m['agreement']:.4f}", f"[{m['ci95'][0]:.4f}, {m['ci95'][1]:.4f}]",
                     f"{m['n']}/{m['n_total']}"])
        for s, ms in m["by_stratum"].items():
            rows.append([f"  {s}", f"{ms['agreement']:.4f}", f"[{ms['ci95'][0]:.4f}, {ms['ci95'][1]:.4f}]", str(ms["n"])])
    for c in comparisons:
        rows.append([f"{c['model']} - {c['baseline']}", f"{c['difference']:+.4f}",
                     f"[{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}]", str(c["n"])])
    return _emit(args, "agreement", payload, runs, comparisons, _table(rows))


def run_verification(args) -> int:
    from perface.evaluation.evaluate import evaluate_verification
    from perface.evaluation.verification import read_pairs

    models = _models(args)
    _check_file(args.pairs, "--pairs")
    fmt = args.format if args.format != "auto" else ("csv" if args.pairs.lower().endswith(".csv") else "lfw")
    root = _root(args, args.pairs, lfw=fmt == "lfw")
    pairs = read_pairs(args.pairs, fmt)
    options = _options(args, len(set(pairs.frame["a"]) | set(pairs.frame["b"])))
    with _Progress(args.no_progress) as progress:
        options.progress = progress
        runs = evaluate_verification(models, pairs, root, options)
    payload = {"command": "verification", "pairs": str(args.pairs), "format": fmt, "root": str(root),
               "on_no_face": args.on_no_face, "models": {r.label: r.metrics for r in runs}}
    fars = list(runs[0].metrics["tar_at_far"])
    rows = [["model", "accuracy", "AUC", "EER", *[f"TAR@FAR={f}" for f in fars], "pairs"]]
    for r in runs:
        m = r.metrics
        rows.append([r.label, f"{m['accuracy']:.4f}+-{m['accuracy_std']:.4f}", f"{m['auc']:.4f}", f"{m['eer']:.4f}",
                     *[f"{m['tar_at_far'][f]:.4f}" for f in fars], f"{m['n']}/{m['n_total']}"])
    return _emit(args, "verification", payload, runs, table=_table(rows))


def run_attributes(args) -> int:
    import pandas as pd

    from perface.cli.main import UsageError
    from perface.evaluation.evaluate import evaluate_attributes

    if args.folds < 2:
        raise UsageError("--folds must be at least 2")
    models = _models(args)
    _check_file(args.labels, "--labels")
    root = _root(args, args.labels)
    try:
        labels = pd.read_csv(args.labels, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        from perface.errors import AnnotationError

        raise AnnotationError(f"{args.labels}: not a readable CSV file ({' '.join(str(exc).split())}); expected a "
                              "header such as path,gender,age") from None
    labels.columns = [str(c).strip() for c in labels.columns]
    options = _options(args, len(labels))
    with _Progress(args.no_progress) as progress:
        options.progress = progress
        runs = evaluate_attributes(models, labels, root, columns=args.columns, options=options, folds=args.folds,
                                   seed=args.seed)
    payload = {"command": "attributes", "labels": str(args.labels), "root": str(root),
               "on_no_face": args.on_no_face, "models": {r.label: r.metrics for r in runs}}
    rows = [["model", "label", "probe", "result", "chance/baseline", "n"]]
    for r in runs:
        for col, v in r.metrics.items():
            if not isinstance(v, dict) or "kind" not in v:
                continue
            if v["kind"] == "classification":
                rows.append([r.label, col, "logistic", f"acc {v['accuracy']:.4f}+-{v['accuracy_std']:.4f} "
                             f"bal {v['balanced_accuracy']:.4f}+-{v['balanced_accuracy_std']:.4f}",
                             f"{v['chance_majority']:.4f}/{v['chance_balanced']:.4f}", str(v["n"])])
            elif v["kind"] == "regression":
                rows.append([r.label, col, "ridge", f"MAE {v['mae']:.3f}+-{v['mae_std']:.3f}",
                             f"{v['baseline_mae']:.3f}", str(v["n"])])
            else:
                rows.append([r.label, col, "skipped", v["reason"], "", ""])
    return _emit(args, "attributes", payload, runs, table=_table(rows))
