"""Accuracy, orientation invariance and interval coverage of SarcNet's training options.

Run the full grid (a GPU, or a long CPU night):
    python benchmarks/bench_accuracy.py
A reduced CPU run (what benchmarks/RESULTS.md records):
    python benchmarks/bench_accuracy.py --train-sizes 300 --seeds 0 1 2 --epochs 6 \
        --image-size 48 --backbone-size 300

On synthetic AICS cells, for every training-set size and seed it trains SarcNet
(Protocol 2) twice, with the paper's recipe (no augmentation) and with random
D4 augmentation (``augment="d4"``), and scores each with and without test-time
averaging over D4; then, at one size and seed, it trains every backbone with
the package's defaults. Each model keeps its best epoch on separate
validation cells, is calibrated for 90 % conformal intervals on separate
calibration cells, and is scored on separate test cells:

- ``spearman``, ``mae``: on the test cells;
- ``rotation_change``: mean absolute change of a test cell's score when its
  image file is turned by 90, 180 or 270 degrees or flipped (the file is
  turned, then read and resized as any file; the first ``--n-rotation`` test cells);
- ``coverage``, ``width``: share of test scores inside the 90 % interval and
  its mean width;
- ``s_per_epoch``: training seconds per epoch (validation included).

First, the cost of augmentation: the same network trained for
``--overhead-epochs`` epochs on the image cache with and without D4
augmentation, alternating, three times each (skorch's epoch durations, image
decoding excluded); the median ratio is printed.

Prints one table and writes it as CSV (``--out``).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
import torch

from sarcnet_sklearn import calibrate, make_sarcnet_pipeline, predict_interval
from sarcnet_sklearn._batches import d4_transform
from sarcnet_sklearn.datasets import load_aics, make_synthetic_aics
from sarcnet_sklearn.metrics import regression_report
from sarcnet_sklearn.nn import BACKBONES

TURNS = (1, 2, 3, 4)  # quarter, half and three-quarter turns, and a left-right flip


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-sizes", type=int, nargs="+", default=[300, 1200])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--synthetic-size", type=int, default=96,
                        help="side of the synthetic cell images (default: %(default)s)")
    parser.add_argument("--n-valid", type=int, default=200)
    parser.add_argument("--n-calibration", type=int, default=300)
    parser.add_argument("--n-test", type=int, default=400)
    parser.add_argument("--n-rotation", type=int, default=None,
                        help="test cells whose turned copies are scored (default: all)")
    parser.add_argument("--batch-size", type=int, default=40)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--backbones", nargs="*", default=list(BACKBONES),
                        help="backbones trained with the defaults (none: skip)")
    parser.add_argument("--backbone-size", type=int, default=None,
                        help="training cells for the backbone rows (default: smallest size)")
    parser.add_argument("--data", default="bench_accuracy_data",
                        help="folder for the synthetic cells (reused when it fits)")
    parser.add_argument("--out", default="bench_accuracy.csv")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--overhead-epochs", type=int, default=2,
                        help="epochs per timing of the augmentation overhead (0: skip)")
    return parser.parse_args(argv)


def synthetic_cells(args) -> pd.DataFrame:
    n_cells = max(args.train_sizes) + args.n_valid + args.n_calibration + args.n_test
    root = Path(args.data) / f"cells_{n_cells}_{args.synthetic_size}"
    if not root.is_dir():
        make_synthetic_aics(root, n_cells=n_cells, image_size=args.synthetic_size,
                            random_state=0, n_jobs=-1)
    return load_aics(root).sample(frac=1.0, random_state=0).reset_index(drop=True)


def turned_copies(cells: pd.DataFrame, folder: Path, t: int) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    turned = cells.copy()
    paths = []
    for path in cells["image_path"]:
        target = folder / Path(path).name
        if not target.is_file():
            pages = torch.from_numpy(tifffile.imread(path))
            tifffile.imwrite(target, d4_transform(pages, t).numpy().copy())
        paths.append(str(target))
    turned["image_path"] = paths
    return turned


def evaluate(model, name: str, test: pd.DataFrame, turned: list[pd.DataFrame]) -> dict:
    prediction, low, high = predict_interval(model, test, confidence=0.9)
    score = test["score"].to_numpy()
    report = regression_report(score, prediction)
    n = len(turned[0])
    change = np.mean([np.abs(model.predict(cells) - prediction[:n]).mean() for cells in turned])
    return {
        "model": name,
        "spearman": report["spearman"],
        "mae": report["mae"],
        "rotation_change": float(change),
        "coverage": float(np.mean((low <= score) & (score <= high))),
        "width": float(np.mean(high - low)),
    }


def train(args, cells, n_train: int, seed: int, **params):
    parts = np.cumsum([n_train, args.n_valid, args.n_calibration])
    train_cells = cells.iloc[:parts[0]]
    valid = cells.iloc[max(args.train_sizes):max(args.train_sizes) + args.n_valid]
    model = make_sarcnet_pipeline(
        protocol=2, image_size=args.image_size, max_epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, random_state=seed, device=args.device,
        verbose=0, **params,
    )
    start = time.perf_counter()
    model.fit(train_cells, train_cells["score"], validation_data=(valid, valid["score"]))
    seconds = time.perf_counter() - start
    epochs = len(model[-1].history_)
    return model, seconds / epochs


def augmentation_overhead(args, cells: pd.DataFrame) -> float:
    """Median ratio of an epoch's duration with D4 augmentation to one without."""
    from sarcnet_sklearn import PROTOCOL_2, SarcNetRegressor

    train_cells = cells.iloc[:min(args.train_sizes)]
    X = train_cells[["image_path", *PROTOCOL_2]]
    durations = {None: [], "d4": []}
    for _ in range(3):
        for augment in (None, "d4"):
            net = SarcNetRegressor(image_size=args.image_size, batch_size=args.batch_size,
                                   max_epochs=args.overhead_epochs + 1, train_split=None,
                                   augment=augment, device=args.device, verbose=0,
                                   random_state=0)
            net.fit(X, train_cells["score"])
            durations[augment] += list(net.history[1:, "dur"])  # the first one warms up
    plain, augmented = np.median(durations[None]), np.median(durations["d4"])
    print(f"epoch of {len(train_cells)} cells: {plain:.2f} s without augmentation, "
          f"{augmented:.2f} s with D4 (ratio {augmented / plain:.3f})", flush=True)
    return augmented / plain


