"""The ``sarcnet-sklearn tune`` subcommand: an Optuna study from the shell."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from .._columns import GROUP_COLUMNS, TARGET_COLUMN
from .._recipe import BACKBONES, DEFAULT_BACKBONE, MAX_EPOCHS
from ._options import add_overwrite_option, model_format, positive

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ..tuning import TuningResult

MODEL_SEED = 0
"""Seed of every trial's (and the refit's) training, so the refit repeats the best trial."""

EPILOG = """\
Resume an interrupted study by running the same command again. Parallel workers
(one per GPU, on one machine or several) share a study through the same
--storage and --study-name; create the study once first, for example:
  optuna create-study --storage sqlite:///tune.db --study-name sarcnet --direction maximize
  CUDA_VISIBLE_DEVICES=0 sarcnet-sklearn tune cells.csv --storage sqlite:///tune.db \\
      --study-name sarcnet --n-trials 100 &
  CUDA_VISIBLE_DEVICES=1 sarcnet-sklearn tune cells.csv --storage sqlite:///tune.db \\
      --study-name sarcnet --n-trials 100 &
  wait
then refit the best pipeline once (no new trial is run):
  sarcnet-sklearn tune cells.csv --storage sqlite:///tune.db --study-name sarcnet \\
      --n-trials 100 --out best.joblib
"""


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """Register ``tune`` on the ``sarcnet-sklearn`` subparsers.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> _ = add_subcommand(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["tune", "cells.csv", "--n-trials", "20", "--cv", "3"])
    >>> args.n_trials, args.cv, args.validation_fraction
    (20, 3, None)
    """
    parser = subparsers.add_parser(
        "tune",
        help="tune SarcNet's hyperparameters with Optuna (pruned, resumable, parallel)",
        description=(
            "Run (or join, or resume) an Optuna study over SarcNet's hyperparameters "
            "(protocol, learning rate, weight decay, batch size, early-stopping patience, "
            "image size, head activation, and backbone weights with --imagenet), maximising "
            "the validation Spearman correlation, with per-epoch pruning. Trials train on "
            "the GPU when present. Prints the best trial; with --out, refits the best "
            "pipeline and saves it as 'train' does (a .joblib file, or the safe format for a "
            ".zip; on the training cells with the best epoch chosen on the validation cells, "
            "or with --cv on all cells)."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "data", metavar="DATA",
        help=f"AICS dataset root or CSV of cells (image_path, feature columns, {TARGET_COLUMN!r})",
    )
    parser.add_argument(
        "--storage", metavar="URL",
        help="study storage: database URL (sqlite:///tune.db, postgresql://...), redis://... "
             "or a journal file path (default: in memory, lost at exit)",
    )
    parser.add_argument("--study-name", default="sarcnet", help="default: %(default)s")
    parser.add_argument(
        "--n-trials", type=positive, metavar="N",
        help="size of the study: trials completed or pruned by all workers together",
    )
    parser.add_argument(
        "--timeout", type=float, metavar="S", help="stop this worker after S seconds"
    )
    parser.add_argument(
        "--out", metavar="MODEL",
        help="refit the best pipeline and save it here (.joblib, or .zip for the safe format)",
    )
    add_overwrite_option(parser)
    split = parser.add_mutually_exclusive_group()
    split.add_argument(
        "--validation-fraction", type=float, metavar="F",
        help="score trials on a random fraction F of the cells, the same in every worker "
             "(default: 0.2)",
    )
    split.add_argument(
        "--cv", type=positive, metavar="K", help="score trials by K-fold cross-validation"
    )
    parser.add_argument(
        "--group-by", choices=GROUP_COLUMNS, metavar="COLUMN",
        help="keep the cells of each field (well, plate) on one side of every split "
             f"(one of {', '.join(GROUP_COLUMNS)}; default: cells split at random)",
    )
    parser.add_argument(
        "--image-sizes", type=positive, nargs="+", default=[128, 224], metavar="PX",
        help="image sizes to try (default: %(default)s)",
    )
    parser.add_argument(
        "--protocols", type=int, nargs="+", choices=[1, 2], default=[1, 2],
        help="feature protocols to try (default: %(default)s; 1 for a Protocol 1 table)",
    )
    parser.add_argument(
        "--imagenet", action="store_true",
        help="also try ImageNet backbone weights (they must be downloadable or cached)",
    )
    parser.add_argument(
        "--backbones", nargs="+", choices=BACKBONES, default=[DEFAULT_BACKBONE],
        help="image branches to try (default: %(default)s)",
    )
    parser.add_argument(
        "--max-epochs", type=positive, default=MAX_EPOCHS,
        help="epochs per trial at most (default: %(default)s)"
    )
    parser.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    parser.add_argument(
        "--seed", type=int, help="sampler seed (give each worker its own, or none)"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-trial log, no progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the study described by ``args``; returns the exit code."""
    import numpy as np
    import optuna
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    from ..datasets import cell_groups
    from ..deploy import save_model
    from ..deploy._model_file import check_model_output
    from ..deploy._settings import check_training_settings
    from ..outputs import check_output
    from ..pipeline import make_sarcnet_pipeline
    from ..tables import load_cells
    from ..tuning import default_search_space, tune

    if args.validation_fraction is not None and not 0 < args.validation_fraction < 1:
        raise ValueError(f"--validation-fraction must be in (0, 1), got {args.validation_fraction}")
    out = Path(args.out) if args.out else None
    file_format = None if out is None else model_format(out, None)
    if out is not None:
        check_output(out, inputs=[args.data])
    for size in args.image_sizes:
        check_training_settings(image_size=size, batch_size=1)
    cells = load_cells(args.data)
    if out is not None and "image_path" in cells:
        check_output(out, inputs=cells["image_path"].dropna().tolist())
    if out is not None:
        check_model_output(out, overwrite=args.overwrite)  # an input is named as one first
    scores = _scores(cells, args.data)

    groups = None if args.group_by is None else cell_groups(cells, args.group_by)
    split: dict[str, object] = {"cv": args.cv, "groups": groups}
    if args.cv is None:
        fraction = args.validation_fraction or 0.2
        if groups is None:
            train, valid = train_test_split(
                np.arange(len(cells)), test_size=fraction, random_state=0
            )
        else:
            splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=0)
            train, valid = next(splitter.split(cells, scores, groups))
        split = {"validation_data": (cells.iloc[valid], scores[valid])}
        cells, scores = cells.iloc[train], scores[train]
    if args.quiet:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    pipeline = make_sarcnet_pipeline(
        max_epochs=args.max_epochs, verbose=0, random_state=MODEL_SEED,
        **({"device": args.device} if args.device else {}),
    )
    try:
        result = tune(
            cells, scores,
            pipeline=pipeline,
            search_space=partial(
                default_search_space, image_sizes=args.image_sizes, protocols=args.protocols,
                imagenet=args.imagenet, backbones=args.backbones,
            ),
            n_trials=args.n_trials,
            timeout=args.timeout,
            storage=args.storage,
            study_name=args.study_name,
            refit=out is not None,
            random_state=args.seed,
            progress=not args.quiet,
            **split,
        )
    except KeyboardInterrupt as exc:
        resume = "run the same command again to resume" if args.storage else (
            "the study was in memory and is lost; use --storage to be able to resume"
        )
        print(f"sarcnet-sklearn tune: {exc or 'interrupted'}; {resume}", file=sys.stderr)
        return 130
    _print_summary(result)
    if result.best_params is None:
        return 1
    if out is not None:
        best = result.study.best_trial
        tuning = {"study": result.study.study_name, "trial": best.number,
                  "validation_spearman": best.value, "params": best.params}
        save_model(result.best_pipeline, out, metadata={"tuning": tuning}, format=file_format)
        print(f"best pipeline refitted and saved to {out.resolve()} ({file_format} format; "
              "load with sarcnet_sklearn.load_model)")
    return 0


