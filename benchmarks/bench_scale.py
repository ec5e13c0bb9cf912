"""Screens of many cells: cells/s and peak memory from 1,000 to 100,000 cells, here and on Dask.

Run (what fits in about 15 minutes on 2 CPU cores):
    python benchmarks/bench_scale.py --image-size 32 --cells 1000 10000 100000 \
        --cluster-cells 1000 10000 --estimator-cells 1000 10000
At the paper's size (slow on a CPU: about 40 cells/s on 2 cores), one pass against the
eight-pass average, with the share of time in reading, preparing and the network:
    python benchmarks/bench_scale.py --image-size 224 --tiff-size 224 --cells 1000 \
        --cluster-cells --estimator-cells --passes 1 8 --shares 400

A handful of synthetic cell TIFFs (``--distinct`` of them, 2 pages: the
structure on page 1) is listed over and over in a CSV of ``N`` rows with
Protocol 2 feature columns, so that large tables cost no time to make. A tiny
SarcNet pipeline (one epoch on 32 cells) is saved with ``save_model``. Then,
each in its own process, for each ``N``:

- ``predict`` command, local: end-to-end cells/s (process start, reading the
  CSV, decoding the TIFFs, checks, model, chunked resumable output) and the
  process's peak RSS (``VmHWM``);
- ``predict`` command with ``--scheduler`` on a two-worker ``LocalCluster``
  (processes, 1 thread each): cells/s, the client's peak RSS and each worker's
  peak RSS (sampled);
- the estimator's own ``pipeline.predict(cells)`` (``--estimator-cells``):
  cells/s and peak RSS;

and, in this process, the bare model's forward throughput on the same device
(uint8 batches already in memory, no decoding): the ceiling for cells/s. Each
rate is given per wall-clock second and per CPU-second (all the process's
threads, plus the workers' on a cluster): on a machine shared with other jobs
the CPU-second figures, and their ratio to the bare model's, are the ones that
mean something.
Finally the peak-memory ratio of the largest to the smallest ``N``. With ``--passes 1 8``
the local ``predict`` runs once with one forward pass per cell and once with the eight-pass
average (``--no-test-time-augment`` / ``--test-time-augment``); with ``--shares N`` the
estimator's ``predict`` of ``N`` cells runs under cProfile in this process and its time is
split into reading (``sarcnet_sklearn.images``: decoding, resizing), the network (the
module's forward) and preparing (everything else: checks, feature scaling, batching).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import tifffile
import torch

from sarcnet_sklearn import PROTOCOL_2, make_sarcnet_pipeline
from sarcnet_sklearn.deploy import save_model
from sarcnet_sklearn.nn import SarcNetModule

ESTIMATOR = """
import json, sys, time
import pandas as pd, torch
from sarcnet_sklearn.deploy import load_model
{peak}
torch.set_num_threads({threads})
start, cpu_start = time.perf_counter(), time.process_time()
model = load_model(sys.argv[1], device="{device}")
cells = pd.read_csv(sys.argv[2])
scores = model.predict(cells)
assert len(scores) == len(cells)
print(json.dumps({{"seconds": time.perf_counter() - start,
                  "cpu_seconds": time.process_time() - cpu_start, "peak_mb": peak_mb()}}))
"""

PEAK = """
def peak_mb():  # VmHWM: this process's peak RSS (ru_maxrss would carry the parent's over exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

COMMAND = """
import json, sys, time
import torch
from sarcnet_sklearn.commands import main
{peak}
torch.set_num_threads({threads})
start, cpu_start = time.perf_counter(), time.process_time()
assert main(sys.argv[1:]) == 0
print(json.dumps({{"seconds": time.perf_counter() - start,
                  "cpu_seconds": time.process_time() - cpu_start, "peak_mb": peak_mb()}}))
"""


def write_cells(folder: Path, n_distinct: int, size: int, rng: np.random.Generator) -> list[str]:
    """``n_distinct`` 2-page uint8 TIFFs: page 0 a mask, page 1 striated structure."""
    rows, cols = np.mgrid[0:size, 0:size]
    paths = []
    for index in range(n_distinct):
        period = rng.uniform(4, 9)
        stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (cols + rng.uniform(0, 9)) / period)
        structure = np.clip(200 * stripes + rng.normal(0, 25, (size, size)), 0, 255)
        mask = np.full((size, size), 255, np.uint8)
        path = folder / f"cell_{index:03d}.tiff"
        tifffile.imwrite(path, np.stack([mask, structure.astype(np.uint8)]))
        paths.append(str(path))
    return paths


