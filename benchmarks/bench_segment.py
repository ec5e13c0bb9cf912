"""How well ``fields --segment classical`` recovers the cells of synthetic fields.

Prints, per field and over all, each true cell's best intersection over union with a found
cell, the share of cells recovered (IoU > 0.5) and the time per field.

    python benchmarks/bench_segment.py
"""

from __future__ import annotations

import time

import numpy as np

from sarcnet_sklearn.datasets import make_synthetic_field
from sarcnet_sklearn.fields._segment import segment_classical

CASES = [((384, 384), 6, 0.48, 0), ((512, 512), 6, None, 1), ((192, 224), 4, None, 3),
         ((600, 600), 12, 0.4, 2), ((800, 800), 16, 0.4, 4)]


def best_iou(truth: np.ndarray, found: np.ndarray) -> list[float]:
    ious = []
    for label in range(1, int(truth.max()) + 1):
        cell = truth == label
        overlap = found[cell]
        overlap = overlap[overlap > 0]
        if not len(overlap):
            ious.append(0.0)
            continue
        other = found == np.bincount(overlap).argmax()
        ious.append(float((cell & other).sum() / (cell | other).sum()))
    return ious


def main() -> None:
    every = []
    for shape, n_cells, pixel_size, seed in CASES:
        field, truth, size = make_synthetic_field(shape, n_cells, random_state=seed,
                                                  pixel_size_um=pixel_size,
                                                  return_pixel_size=True)
        started = time.perf_counter()
        found = segment_classical(field, size)
        seconds = time.perf_counter() - started
        ious = best_iou(truth, found)
        every += ious
        print(f"{shape} {n_cells} cells at {size:.2f} um/px: found {found.max()}, IoU "
              f"{np.round(ious, 2).tolist()}, {seconds:.2f} s")
    every = np.array(every)
    print(f"all {len(every)} cells: median IoU {np.median(every):.2f}, "
          f"{100 * (every > 0.5).mean():.0f} % with IoU > 0.5")


if __name__ == "__main__":
    main()
