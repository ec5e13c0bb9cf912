"""Time Protocol 1 extraction: this package against the published AICS function.

Run: ``python benchmarks/bench_features.py [--cells 8] [--seed 0] [--batch 1000] [--clock cpu]``
(needs the ``bench`` extra: lmfit).

The published function is ``analyze_orientation`` of
``fish_morphology_code/processing/structure_organization/global_alignment/alignment.py``
(AllenCellModeling/fish_morphology_code), as transcribed in
``tests/aics_alignment_reference.py``: NumPy percentiles, scikit-image's
``graycomatrix``/``graycoprops`` and one lmfit fit per angle, as written.

1. Per cell, on one core (BLAS/OpenMP threads limited to 1): the time of the
   published function and of :func:`extract_protocol1` on realistic AICS-like
   cells of 400-700 px a side (irregular masks, myofibril textures rendered by
   the package's synthetic-data generator, uint8 stretched in the cell like the
   AICS files), their ratio, and the largest relative difference of the
   features.
2. :class:`Protocol1Extractor` on ``--batch`` cells read from 10-page TIFFs, on
   all cores (``n_jobs=-1``): cells per second.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sarcnet_sklearn.datasets._legacy_cell import _cell_mask, _render_structure  # noqa: E402
from sarcnet_sklearn.features import Protocol1Extractor, extract_protocol1  # noqa: E402
from tests.aics_alignment_reference import analyze_orientation  # noqa: E402

PAIRS = {
    "max_coefficient_variation": "Maximum_Coefficient_Variation",
    "peak_height": "Peak_Height",
    "peak_distance": "Peak_Distance",
}


def realistic_cell(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One AICS-like cell (uint8 structure, 0/1 mask) of 400-700 px a side."""
    while True:
        level = float(rng.uniform(1.0, 5.0))
        mask = _cell_mask(rng, level, int(rng.integers(420, 640)))
        if 400 <= min(mask.shape) and max(mask.shape) <= 700:
            break
    structure, _ = _render_structure(rng, mask, level, spacing=float(rng.uniform(12, 18)))
    return structure, mask.astype(np.uint8)


CLOCK = time.perf_counter


def best_of(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = CLOCK()
        function()
        times.append(CLOCK() - start)
    return min(times)


def per_cell(cells: list, repeats: int) -> None:
    extract_protocol1(*cells[0])  # warm up imports and FFT plans
    analyze_orientation(cells[0][0], cells[0][1], 1)
    ratios, ours_total, published_total = [], 0.0, 0.0
    worst = dict.fromkeys(PAIRS, 0.0)
    print(f"{'cell':>4} {'shape':>11} {'pixels':>7} {'published':>10} {'package':>8} {'ratio':>6}")
    for i, (image, mask) in enumerate(cells):
        ours_s = best_of(
            lambda image=image, mask=mask: extract_protocol1(image, mask, pixel_size=1.0), repeats
        )
        published_s = best_of(
            lambda image=image, mask=mask: analyze_orientation(image, mask, 1), max(1, repeats // 2)
        )
        ours = extract_protocol1(image, mask, pixel_size=1.0)
        published = analyze_orientation(image, mask, 1)
        for name, theirs in PAIRS.items():
            diff = abs(ours[name] - published[theirs]) / max(abs(published[theirs]), 1e-12)
            worst[name] = max(worst[name], diff)
        ratios.append(published_s / ours_s)
        ours_total += ours_s
        published_total += published_s
        print(f"{i:>4} {str(image.shape):>11} {int(mask.sum()):>7} {published_s * 1e3:>8.1f}ms "
              f"{ours_s * 1e3:>6.1f}ms {ratios[-1]:>5.1f}x")
    n = len(cells)
    print(f"\nper cell, one core: published {published_total / n * 1e3:.1f} ms, "
          f"package {ours_total / n * 1e3:.1f} ms; ratio of totals "
          f"{published_total / ours_total:.1f}x, per-cell ratios median "
          f"{np.median(ratios):.1f}x, min {min(ratios):.1f}x")
    print("largest relative difference to the published function: "
          + ", ".join(f"{name} {value:.1e}" for name, value in worst.items()))


def batched(cells: list, n_rows: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i, (image, mask) in enumerate(cells):
            pages = np.zeros((10,) + image.shape, np.uint8)
            pages[1], pages[9] = image, mask * 255
            paths.append(str(Path(folder) / f"cell_{i}.tiff"))
            tifffile.imwrite(paths[-1], pages)
        table = pd.DataFrame({"image_path": [paths[i % len(paths)] for i in range(n_rows)]})
        Protocol1Extractor(n_jobs=-1).fit_transform(table.head(2 * (os.cpu_count() or 1)))
        start = time.perf_counter()
        out = Protocol1Extractor(n_jobs=-1).fit_transform(table)
        elapsed = time.perf_counter() - start
    assert out["peak_height"].notna().all()
    print(f"\nProtocol1Extractor(n_jobs=-1), {n_rows} cells read from TIFFs on "
          f"{os.cpu_count()} cores: {elapsed:.1f} s, {n_rows / elapsed:.1f} cells/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=8, help="cells timed one by one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="best of this many runs")
    parser.add_argument("--batch", type=int, default=1000, help="cells for the extractor")
    parser.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall",
        help="per-cell times: wall clock, or this process's CPU time (steadier on a busy machine)",
    )
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    rng = np.random.default_rng(args.seed)
    cells = [realistic_cell(rng) for _ in range(args.cells)]
    with threadpool_limits(1):
        per_cell(cells, args.repeats)
    if args.batch:
        batched(cells, args.batch)


if __name__ == "__main__":
    main()
