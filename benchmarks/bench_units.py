"""The same synthetic field at 0.06, 0.12 and 0.24 um/px: do features, sarcomeres and scores agree?

Run: ``python benchmarks/bench_units.py [--fields 3] [--cells 6] [--field-um 130]``
(about 5 minutes on 2 idle cores with the defaults).

Trains a small Protocol 1 SarcNet (image and features, 32 px) on ``--train-cells`` synthetic
cells rendered at 0.12 um/px (or at each of ``--train-pixel-sizes`` in turn); the model
records 0.12 um/px. Then renders ``--fields`` synthetic fields of view of ``--field-um``
micrometres square (the first seeds from ``--seed`` whose cells fit), each at 0.06, 0.12 and
0.24 um/px (the same cells, drawn in micrometres from one seed: ``make_synthetic_field`` with
the shape scaled), and scores each with ``score_fields`` given its pixel size. Prints, for
every cell, the relative difference of each Protocol 1 feature (um) and of the sarcomere
length, and the absolute difference of the score, from the same cell at 0.12 um/px: median and
largest, for all cells and for the organized ones (latent level >= 3), and the share of cells
within the targets of issue #24 (features 5 %, sarcomere length 3 %, score 0.15).

One more row shows what no 0.24 um/px image can do better than: the 0.12 um/px field with
everything finer than 0.24 um/px's sampling limit removed (an ideal low-pass filter, 0.25
cycles per pixel), measured at 0.12 um/px.
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
BAND_LIMITED = "0.12 band-limited to 0.24"
TARGETS = {**dict.fromkeys(PROTOCOL_1, 0.05), SARCOMERE_LENGTH_COLUMN: 0.03}
SCORE_TARGET = 0.15
ORGANIZED_LEVEL = 3.0


def band_limited(field: np.ndarray, cutoff: float = 0.25) -> np.ndarray:
    """``field`` without spatial frequencies above ``cutoff`` cycles per pixel on either axis."""
    spectrum = np.fft.rfft2(field.astype(np.float64))
    rows = np.abs(np.fft.fftfreq(field.shape[0]))[:, None] > cutoff
    cols = np.fft.rfftfreq(field.shape[1])[None, :] > cutoff
    spectrum[rows | cols] = 0
    filtered = np.fft.irfft2(spectrum, s=field.shape)
    return np.clip(np.rint(filtered), field.min(), field.max()).astype(field.dtype)


def differences(runs: dict, name: str, organized: np.ndarray) -> dict[str, str]:
    reference, table = runs[REFERENCE], runs[name]
    row = {}
    for feature, target in TARGETS.items():
        relative = (table[feature] / reference[feature] - 1).abs()
        for subset, keep in (("all", slice(None)), ("organized", organized)):
            values = relative[keep].dropna()
            row[f"{feature} ({subset}) median / max %"] = (
                f"{100 * values.median():.1f} / {100 * values.max():.1f}")
        values = relative.dropna()
        row[f"{feature}: cells within {100 * target:g} %"] = (
            f"{int((values <= target).sum())} of {len(values)}")
        one_only = int((table[feature].isna() != reference[feature].isna()).sum())
        if one_only:
            row[f"{feature}: NaN at one pixel size only"] = f"{one_only} cell(s)"
    score = (table["score_pred"] - reference["score_pred"]).abs().dropna()
    row["score median / max |diff|"] = f"{score.median():.3f} / {score.max():.3f}"
    row[f"score: cells within {SCORE_TARGET}"] = (
        f"{int((score <= SCORE_TARGET).sum())} of {len(score)}")
    return row


def fitting_seeds(args) -> list[int]:
    """The first ``args.fields`` seeds from ``args.seed`` whose cells fit in the field."""
    seeds, seed = [], args.seed
    while len(seeds) < args.fields:
        side = int(round(args.field_um / max(PIXEL_SIZES)))
        try:  # the cells are drawn in micrometres: they fit at every pixel size or at none
            make_synthetic_field((side, side), args.cells, random_state=seed,
                                 pixel_size_um=max(PIXEL_SIZES))
            seeds.append(seed)
        except ValueError:
            pass
        seed += 1
        if seed > args.seed + 50 * args.fields:
            raise SystemExit(f"{args.cells} cells rarely fit in {args.field_um} um: "
                             "give a larger --field-um or fewer --cells")
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fields", type=int, default=3, help="synthetic fields (seeds)")
    parser.add_argument("--cells", type=int, default=8, help="cells per field")
    parser.add_argument("--field-um", type=float, default=160.0, help="side of a field (um)")
    parser.add_argument("--train-cells", type=int, default=300)
    parser.add_argument("--train-pixel-sizes", type=float, nargs="+", default=[REFERENCE],
                        help="render the training cells at these pixel sizes (um), an equal "
                             "share at each; the model records 0.12 um/px whatever they are")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--model-seed", type=int, default=0,
                        help="seed of the training cells and of the training")
    parser.add_argument("--pixel-sizes", type=float, nargs="+", default=list(PIXEL_SIZES),
                        help=f"render the fields at these (um; {REFERENCE} is always added)")
    parser.add_argument("--seed", type=int, default=3, help="seed of the first field")
    parser.add_argument("--cells-table", help="also write every cell's rows to this CSV")
    args = parser.parse_args()
    torch.set_num_threads(2)

    start = time.perf_counter()
    cells = load_aics(make_synthetic_aics(tempfile.mkdtemp() + "/cells", n_cells=args.train_cells,
                                          pixel_size_um=args.train_pixel_sizes,
                                          random_state=args.model_seed, n_jobs=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = train_model(cells, protocol=1, image_size=32,
                               max_epochs=args.epochs, lr=1e-3, batch_size=16, device="cpu",
                               test_time_augment=False, random_state=args.model_seed)
    sizes = ", ".join(f"{size:g}" for size in args.train_pixel_sizes)
    print(f"trained a Protocol 1 model on {args.train_cells} cells rendered at {sizes} um/px in "
          f"{time.perf_counter() - start:.0f} s")

    pixel_sizes = sorted({*args.pixel_sizes, REFERENCE})
    runs: dict = {name: [] for name in (*pixel_sizes, BAND_LIMITED)}
    levels = []
    for seed in fitting_seeds(args):
        for pixel_size in pixel_sizes:
            side = int(round(args.field_um / pixel_size))
            start = time.perf_counter()
            field, labels, field_levels = make_synthetic_field(
                (side, side), args.cells, random_state=seed, pixel_size_um=pixel_size,
                return_levels=True)
            rendered = time.perf_counter() - start
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the synthetic-model notice, once per field
                tables = {pixel_size: score_fields(model, field, labels, pixel_size=pixel_size,
                                                   score_border_cells=True)}
                if pixel_size == REFERENCE:
                    levels.extend(field_levels)
                    tables[BAND_LIMITED] = score_fields(model, band_limited(field), labels,
                                                        pixel_size=pixel_size,
                                                        score_border_cells=True)
            print(f"field {seed}, {pixel_size} um/px: {side} x {side} px rendered in "
                  f"{rendered:.1f} s, scored in {time.perf_counter() - start:.1f} s")
            for name, table in tables.items():
                table = table.sort_values("label").reset_index(drop=True)
                table.insert(0, "seed", seed)
                runs[name].append(table)
    runs = {name: pd.concat(tables, ignore_index=True) for name, tables in runs.items()}
    organized = np.asarray(levels) >= ORGANIZED_LEVEL
    reference = runs[REFERENCE]
    for name, table in runs.items():
        if not (table[["seed", "label"]].to_numpy() == reference[["seed", "label"]].to_numpy()
                ).all():
            raise RuntimeError(f"the cells of {name} do not match those at {REFERENCE} um/px")

    scores = reference["score_pred"].dropna()
    print(f"\n{len(reference)} cells ({int(organized.sum())} organized, level >= "
          f"{ORGANIZED_LEVEL:g}); the model's scores at {REFERENCE} um/px: "
          f"{scores.min():.2f}-{scores.max():.2f} (sd {scores.std():.2f}), "
          f"{reference['error'].notna().sum()} cell(s) not scored")
    rows = {f"{name} um/px" if isinstance(name, float) else name:
            differences(runs, name, organized) for name in runs if name != REFERENCE}
    print("\nDifference from the same cell at 0.12 um/px\n")
    print(pd.DataFrame(rows).to_markdown())
    if args.cells_table:
        pd.concat({str(name): table for name, table in runs.items()},
                  names=["pixel_size_run"]).to_csv(args.cells_table)
        print(f"\nevery cell's rows: {args.cells_table}")


if __name__ == "__main__":
    main()
