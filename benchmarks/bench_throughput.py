"""Training and inference throughput of SarcNetRegressor against the bare model and the reference.

Run (small default, a few minutes on 2 CPU cores):
    python benchmarks/bench_throughput.py
Paper-sized (224 px; the lead's final figures; on a GPU use --n-cells 3686):
    python benchmarks/bench_throughput.py --image-size 224 --n-cells 400 --memory-cells 2000

On synthetic AICS cells (10-page TIFFs) it prints, in images per second:
(a) the bare SarcNetModule's forward+backward+Adam step on batches already on
    the device (the ceiling);
(b) ``SarcNetRegressor.fit`` per epoch (skorch's epoch time) and end to end
    (image decoding included);
(c) a faithful re-creation of the reference code's data handling and loop:
    every image read page by page, resized with cv2 (PIL when cv2 is missing),
    kept as a float32 3 x size x size tensor in a Python list, a DataLoader over
    that list, a plain float32 training loop;
(d) ``predict`` (inference on the cache, and end to end) against the bare forward pass;
(e) peak resident memory (``getrusage`` max RSS, each in its own subprocess) of
    (b) and (c) loading ``--memory-cells`` cells and training a few batches,
    plus the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback
from torch.utils.data import DataLoader

from sarcnet_sklearn import PROTOCOL_2, SarcNetRegressor
from sarcnet_sklearn.datasets import load_aics, make_synthetic_aics
from sarcnet_sklearn.images import read_plane
from sarcnet_sklearn.nn import SarcNetModule


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def cells_table(root: Path, n_cells: int):
    cells = load_aics(root).iloc[:n_cells]
    X = cells[["image_path", *PROTOCOL_2]].copy()
    X[PROTOCOL_2] = (X[PROTOCOL_2] - X[PROTOCOL_2].mean()) / X[PROTOCOL_2].std().replace(0, 1)
    return X, cells["score"].to_numpy(np.float32)


def regressor(args, **extra) -> SarcNetRegressor:
    # fit with the default D4 augmentation (its cost counts against the bare model); predict
    # one pass per cell, like the bare forward it is compared with (test-time averaging is 8)
    return SarcNetRegressor(image_size=args.image_size, batch_size=args.batch_size,
                            max_epochs=args.epochs, train_split=None, device=args.device,
                            precision=args.precision, random_state=0, verbose=0,
                            test_time_augment=False, **extra)


def bare_model(args, n_cells: int, training: bool) -> float:
    """Images/s of the module alone on a preloaded device batch (the ceiling)."""
    torch.manual_seed(0)
    net = regressor(args)
    net.feature_names_ = list(PROTOCOL_2)
    net.initialize()
    net.module_.train(training)
    images = torch.randint(0, 256, (args.batch_size, args.image_size, args.image_size),
                           dtype=torch.uint8, device=args.device)
    features = torch.randn(args.batch_size, len(PROTOCOL_2), device=args.device)
    target = torch.randn(args.batch_size, 1, device=args.device)
    n_batches = max(1, n_cells // args.batch_size)

    def step():
        if training:
            net.optimizer_.zero_grad()
            loss = torch.nn.functional.mse_loss(net.infer({"images": images,
                                                           "features": features}), target)
            loss.backward()
            net.optimizer_.step()
        else:
            with torch.inference_mode():
                net.infer({"images": images, "features": features})

    for _ in range(2):  # warm-up (cuDNN autotuning, allocator)
        step()
    synchronize(args.device)
    start = time.perf_counter()
    for _ in range(n_batches):
        step()
    synchronize(args.device)
    return n_batches * args.batch_size / (time.perf_counter() - start)


def fast_fit(args, X, y) -> dict[str, float]:
    start = time.perf_counter()
    net = regressor(args).fit(X, y)
    total = time.perf_counter() - start
    epoch = min(net.history[:, "dur"])
    return {"epoch": len(X) / epoch, "end_to_end": args.epochs * len(X) / total, "net": net}


def resize(plane: np.ndarray, size: int) -> np.ndarray:
    try:
        import cv2

        return cv2.resize(plane, (size, size))
    except ImportError:
        from PIL import Image

        return np.asarray(Image.fromarray(plane).resize((size, size)))


def reference_preload(paths, size: int) -> list[torch.Tensor]:
    """The reference code's data handling: float32 3 x size x size tensors in a Python list."""
    images = []
    for path in paths:
        plane = resize(read_plane(path, 1), size).astype(np.float32) / 255.0
        tensor = torch.from_numpy((plane - 0.5) / 0.5)
        images.append(tensor.unsqueeze(0).repeat(3, 1, 1))
    return images


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, images, features, target):
        self.images, self.features, self.target = images, features, target

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.features[i], self.target[i]


def reference_epoch(args, images, features, y, max_batches: int | None = None) -> float:
    """One epoch of the reference loop (float32, DataLoader over a list); returns seconds."""
    torch.manual_seed(0)
    module = SarcNetModule(n_features=len(PROTOCOL_2)).to(args.device).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=5e-4)
    loader = DataLoader(ListDataset(images, torch.from_numpy(features), torch.from_numpy(y)),
                        batch_size=args.batch_size, shuffle=True)
    start = time.perf_counter()
    for i, (image, feature, target) in enumerate(loader):
        if max_batches is not None and i == max_batches:
            break
        image, feature = image.to(args.device), feature.to(args.device)
        target = target.to(args.device).reshape(-1, 1)
        optimizer.zero_grad()
        embedding = torch.cat([module.image_branch(image), module.feature_branch(feature)], 1)
        loss = torch.nn.functional.mse_loss(module.head(embedding), target)
        loss.backward()
        optimizer.step()
    synchronize(args.device)
    return time.perf_counter() - start


