"""Entry point of the ``perface`` command.

Errors: one line on stderr starting ``perface:``; exit 2 for usage errors, 1 for failures; a traceback only
with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from perface.cli.commands import COMMANDS
from perface.errors import FileCollectionError, JobInterrupted, PerFaceError, SettingsError, UsageError

__all__ = ["UsageError", "build_parser", "main", "report_error"]



class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``perface`` parser; with ``only``, just that sub-command's module is imported (the others are listed
    with their help line), so a command starts without importing the libraries of all the others."""
    parser = _Parser(prog="perface", description="Perceptual face similarity (higher score = more similar).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, command in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(command.module).add_parser(sub)
        else:
            sub.add_parser(name, help=command.help)
    return parser


def _command_name(argv: list[str]) -> str | None:
    """The sub-command ``argv`` names (its first word that is not a global option), if it is one."""
    for arg in argv:
        if arg.startswith("-"):
            continue
        return arg if arg in COMMANDS else None
    return None


def _version() -> str:
    from perface.version import __version__

    return f"perface {__version__}"


def report_error(exc: BaseException, prog: str = "perface") -> int:
    """Print ``exc`` as one line on stderr (``prog: message``) and return its exit code: 2 for usage and setting
    errors, 130 for an interrupt, 1 otherwise. The one place errors become messages (``scripts/train.py`` uses
    it too)."""
    if isinstance(exc, KeyboardInterrupt):
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    if isinstance(exc, BrokenPipeError):  # output piped into `head` and the like: not an error of ours
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keep Python's flush at exit quiet
        except OSError:
            pass
        return 0
    if isinstance(exc, PerFaceError):
        msg = " ".join(str(exc).split())  # always one line
        code = 2 if isinstance(exc, (UsageError, SettingsError, FileCollectionError)) else (
            130 if isinstance(exc, JobInterrupted) else 1)
    elif isinstance(exc, OSError):
        name = getattr(exc, "filename", None)
        msg = f"{name or ''}{': ' if name else ''}{exc.strerror or exc} (check the path and permissions)"
        code = 1
    else:
        msg = f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)"
        code = 1
    print(msg if msg.startswith(f"{prog}:") else f"{prog}: {msg}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("PERFACE_DEBUG") == "1"
    try:
        parser = build_parser(_command_name(argv))
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except BaseException as exc:  # noqa: BLE001 - the one place errors become messages
        if isinstance(exc, SystemExit) or (debug and not isinstance(exc, KeyboardInterrupt)):
            raise
        return report_error(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
