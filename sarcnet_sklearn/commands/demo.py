"""The ``sarcnet-sklearn demo`` subcommand."""

from __future__ import annotations

import argparse

from ..demo import DemoSettings, run_demo
from ..regressor import DEFAULT_DEVICE


def add_subcommand(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="fit the linear baseline and SarcNet on synthetic cells and compare them",
        description=(
            "Generate a synthetic dataset in the AICS layout, fit the linear baseline and "
            "SarcNet (Protocol 2), print Spearman/MAE/MSE/R^2 on the test split and save the "
            "fitted SarcNet pipeline (joblib model file, as 'train' writes). On a CPU the run "
            "is reduced (small images, few epochs) to take a few minutes; on a GPU it uses the "
            "paper's settings."
        ),
    )
    parser.add_argument("--out", default="sarcnet_demo_output", help="output folder")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: GPU when present")
    parser.add_argument("--n-cells", type=int, help="number of synthetic cells")
    parser.add_argument("--image-size", type=int, help="model input size in pixels")
    parser.add_argument("--epochs", type=int, help="training epochs")
    parser.add_argument("--random-state", type=int, default=0)
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    device = args.device or DEFAULT_DEVICE
    defaults = DemoSettings.for_device(device)
    settings = DemoSettings(
        n_cells=args.n_cells or defaults.n_cells,
        synthetic_size=max(defaults.synthetic_size, args.image_size or 0),
        image_size=args.image_size or defaults.image_size,
        max_epochs=args.epochs or defaults.max_epochs,
    )
    run_demo(args.out, settings=settings, device=device, random_state=args.random_state)
    return 0
