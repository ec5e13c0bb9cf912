"""Accuracy, orientation invariance and interval coverage of SarcNet's training options.

A CPU run sized for a shared 2-core machine (what benchmarks/RESULTS.md records), in
parts that can run side by side and be resumed (finished runs are read back from
``--out`` and skipped):

    nice -n 10 python benchmarks/bench_accuracy.py --sizes 300 --out acc_300.csv
    nice -n 10 python benchmarks/bench_accuracy.py --sizes 1200 --backbones \
        --overhead-epochs 0 --out acc_1200.csv
    python benchmarks/bench_accuracy.py --summarize acc_300.csv acc_1200.csv

On synthetic AICS cells (``--synthetic-size`` px), for every training-set size
(``--sizes``) and seed (``--seeds``) it trains SarcNet (Protocol 2, ResNet-18)
twice, with the paper's recipe (``augment=None``) and with random D4
augmentation (``augment="d4"``), and scores each fitted model without and with
test-time averaging over D4 (prediction-only, so the same fitted model). Then,
at ``--backbone-size`` training cells and the first seed, it trains every other
backbone (``--backbones``) with D4 augmentation and scores it both ways.
A linear regression on the Protocol 2 features is the baseline of each size.
Each network keeps its best epoch on separate validation cells, is calibrated
for 90 % conformal intervals on separate calibration cells, and is scored on
separate test cells:

- ``spearman``, ``mae``: on the test cells;
- ``rotation_change``: mean absolute change of a test cell's score when its
  image file is turned by 90, 180 or 270 degrees or flipped (the file is
  turned, then read and resized as any file; the first ``--n-rotation`` test cells);
- ``coverage``, ``width``: share of test scores inside the 90 % interval and
  its mean width;
- ``s_per_epoch``: training seconds per epoch (validation included).

First (``--overhead-epochs`` > 0), the cost of augmentation in the training
batch path: the same network trained on the same cached images with and
without D4 augmentation, alternating, three times each; the median epoch
durations (skorch's, image decoding excluded) and their ratio are printed,
together with the time of one ``random_d4`` call on a training batch against
one optimizer step.

``--threads`` defaults to 1: on a machine shared with other jobs, two torch
threads that wait for each other ran 8x slower per epoch than one here.
AlexNet's pooling needs at least 63 px, so its rows use
``max(--image-size, 64)`` (the ``image_size`` column says which).
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

from sarcnet_sklearn import (
    PROTOCOL_2,
    SarcNetRegressor,
    calibrate,
    make_linear_baseline,
    make_sarcnet_pipeline,
    predict_interval,
)
from sarcnet_sklearn._batches import d4_transform, random_d4
from sarcnet_sklearn.datasets import load_aics, make_synthetic_aics
from sarcnet_sklearn.metrics import regression_report
from sarcnet_sklearn.nn import BACKBONES

TURNS = (1, 2, 3, 4)  # quarter, half and three-quarter turns, and a left-right flip
MIN_SIDE = {"alexnet": 64}
RUN_KEY = ["n_train", "seed", "backbone", "augment", "image_size", "epochs"]
COLUMNS = [*RUN_KEY, "model", "spearman", "mae", "rotation_change", "coverage", "width",
           "ms_per_test_cell", "s_per_epoch"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", "--train-sizes", dest="sizes", type=int, nargs="+",
                        default=[300, 1200])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, nargs="+", default=[12, 5],
                        help="epochs, one for all sizes or one per size of --sizes/--train-sizes "
                             "as listed in the default [300, 1200] (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--synthetic-size", type=int, default=64,
                        help="side of the synthetic cell images (default: %(default)s)")
    parser.add_argument("--n-valid", type=int, default=200)
    parser.add_argument("--n-calibration", type=int, default=300)
    parser.add_argument("--n-test", type=int, default=400)
    parser.add_argument("--n-rotation", type=int, default=50,
                        help="test cells whose turned copies are scored (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=40)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--no-grid", action="store_true",
                        help="skip the ResNet-18 grid and the linear rows (backbones only)")
    parser.add_argument("--backbones", nargs="*", default=list(BACKBONES),
                        help="backbones trained with D4 augmentation (none: skip)")
    parser.add_argument("--backbone-size", type=int, default=300,
                        help="training cells for the backbone rows (default: %(default)s)")
    parser.add_argument("--data", default="bench_accuracy_data",
                        help="folder for the synthetic cells (reused when it fits)")
    parser.add_argument("--out", default="bench_accuracy.csv",
                        help="per-run rows, appended as they finish; runs found there are skipped")
    parser.add_argument("--summarize", nargs="+", metavar="CSV",
                        help="only print the tables of these per-run CSV files")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--overhead-epochs", type=int, default=2,
                        help="epochs per timing of the augmentation overhead (0: skip)")
    return parser.parse_args(argv)


def epochs_for(args, n_train: int) -> int:
    if len(args.epochs) == 1:
        return args.epochs[0]
    sizes = args.sizes if len(args.sizes) == len(args.epochs) else [300, 1200]
    return args.epochs[sizes.index(n_train)] if n_train in sizes else args.epochs[0]


def synthetic_cells(args) -> pd.DataFrame:
    n_cells = max([*args.sizes, 1200]) + args.n_valid + args.n_calibration + args.n_test
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


def evaluate(model, test: pd.DataFrame, turned: list[pd.DataFrame]) -> dict:
    start = time.perf_counter()
    prediction, low, high = predict_interval(model, test, confidence=0.9)
    predict_seconds = time.perf_counter() - start
    score = test["score"].to_numpy()
    report = regression_report(score, prediction)
    n = len(turned[0])
    change = np.mean([np.abs(model.predict(cells) - prediction[:n]).mean() for cells in turned])
    return {
        "spearman": report["spearman"],
        "mae": report["mae"],
        "rotation_change": float(change),
        "coverage": float(np.mean((low <= score) & (score <= high))),
        "width": float(np.mean(high - low)),
        "ms_per_test_cell": 1000 * predict_seconds / len(test),
    }


def augmentation_overhead(args, cells: pd.DataFrame) -> None:
    """Print epoch durations with and without D4, and one random_d4 call against one step."""
    train_cells = cells.iloc[:min(args.sizes)]
    X = train_cells[["image_path", *PROTOCOL_2]]
    durations = {None: [], "d4": []}
    for _ in range(3):
        for augment in (None, "d4"):
            net = SarcNetRegressor(image_size=args.image_size, batch_size=args.batch_size,
                                   max_epochs=args.overhead_epochs + 1, train_split=None,
                                   augment=augment, test_time_augment=False,
                                   device=args.device, verbose=0, random_state=0)
            net.fit(X, train_cells["score"])
            durations[augment] += list(net.history[1:, "dur"])  # the first one warms up
    plain, augmented = np.median(durations[None]), np.median(durations["d4"])
    print(f"augmentation overhead, epoch of {len(train_cells)} cells at {args.image_size} px "
          f"(median of {len(durations[None])}): {plain:.2f} s without, {augmented:.2f} s with D4, "
          f"ratio {augmented / plain:.3f}", flush=True)

    batch = torch.randint(0, 256, (args.batch_size, 1, args.image_size, args.image_size),
                          dtype=torch.uint8, device=args.device)
    calls = {}
    for dtype in (torch.uint8, torch.float32):
        images = batch.to(dtype)
        random_d4(images)
        start = time.perf_counter()
        for _ in range(200):
            random_d4(images)
        calls[dtype] = (time.perf_counter() - start) / 200
    step = augmented / np.ceil(len(train_cells) / args.batch_size)
    print(f"one random_d4 call on a batch of {args.batch_size}: "
          f"{1e6 * calls[torch.uint8]:.0f} us (uint8), {1e6 * calls[torch.float32]:.0f} us "
          f"(float32); an augmented epoch's time per batch {1e3 * step:.1f} ms "
          f"(share {calls[torch.float32] / step:.4f})", flush=True)


def main(argv=None) -> pd.DataFrame | None:
    args = parse_args(argv)
    if args.summarize:
        return summarize(pd.concat([pd.read_csv(path) for path in args.summarize]))
    torch.set_num_threads(args.threads)
    cells = synthetic_cells(args)
    first = max([*args.sizes, 1200]) + args.n_valid
    valid = cells.iloc[first - args.n_valid:first]
    calibration = cells.iloc[first:first + args.n_calibration]
    test = cells.iloc[first + args.n_calibration:first + args.n_calibration + args.n_test]
    folder = Path(args.data)
    turned = [turned_copies(test.iloc[:args.n_rotation], folder / f"turned_{len(cells)}_{t}", t)
              for t in TURNS]
    print(f"{len(cells)} synthetic cells ({args.synthetic_size} px); model input "
          f"{args.image_size} px, epochs {args.epochs}, batch {args.batch_size}, lr {args.lr}; "
          f"validation {len(valid)}, calibration {len(calibration)}, test {len(test)}; "
          f"{args.device}, {torch.get_num_threads()} threads, {platform.machine()}", flush=True)
    if args.overhead_epochs:
        augmentation_overhead(args, cells)

    out = Path(args.out)
    done = pd.read_csv(out) if out.is_file() else pd.DataFrame(columns=RUN_KEY)
    done_keys = {tuple(str(v) for v in key) for key in done[RUN_KEY].itertuples(index=False)}

    def write(rows: list[dict]) -> None:
        for row in rows:
            print(", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in row.items()), flush=True)
        pd.DataFrame(rows, columns=COLUMNS).to_csv(out, mode="a", header=not out.is_file(),
                                                   index=False)
        done_keys.update(tuple(str(row[k]) for k in RUN_KEY) for row in rows)

    def run(n_train: int, seed: int, backbone: str, augment: str | None) -> None:
        image_size = max(args.image_size, MIN_SIDE.get(backbone, 0))
        epochs = epochs_for(args, n_train)
        key = {"n_train": n_train, "seed": seed, "backbone": backbone,
               "augment": str(augment), "image_size": image_size, "epochs": epochs}
        if tuple(str(v) for v in key.values()) in done_keys:
            return
        train_cells = cells.iloc[:n_train]
        model = make_sarcnet_pipeline(
            protocol=2, backbone=backbone, image_size=image_size, max_epochs=epochs,
            batch_size=args.batch_size, lr=args.lr, random_state=seed, device=args.device,
            augment=augment, test_time_augment=False, verbose=0,
        )
        start = time.perf_counter()
        model.fit(train_cells, train_cells["score"], validation_data=(valid, valid["score"]))
        s_per_epoch = (time.perf_counter() - start) / len(model[-1].history_)
        rows = []
        for tta in (False, True):
            model[-1].set_params(test_time_augment=tta)
            calibrate(model, calibration, calibration["score"])
            name = ("d4" if augment else "paper") + ("+tta" if tta else "")
            rows.append({**key, "model": name, **evaluate(model, test, turned),
                         "s_per_epoch": s_per_epoch})
        write(rows)

    for n_train in [] if args.no_grid else args.sizes:
        key = {"n_train": n_train, "seed": 0, "backbone": "linear", "augment": "None",
               "image_size": 0, "epochs": 0}
        if tuple(str(v) for v in key.values()) not in done_keys:
            train_cells = cells.iloc[:n_train]
            model = make_linear_baseline(2).fit(train_cells, train_cells["score"])
            report = regression_report(test["score"].to_numpy(), model.predict(test))
            write([{**key, "model": "linear", "spearman": report["spearman"],
                    "mae": report["mae"]}])
        for seed in args.seeds:
            for augment in (None, "d4"):
                run(n_train, seed, "resnet18", augment)
    for backbone in args.backbones:
        run(args.backbone_size, args.seeds[0], backbone, "d4")
    if out.is_file():  # nothing to summarize after only the overhead timing
        summarize(pd.read_csv(out))


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Print mean (std over seeds) per setting, and the paired differences to the paper recipe."""
    pd.set_option("display.width", 250)
    metrics = ["spearman", "mae", "rotation_change", "coverage", "width", "s_per_epoch",
               "ms_per_test_cell"]
    grid = table[table["backbone"].isin(["resnet18", "linear"])]
    summary = (grid.groupby(["n_train", "backbone", "image_size", "epochs", "model"], sort=False)
               [metrics].agg(["mean", "std"]))
    summary.insert(0, ("seeds", "n"), grid.groupby(["n_train", "backbone", "image_size", "epochs",
                                             "model"], sort=False).size())
    print("\nResNet-18 SarcNet (Protocol 2), mean and std over seeds:")
    print(summary.round(3).to_string())

    nets = grid[grid["backbone"] == "resnet18"]
    paper = nets[nets["model"] == "paper"].set_index(["n_train", "seed"])
    print("\nDifference to the paper recipe, same size and seed (mean [min, max] over seeds):")
    for name in ("paper+tta", "d4", "d4+tta"):
        other = nets[nets["model"] == name].set_index(["n_train", "seed"])
        for n_train in sorted(other.index.get_level_values(0).unique()):
            diff = (other.loc[n_train, ["spearman", "mae"]]
                    - paper.loc[n_train, ["spearman", "mae"]]).dropna()
            if len(diff):
                print(f"  {name:9s} n_train {n_train:5d}: "
                      + ", ".join(f"{m} {diff[m].mean():+.3f} [{diff[m].min():+.3f}, "
                                  f"{diff[m].max():+.3f}]" for m in ("spearman", "mae"))
                      + f" ({len(diff)} seeds)")

    others = table[~table["backbone"].isin(["resnet18", "linear"])]
    if len(others):
        n_train, seed = others["n_train"].iloc[0], others["seed"].iloc[0]
        rows = table[(table["backbone"] != "linear") & (table["augment"] == "d4")
                     & (table["n_train"] == n_train) & (table["seed"] == seed)]
        print(f"\nBackbones (D4 augmentation, {n_train} training cells, seed {seed}):")
        print(rows[["backbone", "image_size", "epochs", "model", *metrics]]
              .round(3).to_string(index=False))
    return table


if __name__ == "__main__":
    main()