def main(argv=None) -> pd.DataFrame:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cells = synthetic_cells(args)
    first = max(args.train_sizes) + args.n_valid
    calibration = cells.iloc[first:first + args.n_calibration]
    test = cells.iloc[first + args.n_calibration:first + args.n_calibration + args.n_test]
    folder = Path(args.data)
    turned = [turned_copies(test.iloc[:args.n_rotation], folder / f"turned_{len(cells)}_{t}", t)
              for t in TURNS]
    print(f"{len(cells)} synthetic cells ({args.synthetic_size} px); model input "
          f"{args.image_size} px, {args.epochs} epochs, batch {args.batch_size}; validation "
          f"{args.n_valid}, calibration {args.n_calibration}, test {args.n_test}; "
          f"{args.device}, {torch.get_num_threads()} threads, {platform.machine()}")
    if args.overhead_epochs:
        augmentation_overhead(args, cells)
    rows = []

    def record(model, name, n_train, seed, backbone, s_per_epoch):
        calibrate(model, calibration, calibration["score"])
        row = {"n_train": n_train, "seed": seed, "backbone": backbone,
               **evaluate(model, name, test, turned), "s_per_epoch": s_per_epoch}
        rows.append(row)
        print(", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in row.items()), flush=True)

    for n_train in args.train_sizes:
        for seed in args.seeds:
            for augment in (None, "d4"):
                model, s_per_epoch = train(args, cells, n_train, seed, augment=augment,
                                           test_time_augment=False)
                for tta in (False, True):
                    model[-1].set_params(test_time_augment=tta)
                    name = ("d4" if augment else "paper") + ("+tta" if tta else "")
                    record(model, name, n_train, seed, "resnet18", s_per_epoch)
    n_backbone = args.backbone_size or min(args.train_sizes)
    for backbone in args.backbones:
        model, s_per_epoch = train(args, cells, n_backbone, args.seeds[0], backbone=backbone)
        record(model, "d4+tta", n_backbone, args.seeds[0], backbone, s_per_epoch)

    table = pd.DataFrame(rows)
    table.to_csv(args.out, index=False)
    summary = (table.groupby(["n_train", "backbone", "model"], sort=False)
               .agg(["mean", "std"]).drop(columns="seed"))
    pd.set_option("display.width", 200)
    print()
    print(summary.round(3).to_string())
    print(f"\nper-run rows written to {Path(args.out).resolve()}")
    return table


if __name__ == "__main__":
    main()
