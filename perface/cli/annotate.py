"""``perface annotate``: run a human triplet-judgment campaign from this machine.

Sub-commands:

* ``serve --tasks TRIPLETS --root DIR --db CAMPAIGN.sqlite``: check every task image, then serve the judging
  page (http://127.0.0.1:8000/?annotator=ID by default) until Ctrl-C. Restarting with the same ``--db``
  resumes the campaign (new task rows are added). Needs ``pip install 'perface[annotate]'``.
* ``status --db CAMPAIGN.sqlite``: progress per triplet and annotator, catch-trial and gold accuracy, flagged
  annotators (the rule is printed), judgments per hour, completion codes (``--json`` for everything).
* ``export --db CAMPAIGN.sqlite --out judgments.csv|.parquet``: the canonical judgments format with
  ``source=perface-annotate``, for ``perface triplets aggregate`` / ``stats`` and training. Catch trials are
  never in that file: they are written beside it as ``<name>_catch.<ext>`` (``--catch-out`` to choose the
  file, ``--no-catch`` to leave them out).
"""

from __future__ import annotations

import argparse
import json
import sys
from perface.cli.commands import COMMANDS

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("annotate", help=COMMANDS["annotate"].help,
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="annotate_command", metavar="SUBCOMMAND", parser_class=type(p))

    s = sub.add_parser("serve", help="check the tasks and serve the judging page",
                       description="Check every task image (a missing, unreadable or out-of-root image stops the "
                                   "start with the list of bad rows, unless --skip-bad), then serve the judging page "
                                   "on 127.0.0.1:8000 until Ctrl-C. The same --db resumes the campaign.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("--tasks", required=True, metavar="TRIPLETS",
                   help="triplets to judge (.csv/.parquet with anchor,a,b), e.g. from 'perface triplets sample'")
    s.add_argument("--root", help="dataset root the task paths are relative to; only images of the tasks inside it "
                                  "are served (default: $PERFACE_DATA)")
    s.add_argument("--db", required=True, metavar="CAMPAIGN.sqlite", help="campaign database (created or resumed)")
    s.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0: every interface)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--judgments-per-triplet", "-k", type=int, default=3, metavar="K",
                   help="judgments per triplet, each from a different annotator")
    s.add_argument("--per-annotator", type=int, default=50, metavar="N",
                   help="trials per annotator session (catch and gold included); then the completion code")
    s.add_argument("--gold", metavar="FILE", help="gold triplets: anchor,a,b and gold_choice (a/b) or p_a 1/0")
    s.add_argument("--gold-rate", type=float, default=0.1, metavar="G",
                   help="share of trials drawn from the gold triplets (with --gold)")
    s.add_argument("--catch-rate", type=float, default=0.1, metavar="R",
                   help="catch trials (a candidate identical to the anchor): one in every round(1/R) trials; 0: none")
    s.add_argument("--token", metavar="SECRET", help="require this token on every request (?token= in the link)")
    s.add_argument("--skip-bad", action="store_true",
                   help="start without the task rows whose images are missing or unreadable (listed)")
    s.add_argument("--completion-url", metavar="URL",
                   help="link shown with the completion code, {code} replaced (e.g. a Prolific completion URL)")
    s.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="extra Host name to answer when bound to loopback (e.g. behind a reverse proxy); repeatable")
    s.add_argument("--frame-ancestors", default="'none'", metavar="SOURCES",
                   help="CSP frame-ancestors (set 'https://www.mturk.com https://worker.mturk.com' to embed the page "
                        "as an MTurk ExternalQuestion)")
    s.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS",
                   help="an unanswered assignment stops holding its triplet after this")
    s.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn log level")
    s.set_defaults(func=run_serve)

    st = sub.add_parser("status", help="progress, annotator quality and pace of a campaign",
                        description="Progress per triplet and annotator, catch-trial and gold accuracy, flagged "
                                    "annotators (rule printed), answers per hour, completion codes. Read-only: works "
                                    "while the server runs.")
    st.add_argument("--db", required=True, metavar="CAMPAIGN.sqlite")
    st.add_argument("--json", action="store_true", help="print one JSON object (with per-triplet progress)")
    st.add_argument("--min-catch-accuracy", type=float, default=0.8, metavar="X",
                    help="flag annotators below this catch-trial accuracy (over >= 3 catch trials)")
    st.add_argument("--min-gold-accuracy", type=float, default=0.6, metavar="X",
                    help="flag annotators below this gold accuracy (over >= 3 gold triplets)")
    st.add_argument("--min-median-ms", type=float, default=300.0, metavar="MS",
                    help="flag annotators whose median response time is below this (over >= 10 judgments)")
    st.set_defaults(func=run_status)

    ex = sub.add_parser("export", help="write the judgments in the canonical format (catch trials apart)",
                        description="Write the judgments of triplets and gold triplets to OUT in the canonical format "
                                    "(source=perface-annotate; gold rows with is_gold/gold_choice). Catch trials are "
                                    "never in OUT: they are written to OUT's name + '_catch' in the same format "
                                    "(--catch-out FILE to choose, --no-catch to leave them out).")
    ex.add_argument("--db", required=True, metavar="CAMPAIGN.sqlite")
    ex.add_argument("--out", required=True, help="judgments file to write (.csv or .parquet)")
    ex.add_argument("--catch-out", metavar="FILE",
                    help="catch-trial judgments file (default: OUT's name + '_catch', same format)")
    ex.add_argument("--no-catch", action="store_true", help="do not write the catch-trial judgments anywhere")
    ex.set_defaults(func=run_export)

    p.set_defaults(func=run, _annotate_parser=p)
    return p