def cell_table(paths: list[str], n_cells: int, rng: np.random.Generator) -> pd.DataFrame:
    table = pd.DataFrame({"image_path": [paths[i % len(paths)] for i in range(n_cells)]})
    table.insert(0, "cell_id", np.arange(n_cells))
    for name in PROTOCOL_2:
        table[name] = rng.normal(0, 1, n_cells).round(6)
    return table


def run_measured(code: str, argv: list[str], watch_workers=None) -> dict:
    """Run ``python -c code argv`` and parse its JSON line; sample worker RSS meanwhile."""
    peaks: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in watch_workers or ():
                try:
                    rss = psutil.Process(pid).memory_info().rss / 2**20
                except psutil.NoSuchProcess:
                    continue
                peaks[pid] = max(peaks.get(pid, 0.0), rss)
            stop.wait(0.2)

    def cpu_of(pids) -> dict[int, float]:
        times = {}
        for pid in pids or ():
            try:
                times[pid] = sum(psutil.Process(pid).cpu_times()[:2])
            except psutil.NoSuchProcess:
                continue
        return times

    cpu_before = cpu_of(watch_workers)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                              text=True, check=False)
    finally:
        stop.set()
        sampler.join()
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if watch_workers is not None:
        result["worker_peak_mb"] = sorted(round(value) for value in peaks.values())
        cpu_after = cpu_of(watch_workers)
        result["cpu_seconds"] += sum(cpu_after[pid] - cpu_before[pid] for pid in cpu_after)
    return result


def bare_forward(model_path: Path, size: int, device: str, batch: int) -> tuple[float, float]:
    """Cells per second and per CPU-second of the bare module's forward pass on uint8 batches
    already in memory."""
    from sarcnet_sklearn.deploy import load_model

    module = load_model(model_path, device=device)[-1].module_
    if not isinstance(module, SarcNetModule):
        module = getattr(module, "_orig_mod", module)
    module.eval()
    images = torch.randint(0, 255, (batch, size, size), dtype=torch.uint8, device=device)
    features = torch.randn(batch, len(PROTOCOL_2), device=device)
    with torch.inference_mode():
        module(images=images, features=features)  # warm-up
        repeats, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < 5 or repeats < 2:
            module(images=images, features=features)
            repeats += 1
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    cells = repeats * batch
    return cells / (time.perf_counter() - start), cells / (time.process_time() - cpu_start)


