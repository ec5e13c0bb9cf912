"""The ``sarcnet-sklearn`` command line tool: one parser, one error policy.

Each subcommand lives in a module of this subpackage named after the library
subpackage it drives and is registered here through that module's
``add_subcommand(subparsers)``, which adds a parser whose ``func`` default
takes the parsed arguments and returns an exit code. Registering a command
imports no library beyond the standard one (its ``func`` imports what it needs
when it runs), and :func:`main` imports only the module of the command it runs
(``features`` never loads torch).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from .. import __version__

COMMAND_MODULES = {
    "demo": "demo", "features": "features", "train": "deploy", "predict": "deploy",
    "tune": "tuning", "reproduce": "reproduce", "explain": "explain", "report": "explain",
    "fields": "fields", "compare": "screens", "suggest": "suggest", "info": "info",
}
"""Each subcommand and the module of this subpackage that registers it, in the order of the help."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``sarcnet-sklearn`` parser with every subcommand registered.

    Parameters
    ----------
    command : str, optional
        Register only the module of this subcommand (all when unknown or None).

    Examples
    --------
    >>> build_parser().parse_args(["predict", "m.joblib", "cells.csv", "--out", "p.csv"]).command
    'predict'
    """
    modules = ([COMMAND_MODULES[command]] if command in COMMAND_MODULES
               else dict.fromkeys(COMMAND_MODULES.values()))

    parser = argparse.ArgumentParser(
        prog="sarcnet-sklearn",
        description="Score sarcomere organization of hiPSC-CMs with SarcNet (scikit-learn API).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in modules:
        import_module(f".{name}", __package__).add_subcommand(subparsers)
    from ._logs import add_verbosity_options

    for subparser in dict.fromkeys(subparsers.choices.values()):
        add_verbosity_options(subparser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line tool; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(next((word for word in argv if not word.startswith("-")), None))
    args = parser.parse_args(argv)
    args.argv = argv  # for the provenance of what a command writes
    from .._doors import entered_through
    from ._logs import logging_to_stderr

    with entered_through("cli"), logging_to_stderr(args):  # messages name --options
        try:
            return int(args.func(args) or 0)
        except (OSError, ValueError) as exc:  # a bad file or setting: one line, no traceback
            print(f"sarcnet-sklearn {args.command}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:
            what = f": {exc}" if str(exc) else ""
            print(f"sarcnet-sklearn {args.command}: interrupted (Ctrl-C){what}; outputs are "
                  "written atomically, so none was left half-written", file=sys.stderr)
            return 130