def run(args: argparse.Namespace) -> int:
    args._annotate_parser.print_help(sys.stderr)
    return 2


def _usage(message: str) -> int:
    print(f"perface: {message}", file=sys.stderr)
    return 2


def _announce(summary: dict) -> None:
    print(f"campaign {summary['db']}: {summary['triplets']} triplets x {summary['judgments_per_triplet']} judgments, "
          f"{summary['gold']} gold, {summary['images']} images; {summary['per_annotator']} trials per annotator, "
          f"catch trial 1 in {summary['catch_block'] or 'never'}"
          + (f", gold rate {summary['gold_rate']:g}" if summary["gold"] else ""))
    if summary["added"] and summary["added"] != summary["triplets"] + summary["gold"]:
        print(f"added {summary['added']} task(s) to the existing campaign")
    if summary["inactive"]:
        print(f"{summary['inactive']} task(s) of the database are no longer in the task file: not assigned any more")
    if summary["duplicates"]:
        print(f"{summary['duplicates']} duplicate task row(s) left out")
    if summary["bad_rows"]:
        print(f"--skip-bad: left out {len(summary['bad_rows'])} row(s):")
        for row in summary["bad_rows"]:
            print(f"  {row}")
    print(f"serving at {summary['url']}  (replace ID by the annotator's id; Ctrl-C stops)", flush=True)


def run_serve(args: argparse.Namespace) -> int:
    from perface.io.files import data_root
    from perface.campaign import CampaignConfig, serve

    if not 0 <= args.port <= 65535:
        return _usage(f"--port must be between 0 and 65535 (got {args.port})")
    root = data_root(args.root)
    try:
        config = CampaignConfig(tasks=args.tasks, root=root, db=args.db, judgments_per_triplet=args.judgments_per_triplet,
                                gold=args.gold, catch_rate=args.catch_rate, gold_rate=args.gold_rate,
                                per_annotator=args.per_annotator, token=args.token, skip_bad=args.skip_bad,
                                completion_url=args.completion_url, assignment_timeout_s=args.timeout,
                                frame_ancestors=args.frame_ancestors, allowed_hosts=tuple(args.allow_host))
    except ValueError as exc:
        return _usage(str(exc))
    serve(config, host=args.host, port=args.port, on_start=_announce, log_level=args.log_level)
    return 0


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def run_status(args: argparse.Namespace) -> int:
    from perface.campaign import campaign_status

    status = campaign_status(args.db, min_catch_accuracy=args.min_catch_accuracy,
                             min_gold_accuracy=args.min_gold_accuracy, min_median_ms=args.min_median_ms,
                             per_triplet=args.json)
    if args.json:
        print(json.dumps(status, indent=1))
        return 0
    t = status["triplets"]
    print(f"campaign  {status['db']}")
    print(f"triplets  {t['total']}: complete {t['complete']} (>= {t['target_per_triplet']} judgments), partial "
          f"{t['partial']}, untouched {t['untouched']}; open assignments {t['open']}")
    print(f"judgments {t['judgments']} of {t['judgments'] + t['needed']} needed"
          f"  (+ {status['gold_judgments']} on gold, {status['catch_judgments']} catch trials)")
    print("per triplet  " + "  ".join(f"{k} judgments: {n}" for k, n in sorted(t["by_count"].items())))
    pace = status["pace"]
    rate = pace["judgments_per_hour"]
    print(f"pace      {pace['judgments_last_hour']} answers in the last hour; {_fmt(rate, '.0f')} per hour from "
          f"{pace['first'] or '-'} to {pace['last'] or '-'} (catch trials included)")
    a = status["agreement"]
    if a:
        print(f"agreement mean pairwise {_fmt(a.get('mean_pairwise_agreement'), '.3f')}, Krippendorff's alpha "
              f"{_fmt(a.get('krippendorff_alpha'), '.3f')} ({a.get('n_multi', 0)} triplets with 2+ judgments)")
    print(f"annotators {len(status['annotators'])}, flagged {len(status['flagged'])} ({status['flag_rule']})")
    header = (f"{'annotator':<24} {'answers':>7} {'catch':>9} {'gold':>9} {'loo':>5} {'med ms':>7} "
              f"{'code':<11} flag")
    print(header)
    for r in status["annotators"]:
        catch = f"{_fmt(r['catch_accuracy'])}/{r['n_catch']}" if r["n_catch"] else "-"
        gold = f"{_fmt(r['gold_accuracy'])}/{r['n_gold']}" if r["n_gold"] else "-"
        name = r["annotator_id"] if len(r["annotator_id"]) <= 24 else r["annotator_id"][:23] + "~"
        print(f"{name!s:<24} {r['judgments']:>7} {catch:>9} {gold:>9} {_fmt(r['loo_agreement']):>5} "
              f"{_fmt(r['median_response_ms'], '.0f'):>7} {r['completion_code'] or '-':<11} "
              f"{'; '.join(r['reasons']) if r['flagged'] else ''}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from perface.campaign import export_judgments

    if args.no_catch and args.catch_out:
        return _usage("--no-catch and --catch-out contradict each other; pass one")
    result = export_judgments(args.db, args.out, catch_out=False if args.no_catch else args.catch_out)
    print(f"wrote {result['out']}: {result['judgments']} judgments ({result['gold']} on gold) of "
          f"{result['triplets']} triplets by {result['annotators']} annotators, source=perface-annotate")
    if result["catch_out"]:
        print(f"wrote {result['catch_out']}: {result['catch']} catch-trial judgments (not triplets: keep them out of "
              "aggregation)")
    elif result["catch"]:
        print(f"{result['catch']} catch-trial judgments not written (--no-catch)")
    return 0
