"""The same synthetic field at 0.06, 0.12 and 0.24 um/px: do features, sarcomeres and scores agree?

Run: ``python benchmarks/bench_units.py [--cells 6] [--field-um 130] [--train-cells 160]``

Trains a small Protocol 1 SarcNet (image and features, 32 px, a few epochs) on synthetic
cells rendered at 0.36 um/px, then renders one synthetic field of view of ``--field-um``
micrometres square at each pixel size (the same cells, drawn in micrometres from one seed:
``make_synthetic_field`` with the shape scaled) and scores it with ``score_fields`` given
each pixel size. Prints, per pixel size, each cell's Protocol 1 features (um), sarcomere
length and score against the 0.12 um/px run: the largest and median relative difference of
each feature, of the sarcomere length, and the largest absolute score difference.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
import torch

from sarcnet_sklearn import PROTOCOL_1
from sarcnet_sklearn._columns import SARCOMERE_LENGTH_COLUMN
from sarcnet_sklearn.datasets import load_aics, make_synthetic_aics, make_synthetic_field
from sarcnet_sklearn.deploy import train_model
from sarcnet_sklearn.fields import score_fields

PIXEL_SIZES = (0.06, 0.12, 0.24)
REFERENCE = 0.12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=6, help="cells in the field")
    parser.add_argument("--field-um", type=float, default=130.0, help="side of the field (um)")
    parser.add_argument("--train-cells", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)

    start = time.perf_counter()
    root = make_synthetic_aics(tempfile.mkdtemp() + "/cells", n_cells=args.train_cells,
                               pixel_size_um=0.36, random_state=0, n_jobs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = train_model(load_aics(root), protocol=1, image_size=32,
                               max_epochs=args.epochs, lr=1e-3, batch_size=16, device="cpu",
                               test_time_augment=False)
    print(f"trained a Protocol 1 model on {args.train_cells} cells in "
          f"{time.perf_counter() - start:.0f} s")

    runs = {}
    for pixel_size in PIXEL_SIZES:
        side = int(round(args.field_um / pixel_size))
        start = time.perf_counter()
        field, labels = make_synthetic_field((side, side), args.cells, random_state=args.seed,
                                             pixel_size_um=pixel_size)
        rendered = time.perf_counter() - start
        start = time.perf_counter()
        table = score_fields(model, field, labels, pixel_size=pixel_size,
                             score_border_cells=True)
        print(f"{pixel_size} um/px: field {side} x {side} px rendered in {rendered:.1f} s, "
              f"scored in {time.perf_counter() - start:.1f} s")
        runs[pixel_size] = table.set_index("label")

    reference = runs[REFERENCE]
    rows = []
    for pixel_size in PIXEL_SIZES:
        if pixel_size == REFERENCE:
            continue
        table = runs[pixel_size].reindex(reference.index)
        row = {"pixel size (um)": pixel_size}
        for name in PROTOCOL_1 + [SARCOMERE_LENGTH_COLUMN]:
            relative = (table[name] / reference[name] - 1).abs()
            row[f"{name} median/max %"] = (f"{100 * relative.median():.1f} / "
                                           f"{100 * relative.max():.1f}")
        score = (table["score_pred"] - reference["score_pred"]).abs()
        row["score max |diff|"] = f"{score.max():.3f}"
        rows.append(row)
    print()
    print(pd.DataFrame(rows).set_index("pixel size (um)").T.to_markdown())
    print()
    shown = ["area", *PROTOCOL_1, SARCOMERE_LENGTH_COLUMN, "orientation_order", "score_pred"]
    for pixel_size in PIXEL_SIZES:
        print(f"{pixel_size} um/px")
        print(runs[pixel_size][shown].round(3).to_markdown())


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
