"""Grid search over the SarcNet pipeline with scikit-learn's GridSearchCV.

Tries both feature protocols and two learning rates, scoring each by the
Spearman correlation over cross-validation folds (``spearman_scorer``), on
synthetic cells. The defaults take a few minutes on a CPU; scale up with the
flags. For larger searches, with pruning and parallel workers, see
``tune_with_optuna.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from sklearn.model_selection import GridSearchCV, KFold

from sarcnet_sklearn import make_sarcnet_pipeline, regression_report, spearman_scorer
from sarcnet_sklearn.datasets import load_aics, make_synthetic_aics, paper_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="grid_search_output", help="output folder")
    parser.add_argument("--n-cells", type=int, default=300, help="synthetic cells")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--lr", type=float, nargs="+", default=[5e-4, 2e-3])
    args = parser.parse_args()

    root = make_synthetic_aics(Path(args.out) / "synthetic_aics", n_cells=args.n_cells,
                               image_size=max(64, args.image_size), random_state=0)
    train, _, test = paper_split(load_aics(root))
    search = GridSearchCV(
        make_sarcnet_pipeline(image_size=args.image_size, max_epochs=args.epochs, verbose=0,
                              random_state=0),
        {"select__protocol": [1, 2], "model__lr": args.lr},
        scoring=spearman_scorer,
        cv=KFold(args.folds, shuffle=True, random_state=0),
        verbose=1,
    )
    search.fit(train, train["score"])

    results = pd.DataFrame(search.cv_results_)
    columns = ["param_select__protocol", "param_model__lr", "mean_test_score", "std_test_score"]
    print(results[columns].sort_values("mean_test_score", ascending=False).to_string(index=False))
    print(f"best: {search.best_params_} (cross-validated Spearman {search.best_score_:.3f})")
    report = regression_report(test["score"], search.best_estimator_.predict(test))
    print("test split of the refitted best pipeline:",
          ", ".join(f"{name} {value:.3f}" for name, value in report.items()))


if __name__ == "__main__":
    main()
