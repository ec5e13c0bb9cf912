"""The ``sarcnet-sklearn compare`` subcommand: per-cell scores and a plate map to conditions."""

from __future__ import annotations

import argparse
import sys

from .._columns import SARCOMERE_LENGTH_COLUMN, SCORE_PRED_COLUMN
from ._options import command_line, positive


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """Register ``compare`` on the ``sarcnet-sklearn`` subparsers.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> _ = add_subcommand(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["compare", "c.csv", "--plate-map", "m.csv", "--out", "o"])
    >>> args.control, args.n_boot
    (None, 2000)
    """
    parser = subparsers.add_parser(
        "compare",
        help="compare the conditions of a screen with their control, at the level of wells",
        description=(
            f"Join the per-cell table that predict or fields wrote ({SCORE_PRED_COLUMN}, plate/"
            "well/field) to a plate map (plate, well or field, condition; optional dose and "
            "control true/false) and compare each condition with the control. Wells (fields "
            "when there are no wells) are the replicates: a condition's mean is the mean of its "
            "well means, the 95%% interval of the difference comes from a bootstrap that "
            "resamples wells and then their cells, the p-value from permuting wells (within "
            "plates), corrected with Holm's method across conditions. The same for "
            f"{SARCOMERE_LENGTH_COLUMN} when present and for --columns. With doses, a "
            "four-parameter logistic per compound with its EC50. Writes OUT/conditions.csv and "
            "OUT/index.html (figures embedded)."
        ),
    )
    parser.add_argument("cells", metavar="CELLS.csv", help="per-cell table (predict, fields)")
    parser.add_argument("--plate-map", required=True, metavar="MAP.csv",
                        help="plate map: plate, well (or field), condition[, dose][, control]")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    parser.add_argument("--control", default=None, metavar="NAME",
                        help="the control condition (default: the plate map's rows whose "
                             "'control' column is true)")
    parser.add_argument("--columns", nargs="+", default=[], metavar="COLUMN",
                        help="other numeric per-cell columns to compare the same way")
    parser.add_argument("--n-boot", type=positive, default=2000,
                        help="bootstrap resamples per interval (default: %(default)s)")
    parser.add_argument("--n-perm", type=positive, default=2000,
                        help="permutations per p-value (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed of the bootstrap and permutations (default: %(default)s)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Compare, write the table and the page, print where they went and what was left out."""
    from ..outputs import check_output, refuse_inputs
    from ..screens import compare_conditions, write_comparison

    out = check_output(args.out, folder=True)
    refuse_inputs([out / "conditions.csv", out / "index.html"], [args.cells, args.plate_map])
    result = compare_conditions(args.cells, args.plate_map, control=args.control,
                                columns=args.columns, n_boot=args.n_boot, n_perm=args.n_perm,
                                random_state=args.seed)
    paths = write_comparison(result, out, command=command_line(args))
    table = result.conditions
    n_compared = int(table["p_value"].notna().sum())
    print(f"compared {n_compared} of {len(table) - (result.control is not None)} condition(s) "
          f"with the control {result.control!r} over {len(result.units)} {result.unit}s and "
          f"{len(result.cells)} cells")
    print(f"wrote {paths['conditions'].resolve()}")
    print(f"wrote {paths['html'].resolve()} (figures embedded; PNG files beside it)")
    if result.refused:
        total = sum(result.refused.values())
        print(f"warning: {total} of {len(result.cells)} cells have no score, counted in "
              "n_refused:", file=sys.stderr)
        for reason, count in sorted(result.refused.items(), key=lambda item: -item[1]):
            print(f"  {count} {reason}", file=sys.stderr)
    for problem in result.problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0