def _scores(cells: pd.DataFrame, source: str) -> np.ndarray:
    import numpy as np
    import pandas as pd

    if TARGET_COLUMN not in cells.columns:
        raise ValueError(
            f"{source}: no {TARGET_COLUMN!r} column to tune on (columns: {list(cells.columns)})"
        )
    scores = pd.to_numeric(cells[TARGET_COLUMN], errors="coerce")
    missing = scores.isna().to_numpy()
    if missing.any():
        rows = list(cells.index[missing][:5])
        raise ValueError(
            f"{source}: {int(missing.sum())} cell(s) without a numeric {TARGET_COLUMN!r}, "
            f"rows {rows}{' ...' if missing.sum() > 5 else ''}"
        )
    return scores.to_numpy(dtype=np.float64)


def _print_summary(result: TuningResult) -> None:
    from optuna.trial import TrialState

    study = result.study
    counts = {state: 0 for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    for trial in study.get_trials(deepcopy=False):
        if trial.state in counts:
            counts[trial.state] += 1
    print(
        f"study {study.study_name!r}: {counts[TrialState.COMPLETE]} trials completed, "
        f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed"
    )
    if result.best_params is None:
        print("no trial has completed yet: no best trial")
        return
    best = study.best_trial
    print(f"best trial: #{best.number}, validation Spearman {best.value:.4f}")
    for name, value in sorted(best.params.items()):
        print(f"  {name}: {value}")
    print("pipeline parameters: " + ", ".join(f"{k}={v!r}" for k, v in result.best_params.items()))