class StopAfterBatches(Callback):
    def __init__(self, n_batches: int):
        self.n_batches = n_batches

    def on_batch_end(self, net, **kwargs):
        self.seen = getattr(self, "seen", 0) + 1
        if self.seen >= self.n_batches:
            raise KeyboardInterrupt  # skorch ends fit cleanly


def current_rss_mb() -> float:
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_probe(args) -> None:
    """Subprocess: load ``--n-cells`` cells the given way, train a few batches, print JSON."""
    X, y = cells_table(Path(args.data), args.n_cells)
    torch.manual_seed(0)
    SarcNetModule(n_features=len(PROTOCOL_2))  # imports and allocator warmed alike
    baseline = current_rss_mb()
    if args.memory_probe == "fast":
        regressor(args, callbacks=[StopAfterBatches(args.memory_batches)]).fit(X, y)
    else:
        images = reference_preload(X["image_path"], args.image_size)
        features = X[PROTOCOL_2].to_numpy(np.float32)
        reference_epoch(args, images, features, y, max_batches=args.memory_batches)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": peak, "above_baseline_mb": peak - baseline}))


def run_probe(args, kind: str, data: Path, n_cells: int) -> dict:
    command = [sys.executable, __file__, "--memory-probe", kind, "--data", str(data),
               "--n-cells", str(n_cells), "--image-size", str(args.image_size),
               "--batch-size", str(args.batch_size), "--device", args.device,
               "--precision", args.precision, "--memory-batches", str(args.memory_batches),
               "--threads", str(args.threads)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--n-cells", type=int, default=160, help="cells per training epoch")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=40)
    parser.add_argument("--memory-cells", type=int, default=600,
                        help="cells loaded by the memory probes (0: skip them)")
    parser.add_argument("--memory-batches", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--data", help="existing synthetic AICS folder (default: make one)")
    parser.add_argument("--memory-probe", choices=["fast", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_probe:
        memory_probe(args)
        return

    n_data = max(args.n_cells, args.memory_cells)
    scratch = tempfile.TemporaryDirectory()
    data = Path(args.data) if args.data else Path(scratch.name) / "aics"
    if not args.data:
        print(f"Writing {n_data} synthetic cells ({args.image_size} px) to {data} ...")
        make_synthetic_aics(data, n_cells=int(n_data * 1.05) + 2, image_size=args.image_size,
                            random_state=0)
    X, y = cells_table(data, args.n_cells)
    n = len(X)
    device_name = (torch.cuda.get_device_name() if args.device.startswith("cuda")
                   else f"{platform.processor() or platform.machine()}, {args.threads} threads")
    print(f"device {args.device} ({device_name}); torch {torch.__version__}; {n} cells at "
          f"{args.image_size} px; batch {args.batch_size}; precision {args.precision}")

    ceiling = bare_model(args, n, training=True)
    fit = fast_fit(args, X, y)
    start = time.perf_counter()
    images = reference_preload(X["image_path"], args.image_size)
    preload = time.perf_counter() - start
    features = X[PROTOCOL_2].to_numpy(np.float32)
    reference_epoch(args, images, features, y, max_batches=2)  # warm-up
    reference = n / reference_epoch(args, images, features, y)
    reference_end_to_end = n / (preload + n / reference)
    forward_ceiling = bare_model(args, n, training=False)
    net = fit["net"]
    inputs = net.module_inputs(X)
    with torch.inference_mode():
        net.predict_proba(inputs)
        synchronize(args.device)
        start = time.perf_counter()
        net.predict_proba(inputs)
        synchronize(args.device)
    predict_cached = n / (time.perf_counter() - start)
    start = time.perf_counter()
    net.predict(X)
    predict_end_to_end = n / (time.perf_counter() - start)

    rows = [
        ("(a) bare model, forward+backward", ceiling, 1.0),
        ("(b) fit, per epoch", fit["epoch"], fit["epoch"] / ceiling),
        ("(b) fit, end to end (decode incl.)", fit["end_to_end"], fit["end_to_end"] / ceiling),
        ("(c) reference loop, per epoch", reference, reference / ceiling),
        ("(c) reference, end to end (preload incl.)", reference_end_to_end,
         reference_end_to_end / ceiling),
        ("(a') bare model, forward only", forward_ceiling, 1.0),
        ("(d) predict, on the cache", predict_cached, predict_cached / forward_ceiling),
        ("(d) predict, end to end (decode incl.)", predict_end_to_end,
         predict_end_to_end / forward_ceiling),
    ]
    print(f"\n{'':44s} {'images/s':>10s} {'vs bare':>8s}")
    for name, value, ratio in rows:
        print(f"{name:44s} {value:10.1f} {ratio:8.0%}")
    print(f"\nfit per epoch vs reference loop: {fit['epoch'] / reference:.2f}x; "
          f"3,686-cell epoch would take {3686 / fit['epoch']:.1f} s (fit) vs "
          f"{3686 / reference:.1f} s (reference)")
    if args.memory_cells:
        fast = run_probe(args, "fast", data, args.memory_cells)
        ref = run_probe(args, "reference", data, args.memory_cells)
        print(f"\npeak memory, {args.memory_cells} cells at {args.image_size} px, "
              f"{args.memory_batches} training batches (max RSS, MB):")
        print(f"  fit:       {fast['peak_mb']:8.0f} total, {fast['above_baseline_mb']:8.0f} "
              "above the process after imports and model build")
        print(f"  reference: {ref['peak_mb']:8.0f} total, {ref['above_baseline_mb']:8.0f} above")
        print(f"  ratio fit/reference: {fast['peak_mb'] / ref['peak_mb']:.3f} total, "
              f"{fast['above_baseline_mb'] / ref['above_baseline_mb']:.3f} above baseline")


if __name__ == "__main__":
    main()