def time_shares(model_path: Path, table: Path, device: str) -> dict[str, float]:
    """Shares of ``pipeline.predict``'s time in reading, the network and the rest."""
    import cProfile
    import pstats

    from sarcnet_sklearn.deploy import load_model

    model = load_model(model_path, device=device)
    cells = pd.read_csv(table)
    profile = cProfile.Profile()
    profile.enable()
    model.predict(cells)
    profile.disable()
    stats = pstats.Stats(profile).stats
    total = max(entry[3] for entry in stats.values())

    def cumulative(match) -> float:
        return sum(entry[3] for (file, _, name), entry in stats.items() if match(file, name))

    network = cumulative(lambda file, name: file.endswith("sarcnet_sklearn/nn.py")
                         and name == "forward")
    reading = cumulative(lambda file, name: file.endswith("sarcnet_sklearn/images.py")
                         and name in ("read_planes", "load_image_stack"))
    return {"reading": reading / total, "network": network / total,
            "preparing": 1 - (reading + network) / total, "seconds": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--cells", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--cluster-cells", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--estimator-cells", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--distinct", type=int, default=64, help="distinct TIFF files")
    parser.add_argument("--tiff-size", type=int, help="side of the TIFFs (default: image size)")
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--test-time-augment", action="store_true",
                        help="predict with the 8-transform average (8 forward passes per cell; "
                             "off by default so that cells/s compares with one bare forward)")
    parser.add_argument("--passes", type=int, nargs="+", choices=[1, 8], default=[1],
                        help="forward passes per cell of the local predict runs: 1, 8 or both")
    parser.add_argument("--shares", type=int, metavar="N",
                        help="profile the estimator's predict of N cells: time shares")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = write_cells(folder, args.distinct, args.tiff_size or args.image_size, rng)
    train = cell_table(paths, 32, rng)
    pipeline = make_sarcnet_pipeline(protocol=2, image_size=args.image_size, max_epochs=1,
                                     batch_size=16, verbose=0, random_state=0,
                                     device=args.device,
                                     test_time_augment=args.test_time_augment)
    pipeline.fit(train, rng.uniform(1, 5, len(train)))
    model_path = save_model(pipeline, folder / "model.joblib")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"device {args.device}, {args.threads} threads; image size {args.image_size} px, "
          f"{args.distinct} distinct TIFFs listed over and over; files in {folder}")
    bare, bare_cpu = bare_forward(model_path, args.image_size, args.device, args.batch_size)
    print(f"bare model forward (batch {args.batch_size}, images in memory): {bare:.1f} cells/s, "
          f"{bare_cpu:.1f} cells per CPU-second", flush=True)

    command = COMMAND.format(threads=args.threads, peak=PEAK)
    common = ["--quiet", "--chunk-size", str(args.chunk_size), "--batch-size",
              str(args.batch_size), "--device", args.device]
    rows = []
    for n_cells in sorted(set(args.cells) | set(args.cluster_cells) | set(args.estimator_cells)):
        table = folder / f"cells_{n_cells}.csv"
        cell_table(paths, n_cells, rng).to_csv(table, index=False)
        if n_cells in args.cells:
            for passes in args.passes:
                out = folder / f"local_{n_cells}{'' if passes == 1 else '_tta'}.csv"
                tta = "--test-time-augment" if passes == 8 else "--no-test-time-augment"
                result = run_measured(command, ["predict", str(model_path), str(table), "--out",
                                                str(out), tta, *common])
                result["passes"] = passes
                name = "predict (local)" + ("" if passes == 1 else ", 8 passes")
                rows.append((name, n_cells, result))
        if n_cells in args.estimator_cells:
            code = ESTIMATOR.format(threads=args.threads, device=args.device, peak=PEAK)
            rows.append(("pipeline.predict", n_cells,
                         run_measured(code, [str(model_path), str(table)])))
        if n_cells in args.cluster_cells:
            from distributed import Client, LocalCluster

            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                workers = list(client.run(os.getpid).values())
                out = folder / f"cluster_{n_cells}.csv"
                result = run_measured(
                    command,
                    ["predict", str(model_path), str(table), "--out", str(out), *common,
                     "--scheduler", cluster.scheduler_address],
                    watch_workers=workers,
                )
            same = (folder / f"local_{n_cells}.csv").exists() and (
                out.read_bytes() == (folder / f"local_{n_cells}.csv").read_bytes())
            result["same_as_local"] = same
            rows.append(("predict (2-worker LocalCluster)", n_cells, result))
        for what, n, result in rows[-4:]:
            if n == n_cells:
                ceiling = bare / result.get("passes", 1)
                ceiling_cpu = bare_cpu / result.get("passes", 1)
                extra = ""
                if "worker_peak_mb" in result:
                    extra = (f", workers' peak {result['worker_peak_mb']} MB, identical to "
                             f"local: {result['same_as_local']}")
                per_cpu = n / result["cpu_seconds"]
                print(f"{what:>32} {n:>7} cells: {n / result['seconds']:8.1f} cells/s end to "
                      f"end ({n / result['seconds'] / ceiling:.0%} of bare), {per_cpu:.1f} per "
                      f"CPU-second ({per_cpu / ceiling_cpu:.0%} of bare), peak "
                      f"{result['peak_mb']:.0f} MB{extra}", flush=True)
    if args.shares:
        table = folder / f"cells_{args.shares}.csv"
        cell_table(paths, args.shares, rng).to_csv(table, index=False)
        shares = time_shares(model_path, table, args.device)
        print(f"pipeline.predict of {args.shares} cells under cProfile ({shares['seconds']:.1f} s):"
              f" reading {shares['reading']:.0%}, preparing {shares['preparing']:.0%}, "
              f"network {shares['network']:.0%}")
    for what in ("predict (local)", "pipeline.predict", "predict (2-worker LocalCluster)"):
        runs = sorted((n, result) for name, n, result in rows if name == what)
        if len(runs) >= 2:
            (small, first), (large, last) = runs[0], runs[-1]
            print(f"{what}: peak memory {large} / {small} cells = "
                  f"{last['peak_mb'] / first['peak_mb']:.2f}")


if __name__ == "__main__":
    main()
