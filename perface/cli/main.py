"""Entry point of the ``perface`` command.

Errors: one line on stderr starting ``perface:``; exit 2 for usage errors, 1 for failures; a traceback only
with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

#: Sub-command modules, each with ``add_parser(subparsers)`` setting ``func(args) -> int``.
COMMAND_MODULES = (
    "perface.cli.score",
    "perface.cli.embed",
    "perface.cli.info",
    "perface.cli.ingest",
    "perface.cli.triplets",
    "perface.cli.eval",
    "perface.cli.export",
    "perface.cli.gallery",
    "perface.cli.select",
    "perface.cli.annotate",
)


class UsageError(Exception):
    """Wrong command-line usage (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="perface", description="Perceptual face similarity (higher score = more similar).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a command module not present in this build
            if exc.name == module_name:
                continue
            raise
        module.add_parser(sub)
    return parser


def _version() -> str:
    from perface import __version__

    return f"perface {__version__}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("PERFACE_DEBUG") == "1"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except UsageError as exc:
        if debug:
            raise
        msg = str(exc)
        print(msg if msg.startswith("perface:") else f"perface: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("perface: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place errors become messages
        if debug:
            raise
        from perface.errors import PerFaceError

        if isinstance(exc, PerFaceError):
            msg = " ".join(str(exc).split())  # always one line
            print(msg if msg.startswith("perface:") else f"perface: {msg}", file=sys.stderr)
        elif isinstance(exc, OSError):
            name = getattr(exc, "filename", None)
            print(f"perface: {name or ''}{': ' if name else ''}{exc.strerror or exc} (check the path and permissions)",
                  file=sys.stderr)
        else:
            print(f"perface: unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                  file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
