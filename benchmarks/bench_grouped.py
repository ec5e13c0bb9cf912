"""A split by cell against a split by field of view, on synthetic fields that behave like real ones.

Cells of one field are alike (the synthetic data are calibrated to the real labels' ICC(1)
of 0.25 by field), so a test cell whose field-mates were trained on can look easier than a
cell of a new field. For each seed (``--seeds``) a synthetic AICS dataset of ``--n-cells``
cells is written, split as the paper does by cell and by field
(:func:`~sarcnet_sklearn.datasets.paper_split` ``by="field"``, same seed), and two models
are fitted on each split: the linear baseline (Protocol 2 features) and a tiny SarcNet
(Protocol 2, ``--image-size`` px, ``--epochs`` epochs, best epoch on the validation cells).
Printed: test Spearman, MAE and R^2 per seed, then mean and standard deviation over seeds;
for SarcNet both its raw output (``sarcnet_raw``, the paper's) and its output through the
validation calibration (``sarcnet``, ``calibrate_scores=True``, the default).

    nice -n 10 python benchmarks/bench_grouped.py --seeds 0 1 2 --out grouped.csv
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sarcnet_sklearn import make_linear_baseline, make_sarcnet_pipeline, regression_report
from sarcnet_sklearn.datasets import load_aics, make_synthetic_aics, paper_split
from sarcnet_sklearn.screens import field_icc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-cells", type=int, default=600)
    parser.add_argument("--synthetic-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="grouped.csv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    out = Path(args.out)
    done = pd.read_csv(out) if out.is_file() else pd.DataFrame()
    records = done.to_dict("records")
    for seed in args.seeds:
        if len(done) and (done["seed"] == seed).any():
            continue
        with tempfile.TemporaryDirectory() as folder:
            root = make_synthetic_aics(Path(folder) / "aics", n_cells=args.n_cells,
                                       image_size=args.synthetic_size, random_state=seed)
            cells = load_aics(root)
            icc = field_icc(cells["score"], cells["field"])
            print(f"seed {seed}: {len(cells)} cells in {cells['field'].nunique()} fields, "
                  f"ICC(1) of the score by field {icc:.3f}")
            for by in ("cell", "field"):
                train, valid, test = paper_split(cells, random_state=seed, by=by)
                start = time.perf_counter()
                linear = make_linear_baseline(2).fit(train, train["score"])
                records.append(_record(seed, by, "linear", test, linear.predict(test), start))
                start = time.perf_counter()
                net = make_sarcnet_pipeline(
                    2, image_size=args.image_size, max_epochs=args.epochs, batch_size=32,
                    lr=1e-3, random_state=seed, verbose=0, device="cpu", augment=None,
                    test_time_augment=False,
                ).fit(train, train["score"], validation_data=(valid, valid["score"]))
                raw = _raw_prediction(net, test)
                records.append(_record(seed, by, "sarcnet_raw", test, raw, start))
                calibrated = net.predict(test)
                if not np.allclose(calibrated, raw):
                    records.append(_record(seed, by, "sarcnet", test, calibrated, start))
                for record in records[-3:]:
                    if record["seed"] == seed and record["split"] == by:
                        print(f"  {by:5s} {record['model']:12s} Spearman {record['spearman']:.3f}"
                              f"  MAE {record['mae']:.3f}  R2 {record['r2']:.3f}")
        pd.DataFrame.from_records(records).to_csv(out, index=False)
    table = pd.DataFrame.from_records(records)
    summary = table.groupby(["model", "split"])[["spearman", "mae", "r2"]].agg(["mean", "std"])
    print(f"\nover seeds {sorted(table['seed'].unique())}:")
    print(summary.round(3).to_string())


def _raw_prediction(pipeline, cells) -> np.ndarray:
    """The network's own output, without the validation calibration (the paper's)."""
    pipeline.regressor.set_params(calibrate_scores=False)
    try:
        return np.asarray(pipeline.predict(cells), dtype=float)
    finally:
        pipeline.regressor.set_params(calibrate_scores=True)


def _record(seed, by, model, test, prediction, start) -> dict:
    return {"seed": seed, "split": by, "model": model, "n_test": len(test),
            **regression_report(test["score"], prediction),
            "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    main()
