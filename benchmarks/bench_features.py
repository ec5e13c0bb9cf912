"""Time Protocol 1 extraction: this package vs the straightforward implementation.

Run: ``python benchmarks/bench_features.py [--cells 8] [--seed 0]``

Makes realistic synthetic cells (300-600 px per side, striped or punctate
alpha-actinin-like structure inside a tilted elliptical mask), then reports
per-cell time of :func:`extract_protocol1` and of the literal reference (one
``graycomatrix`` call per distance and angle, one scipy fit per angle), their
ratio, the largest relative difference of the five features, and the time of
:class:`Protocol1Extractor` with ``n_jobs=1`` and ``n_jobs=2`` on the same cells
written as 10-page TIFFs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from sarcnet_sklearn._columns import PROTOCOL_1
from sarcnet_sklearn.features import Protocol1Extractor, extract_protocol1
from sarcnet_sklearn.features._reference import reference_protocol1


def synthetic_cell(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One uint8 structure image and its mask, 300-600 px per side."""
    h, w = rng.integers(300, 601, 2)
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    tilt = rng.uniform(0, np.pi)
    u = ((xx - w / 2) * np.cos(tilt) + (yy - h / 2) * np.sin(tilt)) / (0.45 * min(h, w))
    v = (-(xx - w / 2) * np.sin(tilt) + (yy - h / 2) * np.cos(tilt)) / (0.3 * min(h, w))
    mask = u**2 + v**2 <= 1
    if rng.random() < 0.6:
        theta, period = rng.uniform(0, np.pi), rng.uniform(5, 12)
        s = xx * np.cos(theta) + yy * np.sin(theta)
        contrast = rng.uniform(20, 90)
        image = 90 + contrast * np.cos(2 * np.pi * s / period) + rng.normal(0, 25, (h, w))
    else:
        image = rng.normal(60, 15, (h, w))
        spots = rng.uniform([0, 0], [h, w], (int(h * w / 150), 2)).astype(int)
        image[spots[:, 0], spots[:, 1]] += 600
        image = np.real(np.fft.ifft2(np.fft.fft2(image) * np.exp(
            -(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None] ** 2) * 40)))
    image[~mask] = rng.uniform(0, 15, int((~mask).sum()))
    return np.clip(np.round(image), 0, 255).astype(np.uint8), mask.astype(np.uint8)


def best_of(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    cells = [synthetic_cell(rng) for _ in range(args.cells)]
    extract_protocol1(*cells[0])  # warm up imports and FFT plans

    fast_total = slow_total = 0.0
    worst = dict.fromkeys(PROTOCOL_1, 0.0)
    print(f"{'cell':>4} {'shape':>10} {'pixels':>7} {'reference':>10} {'ours':>8} {'ratio':>6}")
    for i, (image, mask) in enumerate(cells):
        fast = best_of(lambda image=image, mask=mask: extract_protocol1(image, mask), args.repeats)
        slow = best_of(lambda image=image, mask=mask: reference_protocol1(image, mask), 1)
        ours, reference = extract_protocol1(image, mask), reference_protocol1(image, mask)
        for name in PROTOCOL_1:
            diff = abs(ours[name] - reference[name]) / max(abs(reference[name]), 1e-12)
            worst[name] = max(worst[name], diff)
        fast_total += fast
        slow_total += slow
        print(f"{i:>4} {str(image.shape):>10} {int(mask.sum()):>7} {slow * 1e3:>8.1f}ms "
              f"{fast * 1e3:>6.1f}ms {slow / fast:>5.1f}x")
    n = len(cells)
    print(f"\nper cell, one core: reference {slow_total / n * 1e3:.1f} ms, "
          f"ours {fast_total / n * 1e3:.1f} ms, ratio {slow_total / fast_total:.1f}x")
    print("largest relative difference: "
          + ", ".join(f"{name} {value:.1e}" for name, value in worst.items()))

    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i, (image, mask) in enumerate(cells):
            pages = np.zeros((10,) + image.shape, np.uint8)
            pages[1], pages[9] = image, mask * 255
            paths.append(str(Path(folder) / f"cell_{i}.tiff"))
            tifffile.imwrite(paths[-1], pages)
        table = pd.DataFrame({"image_path": paths * 4})
        print(f"\nProtocol1Extractor on {len(table)} cells read from TIFFs "
              f"({os.cpu_count()} CPUs):")
        for n_jobs in (1, 2):
            # The first parallel call starts the worker processes (each imports the package).
            for run in ("first call", "warm"):
                extractor = Protocol1Extractor(n_jobs=n_jobs)
                start = time.perf_counter()
                extractor.fit_transform(table)
                elapsed = time.perf_counter() - start
                print(f"  n_jobs={n_jobs} ({run}): {elapsed:.2f} s total, "
                      f"{elapsed / len(table) * 1e3:.1f} ms per cell")

if __name__ == "__main__":
    main()
