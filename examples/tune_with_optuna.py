"""Tune SarcNet's hyperparameters with Optuna on synthetic cells.

Generates a small synthetic dataset in the AICS layout, splits it as the paper
does, runs an Optuna study (per-epoch pruning on the validation Spearman) over
the default search space, refits the best pipeline and scores it on the test
split. The defaults take a few minutes on a CPU; scale up with the flags, e.g.
on a GPU::

    python examples/tune_with_optuna.py --n-cells 3000 --image-sizes 128 224 \\
        --epochs 50 --n-trials 50 --storage sqlite:///tune.db --study-name sarcnet

With ``--storage`` the study survives a crash: run the same command again to
resume it, or start it in several terminals (one per GPU, with
``CUDA_VISIBLE_DEVICES``) to share the trials; the study stops at
``--n-trials`` trials in all.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from sarcnet_sklearn import make_sarcnet_pipeline, regression_report
from sarcnet_sklearn.datasets import load_aics, make_synthetic_aics, paper_split
from sarcnet_sklearn.tuning import default_search_space, tune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tune_example_output", help="output folder")
    parser.add_argument("--n-cells", type=int, default=300, help="synthetic cells")
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[32],
                        help="image sizes to try")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial at most")
    parser.add_argument("--n-trials", type=int, default=4, help="trials in the study")
    parser.add_argument("--storage", help="e.g. sqlite:///tune.db (default: in memory)")
    parser.add_argument("--study-name", default="sarcnet-example")
    args = parser.parse_args()

    root = make_synthetic_aics(Path(args.out) / "synthetic_aics", n_cells=args.n_cells,
                               image_size=max(64, *args.image_sizes), random_state=0)
    train, valid, test = paper_split(load_aics(root))
    print(f"{len(train)} train / {len(valid)} validation / {len(test)} test cells")

    result = tune(
        train, train["score"],
        validation_data=(valid, valid["score"]),
        pipeline=make_sarcnet_pipeline(max_epochs=args.epochs, verbose=0, random_state=0),
        search_space=partial(default_search_space, image_sizes=args.image_sizes),
        n_trials=args.n_trials,
        storage=args.storage,
        study_name=args.study_name,
        progress=True,
    )
    study = result.study
    print(study.trials_dataframe(attrs=("number", "value", "params", "state")).to_string())
    print(f"best trial #{study.best_trial.number}: validation Spearman {result.best_score:.3f}")
    print("best pipeline parameters:", result.best_params)
    report = regression_report(test["score"], result.best_pipeline.predict(test))
    print("test split of the refitted best pipeline:",
          ", ".join(f"{name} {value:.3f}" for name, value in report.items()))


if __name__ == "__main__":
    main()
