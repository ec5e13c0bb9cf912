"""The ``sarcnet-sklearn`` command line tool.

Each subcommand lives in the module that does its work and is registered here
through that module's ``add_subcommand(subparsers)``, which adds a parser whose
``func`` default takes the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    from . import demo, reproduce
    from .deploy import _cli as deploy_cli
    from .explain import _cli as explain_cli
    from .features import _cli as features_cli
    from .fields import _cli as fields_cli
    from .tuning import _cli as tuning_cli

    parser = argparse.ArgumentParser(
        prog="sarcnet-sklearn",
        description="Score sarcomere organization of hiPSC-CMs with SarcNet (scikit-learn API).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (demo, features_cli, deploy_cli, tuning_cli, reproduce, explain_cli,
                   fields_cli):
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
