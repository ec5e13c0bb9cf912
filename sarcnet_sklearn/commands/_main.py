"""The ``sarcnet-sklearn`` command line tool: one parser, one error policy.

Each subcommand lives in a module of this subpackage named after the library
subpackage it drives and is registered here through that module's
``add_subcommand(subparsers)``, which adds a parser whose ``func`` default
takes the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__


def build_parser() -> argparse.ArgumentParser:
    """The ``sarcnet-sklearn`` parser with every subcommand registered.

    Examples
    --------
    >>> build_parser().parse_args(["predict", "m.joblib", "cells.csv", "--out", "p.csv"]).command
    'predict'
    """
    from . import demo, deploy, explain, features, fields, reproduce, tuning

    parser = argparse.ArgumentParser(
        prog="sarcnet-sklearn",
        description="Score sarcomere organization of hiPSC-CMs with SarcNet (scikit-learn API).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (demo, features, deploy, tuning, reproduce, explain, fields):
        module.add_subcommand(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line tool; returns the process exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # for the provenance of what a command writes
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

