"""The ``sarcnet-sklearn info`` subcommand: a model file's card."""

from __future__ import annotations

import argparse
import json


def add_subcommand(subparsers) -> None:
    """Register ``info`` on the ``sarcnet-sklearn`` subparsers.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_subcommand(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["info", "m.zip", "--json"]).json
    True
    """
    parser = subparsers.add_parser(
        "info",
        help="print a model file's card: what it is, what it was trained on, how well it did",
        description=(
            "Print the model card stored in a model file: backbone, protocol, image size, the "
            "pixel size its features are measured at, score range, training data (kind: "
            "synthetic, AICS or own; number of cells; fingerprint), validation metrics, "
            "calibration, the package and library versions it was made with, its intended "
            "use, and the file's SHA-256. A safe-format model (.zip or folder) is read "
            "without unpickling anything; a joblib file is loaded, which runs the code it "
            "holds: only for files you trust."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="model file or safe-format folder/.zip")
    parser.add_argument("--json", action="store_true",
                        help="print the card as one JSON object")
    parser.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    """Print the card of ``args.model``; returns the exit code."""
    from ..deploy._card import format_card, read_model_card

    card = read_model_card(args.model)
    if args.json:
        print(json.dumps(card, indent=1))
    else:
        print(format_card(card))
    return 0
