"""The ``sarcnet-sklearn suggest`` subcommand: which cells to score by hand next."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._columns import TARGET_COLUMN
from .._recipe import (
    SUGGEST_DENSITY,
    SUGGEST_GROUPS,
    SUGGEST_ORDER,
    SUGGEST_ORDERS,
    SUGGEST_RANDOM_SHARE,
)
from ._options import DATA_HELP, check_csv_output


def add_subcommand(subparsers) -> None:
    """Register ``suggest`` on the ``sarcnet-sklearn`` subparsers.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_subcommand(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["suggest", "m.zip", "crops/cells.csv", "--out", "o.csv"]).random_share
    0.2
    """
    suggest = subparsers.add_parser(
        "suggest",
        help="order the unscored cells for scoring by hand",
        description=(
            "Write the unscored cells of DATA (those with an empty score) in the order to score "
            "them by hand: with --order representative, each next cell the one that makes the "
            "cells scored so far most like the whole table as the model sees cells (kinds of "
            "cell the scored ones miss first); with --order uncertain, the cells the model is "
            "least sure about first (the spread of its scores over the image's 8 flips and "
            "quarter turns, or the width of its prediction interval). A share of random cells "
            "is mixed in. Cells that cannot be scored come last, with the reason in 'error'."
        ),
    )
    suggest.add_argument("model", metavar="MODEL", help="model file or safe-format folder/.zip")
    suggest.add_argument("data", metavar="DATA", help=DATA_HELP)
    suggest.add_argument("--out", required=True, metavar="ORDER.csv",
                         help="CSV to write (never one of the inputs)")
    suggest.add_argument("--order", choices=SUGGEST_ORDERS, default=SUGGEST_ORDER,
                         help="representative: like the whole table, given the cells scored "
                              "so far; uncertain: the model's least sure first "
                              "(default: %(default)s)")
    suggest.add_argument("--random-share", type=float, default=SUGGEST_RANDOM_SHARE,
                         help="share of the order drawn at random (default: %(default)s)")
    suggest.add_argument("--by", choices=["d4", "interval"], default="d4",
                         help="uncertainty: spread over the 8 flips and turns, or interval "
                              "width (calibrated models) (default: %(default)s)")
    suggest.add_argument("--groups", type=int, default=SUGGEST_GROUPS, metavar="N",
                         help="--order uncertain: spread the model's picks over N groups of "
                              "alike cells (k-means of their features and predicted score), "
                              "the most uncertain of each in turn (1: by uncertainty alone; "
                              "default: %(default)s)")
    suggest.add_argument("--density", type=float, default=SUGGEST_DENSITY, metavar="POWER",
                         help="--order uncertain: weigh the uncertainty by how typical each "
                              "cell is (its density among the cells) to this power, so that "
                              "odd cells come later "
                              "(0: uncertainty alone; default: %(default)s)")
    suggest.add_argument("--target", default=TARGET_COLUMN,
                         help="column of the scores given so far (default: %(default)s)")
    suggest.add_argument("--random-state", type=int, default=0, help="default: %(default)s")
    suggest.add_argument("--device", choices=["cpu", "cuda"], help="default: the model's")
    suggest.set_defaults(func=run_suggest)


def run_suggest(args: argparse.Namespace) -> int:
    """Write the order; returns the exit code."""
    from ..deploy import load_model, suggest_cells
    from ..deploy._suggest import CHOSEN_BY_COLUMN
    from ..outputs import check_output, write_csv_atomically
    from ..tables import load_cells

    check_output(args.out, inputs=[args.data, args.model])
    check_csv_output(args.out)
    model = load_model(args.model, device=args.device)
    cells = load_cells(args.data)
    order = suggest_cells(model, cells, order=args.order, random_share=args.random_share,
                          by=args.by, groups=args.groups, density=args.density,
                          target=args.target, random_state=args.random_state)
    output = write_csv_atomically(order, args.out, inputs=[args.data, args.model])
    counts = order[CHOSEN_BY_COLUMN].value_counts()
    failed = order[CHOSEN_BY_COLUMN].isna().sum()
    print(f"wrote the order of {len(order)} unscored cells to {Path(output).resolve()} "
          f"({counts.get('model', 0)} chosen by the model, {counts.get('random', 0)} at random"
          f"{f', {failed} that cannot be scored last' if failed else ''})")
    return 0
