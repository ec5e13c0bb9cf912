"""The ``sarcnet-sklearn reproduce`` subcommand, and the run options the demo shares."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import TYPE_CHECKING

from .._columns import GROUP_COLUMNS
from .._table1 import ROW_KEYS, SPLITS
from ._options import positive

if TYPE_CHECKING:
    from ..reproduce import ReproduceSettings


def add_subcommand(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="reproduce Table 1 of the paper (six models, plus two) and the day-18/32 histogram",
        description=(
            "Split the AICS cells as the paper does, fit linear regression, ResNet-18, "
            "DenseNet, AlexNet and SarcNet (Protocols 1 and 2) with the paper's recipe, and "
            "write the test metrics beside the paper's Table 1; then two rows beyond the "
            "paper: SarcNet with D4 augmentation and test-time averaging, and ConvNeXt-Tiny. "
            "Finished rows are kept in "
            "--out and skipped on a rerun; an interrupted row resumes from its checkpoint. "
            "Without --aics-root it runs on synthetic cells (reduced on a CPU)."
        ),
    )
    parser.add_argument("--aics-root", help="AICS dataset folder (default: synthetic data)")
    parser.add_argument("--out", default="sarcnet_table1", help="output folder")
    parser.add_argument("--weights", help="'imagenet' or a folder of torchvision weight files "
                        "(default: random initialisation)")
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    parser.add_argument("--rows", nargs="+", choices=ROW_KEYS, help="run only these rows")
    parser.add_argument("--save-models", action="store_true",
                        help="also save each row's fitted model in OUT/models/")
    parser.add_argument("--split", nargs="+", choices=["cell", *GROUP_COLUMNS],
                        default=list(SPLITS),
                        help="split the cells cell by cell (the paper) and/or keeping each "
                             "field (well, plate) in one part; rows of another split than "
                             "'cell' are named '<model> (<split> split)' (default: "
                             "%(default)s, side by side: every row is fitted twice)")
    add_run_arguments(parser)
    parser.set_defaults(func=_main)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the size of a run (``--device``, ``--image-size``, ``--epochs``, ``--n-cells``...).

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_run_arguments(parser)
    >>> device, settings = run_settings(parser.parse_args(["--device", "cpu", "--epochs", "3"]),
    ...                                 synthetic=True)
    >>> device, settings.max_epochs, settings.image_size
    ('cpu', 3, 64)
    """
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: GPU when present")
    parser.add_argument("--image-size", type=positive, help="model input size in pixels")
    parser.add_argument("--epochs", type=positive, help="training epochs")
    parser.add_argument("--n-cells", type=positive, help="synthetic cells (without real data)")
    parser.add_argument("--random-state", type=int, default=0, help="default: %(default)s")


def run_settings(args: argparse.Namespace, *, synthetic: bool) -> tuple[str, ReproduceSettings]:
    """The device and :class:`~sarcnet_sklearn.reproduce.ReproduceSettings` ``args`` ask for."""
    from ..regressor import DEFAULT_DEVICE
    from ..reproduce import ReproduceSettings

    device = args.device or DEFAULT_DEVICE
    settings = ReproduceSettings.for_device(device, synthetic=synthetic)
    changes = {"image_size": args.image_size, "max_epochs": args.epochs, "n_cells": args.n_cells}
    settings = replace(settings, **{k: v for k, v in changes.items() if v is not None})
    if args.image_size is not None:
        settings = replace(settings, synthetic_size=max(settings.synthetic_size, args.image_size))
    return device, settings


def _main(args: argparse.Namespace) -> int:
    from ..reproduce import reproduce_table1

    device, settings = run_settings(args, synthetic=args.aics_root is None)
    reproduce_table1(args.aics_root, args.out, settings=settings, weights=args.weights,
                     device=device, precision=args.precision, random_state=args.random_state,
                     rows=args.rows, save_models=args.save_models, split=args.split)
    return 0
