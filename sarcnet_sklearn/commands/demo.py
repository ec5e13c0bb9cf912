"""The ``sarcnet-sklearn demo`` subcommand."""

from __future__ import annotations

import argparse

from ._options import command_line
from .reproduce import add_run_arguments, run_settings


def add_subcommand(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="fit the linear baseline and SarcNet on synthetic cells and compare them",
        description=(
            "Two rows of 'reproduce' on a synthetic dataset in the AICS layout: fit the "
            "linear baseline and SarcNet (Protocol 2), print Spearman/MAE/MSE/R² on the test "
            "split, save the fitted SarcNet (joblib model file, as 'train' writes) and write "
            "the HTML report of the test split. On a CPU the run is reduced (small images, "
            "few epochs) to take a few minutes; on a GPU it uses the paper's settings. Run "
            "again with the same --out, it reuses what is done."
        ),
    )
    parser.add_argument("--out", default="sarcnet_demo_output", help="output folder")
    parser.add_argument("--field-split", action="store_true",
                        help="also fit both models on a split by field of view (no field in "
                             "two parts) and show them side by side; twice the time")
    add_run_arguments(parser)
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    device, settings = run_settings(args, synthetic=True)
    run_demo(args.out, settings=settings, device=device, random_state=args.random_state,
             split=("cell", "field") if args.field_split else "cell", command=command_line(args))
    return 0
