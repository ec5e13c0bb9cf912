"""``train``'s fine-tuning options: --init-from, --freeze-image-epochs, --cv."""

from __future__ import annotations

import argparse

from ._options import positive


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the fine-tuning options to ``train``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_finetune_arguments(parser)
    >>> args = parser.parse_args(["--init-from", "aics.zip", "--freeze-image-epochs", "2"])
    >>> finetune_options(args)
    {'init_from': 'aics.zip', 'freeze_image_epochs': 2, 'cv': 5}
    """
    parser.add_argument(
        "--init-from", metavar="MODEL",
        help="fine-tune: start from this model file's weights (keeping its protocol, image "
             "size, score range and pixel size; the feature scaling is refitted), or from "
             "torchvision's ImageNet weights ('imagenet' or a .pth file)",
    )
    parser.add_argument("--freeze-image-epochs", type=int, default=0, metavar="N",
                        help="train only the feature branch and head for the first N epochs "
                             "(default: %(default)s)")
    parser.add_argument(
        "--cv", type=positive, metavar="K",
        help="report the agreement with your scores of models trained on K folds of the "
             "cells (Spearman with a 95 %% bootstrap interval, folds grouped by the 'field' "
             "column when present; default: 5 with --init-from, else none; 1: none)",
    )


def finetune_options(args: argparse.Namespace) -> dict:
    """``train_model``'s keyword arguments for the fine-tuning options."""
    if args.freeze_image_epochs < 0:
        raise ValueError(f"--freeze-image-epochs must be 0 or more, got {args.freeze_image_epochs}")
    cv = args.cv if args.cv is not None else (5 if args.init_from else 0)
    return {"init_from": args.init_from, "freeze_image_epochs": args.freeze_image_epochs,
            "cv": 0 if cv == 1 else cv}


def print_agreement(metadata: dict) -> None:
    """Print the cross-validated agreement ``train_model`` measured, if any."""
    agreement = metadata.get("agreement")
    if not agreement:
        return
    grouped = (f", folds grouped by {agreement['grouped_by']} ({agreement['n_groups']} fields)"
               if agreement["grouped_by"] else "")
    print(f"agreement with your scores ({agreement['n_folds']}-fold cross-validation on "
          f"{agreement['n_cells']} cells{grouped}): Spearman {agreement['spearman']:.3f} "
          f"(95 % interval {agreement['ci_low']:.3f} to {agreement['ci_high']:.3f})")
