"""Time a field of view end to end: read, cut, measure Protocol 1, score.

Run: ``python benchmarks/bench_fields.py [--cells 30] [--shape 1776 1736] [--threads 2]``

Writes a synthetic 16-bit field of the AICS size (1776 x 1736 px at 0.12 um/px,
``make_synthetic_field``) with its label image as OME-TIFF/TIFF files in a
temporary folder, trains a Protocol 1 SarcNet at the paper's 224 px for one epoch
on the field's own crops (so that it has fitted weights), and then times each
stage of scoring that field as ``sarcnet-sklearn fields`` does: reading both
files, cutting the cells by the AICS recipe, measuring their Protocol 1
features (``--n-jobs`` processes) and scoring them with the model. Prints
cells per second, the time per stage, the share of reading and cutting, and
the peak resident memory during scoring (sampled every 10 ms with psutil).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import tifffile
import torch
from bioio.writers import OmeTiffWriter
from bioio_base.types import PhysicalPixelSizes

from sarcnet_sklearn import PROTOCOL_1, make_sarcnet_pipeline
from sarcnet_sklearn.datasets import make_synthetic_field
from sarcnet_sklearn.deploy import predict_cells
from sarcnet_sklearn.fields import cut_cells, read_field, read_labels, score_fields
from sarcnet_sklearn.fields._score import cell_rows, measure_cells


class PeakMemory:
    """Largest resident set size of this process while the block runs."""

    def __enter__(self):
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=30)
    parser.add_argument("--shape", type=int, nargs=2, default=(1776, 1736))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    folder = Path(tempfile.mkdtemp(prefix="bench_fields_"))
    start = time.perf_counter()
    field, labels, levels = make_synthetic_field(tuple(args.shape), args.cells,
                                                 random_state=args.seed, return_levels=True)
    field_path, labels_path = folder / "field.ome.tiff", folder / "labels.tif"
    OmeTiffWriter.save(np.stack([field // 2, field]), field_path, dim_order="CYX",
                       channel_names=["DAPI", "ACTN2"],
                       physical_pixel_sizes=PhysicalPixelSizes(None, 0.12, 0.12))
    tifffile.imwrite(labels_path, labels)
    print(f"synthetic field {field.shape} uint16 with {args.cells} cells written to {folder} "
          f"in {time.perf_counter() - start:.1f} s")

    cells = measure_cells(cell_rows("field", cut_cells(field, labels), 0.12), n_jobs=args.n_jobs)
    X = cells[["crop", *PROTOCOL_1]].rename(columns={"crop": "image_path"})
    model = make_sarcnet_pipeline(protocol=1, image_size=args.image_size, max_epochs=1,
                                  batch_size=10, device="cpu", train_split=None, verbose=0)
    model.fit(X, levels)

    timings = {}
    with PeakMemory() as memory:
        start = time.perf_counter()
        image = read_field(field_path, channel="ACTN2")
        label_image = read_labels(labels_path)
        timings["read field + labels"] = time.perf_counter() - start

        start = time.perf_counter()
        crops = cut_cells(image, label_image)
        timings["cut (AICS recipe)"] = time.perf_counter() - start

        start = time.perf_counter()
        table = measure_cells(cell_rows(str(field_path), crops, image.pixel_size),
                              n_jobs=args.n_jobs)
        timings["Protocol 1 features"] = time.perf_counter() - start

        start = time.perf_counter()
        ready = table[table["error"].isna()]
        inputs = ready[PROTOCOL_1].copy()
        inputs.insert(0, "image_path", ready["crop"])
        predicted = predict_cells(model, inputs)
        timings["score (SarcNet)"] = time.perf_counter() - start
    total = sum(timings.values())
    n_scored = int(predicted["score_pred"].notna().sum())

    start = time.perf_counter()
    one_call = score_fields(model, field_path, labels_path, channel="ACTN2", n_jobs=args.n_jobs)
    one_call_time = time.perf_counter() - start
    assert len(one_call) == args.cells and one_call["error"].isna().all()

    print(f"\n{args.cells} cells, {n_scored} scored, {args.threads} torch threads, "
          f"n_jobs={args.n_jobs}, model input {args.image_size} px")
    print(f"{'stage':<24}{'seconds':>9}{'share':>8}")
    for stage, seconds in timings.items():
        print(f"{stage:<24}{seconds:>9.3f}{seconds / total:>8.1%}")
    print(f"{'total':<24}{total:>9.3f}")
    io_share = (timings["read field + labels"] + timings["cut (AICS recipe)"]) / total
    print(f"\nend to end: {args.cells / total:.2f} cells/s; reading + cutting {io_share:.1%} "
          f"of the time")
    print(f"score_fields in one call: {one_call_time:.2f} s ({args.cells / one_call_time:.2f} "
          "cells/s)")
    print(f"peak resident memory while scoring: {memory.peak / 2**20:.0f} MiB "
          f"(+{(memory.peak - memory.start) / 2**20:.0f} MiB over the {memory.start / 2**20:.0f} "
          "MiB before)")


if __name__ == "__main__":
    main()
