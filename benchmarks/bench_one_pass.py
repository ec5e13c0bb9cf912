"""One forward pass as good as eight: canonical pose (or a consistency term) vs test-time averaging.

At the CPU demo's settings (1,200 synthetic cells of 112 px, the paper's split, 64 px model
input, 15 epochs, Protocol 2), for each seed it trains SarcNet once per ``--variants``:
``d4``, today's default (D4 augmentation), scored on the test split with one pass and with
the eight-pass average; ``canonical`` (``canonical_orientation=True``: every image in its
canonical pose among its 8 flips and quarter turns, in training and prediction), scored
with its one pass; ``consistency``, D4 plus the consistency term (``--consistency``), one
and eight passes:

- ``spearman``, ``mae``: on the test cells;
- ``rotation_change``: mean absolute change of a test cell's score when its image file is
  turned by 90, 180 or 270 degrees or flipped (the first ``--n-rotation`` test cells);
- ``s_per_epoch``: training seconds per epoch (skorch's epoch durations, validation included);
- ``predict_cells_per_s``: test cells scored per second.

    nice python benchmarks/bench_one_pass.py --seeds 0 1 2 --out one_pass.csv

Runs found in ``--out`` are skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from bench_accuracy import TURNS, turned_copies

from sarcnet_sklearn import make_sarcnet_pipeline
from sarcnet_sklearn.datasets import load_aics, make_synthetic_aics, paper_split
from sarcnet_sklearn.metrics import regression_report
from sarcnet_sklearn.reproduce import ReproduceSettings


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["d4", "canonical"],
                        choices=["d4", "consistency", "canonical"],
                        help="d4: today's training (D4 augmentation, scored with 1 and 8 passes); "
                             "consistency: plus the consistency term; canonical: canonical pose")
    parser.add_argument("--consistency", type=float, default=1.0)
    parser.add_argument("--n-rotation", type=int, default=60)
    parser.add_argument("--data", default="bench_one_pass_data")
    parser.add_argument("--out", default="bench_one_pass.csv")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--summarize", action="store_true", help="only print the summary")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    if not args.summarize:
        run_all(args, out)
    summarize(pd.read_csv(out))


def run_all(args, out: Path) -> None:
    torch.set_num_threads(args.threads)
    demo = ReproduceSettings.for_device("cpu", synthetic=True)
    root = Path(args.data) / f"cells_{demo.n_cells}_{demo.synthetic_size}"
    if not root.is_dir():
        make_synthetic_aics(root, n_cells=demo.n_cells, image_size=demo.synthetic_size,
                            random_state=0)
    train, valid, test = paper_split(load_aics(root))
    rotation = test.iloc[:args.n_rotation]
    turned = [turned_copies(rotation, Path(args.data) / f"turned_{t}", t) for t in TURNS]
    print(f"train {len(train)}, valid {len(valid)}, test {len(test)} cells; {demo.image_size} px, "
          f"{demo.max_epochs} epochs; {torch.get_num_threads()} threads, {platform.machine()}",
          flush=True)
    done = pd.read_csv(out) if out.is_file() else pd.DataFrame(columns=["seed", "training"])
    for seed in args.seeds:
        for training in args.variants:
            if ((done["seed"] == seed) & (done["training"] == training)).any():
                continue
            options = {"consistency": args.consistency} if training == "consistency" else {}
            if training == "canonical":
                options = {"canonical_orientation": True}
            model = make_sarcnet_pipeline(protocol=2, image_size=demo.image_size,
                                          max_epochs=demo.max_epochs, random_state=seed,
                                          verbose=0, **options)
            start = time.perf_counter()
            model.fit(train, train["score"], validation_data=(valid, valid["score"]))
            wall = time.perf_counter() - start
            s_per_epoch = float(np.median(model[-1].history_[:, "dur"]))
            rows = []
            for passes in (1,) if training == "canonical" else (1, 8):
                model[-1].set_params(test_time_augment=passes == 8)
                start = time.perf_counter()
                prediction = model.predict(test)
                predict_s = time.perf_counter() - start
                report = regression_report(test["score"].to_numpy(), prediction)
                first = prediction[:len(rotation)]
                change = np.mean([np.abs(model.predict(cells) - first).mean() for cells in turned])
                rows.append({"seed": seed, "training": training, "passes": passes,
                             "spearman": report["spearman"], "mae": report["mae"],
                             "rotation_change": float(change), "s_per_epoch": s_per_epoch,
                             "fit_s": wall, "predict_cells_per_s": len(test) / predict_s})
                print(rows[-1], flush=True)
            pd.DataFrame(rows).to_csv(out, mode="a", header=not out.is_file(), index=False)
            done = pd.read_csv(out)


def summarize(table: pd.DataFrame) -> None:
    pd.set_option("display.width", 200)
    columns = ["spearman", "mae", "rotation_change", "s_per_epoch", "predict_cells_per_s"]
    groups = table.groupby(["training", "passes"])
    summary = groups[columns].agg(["mean", "std"])
    summary.insert(0, ("seeds", "n"), groups.size())
    print(summary.round(3).to_string())
    base = table[(table["training"] == "d4") & (table["passes"] == 8)].set_index("seed")
    plain = table[(table["training"] == "d4") & (table["passes"] == 1)].set_index("seed")
    for training in sorted(set(table["training"]) - {"d4"}):
        one = table[(table["training"] == training) & (table["passes"] == 1)].set_index("seed")
        seeds = one.index.intersection(base.index)
        diff = (one.loc[seeds, "spearman"] - base.loc[seeds, "spearman"])
        ratio = one.loc[seeds, "s_per_epoch"] / plain.loc[seeds, "s_per_epoch"]
        print(f"{training}: one pass minus today's eight-pass average, Spearman: "
              f"mean {diff.mean():+.3f} [min {diff.min():+.3f}, max {diff.max():+.3f}] over "
              f"{len(seeds)} seeds; rotation change {one.loc[seeds, 'rotation_change'].mean():.4f}"
              f"; epoch cost {ratio.mean():.2f}x")


if __name__ == "__main__":
    main()
