"""Shared fixtures: one small synthetic AICS dataset per test session.

Under pytest-xdist (``-n 2``, as CI runs the suite) each worker uses one torch thread, and
its subprocesses too (two workers with two threads each would fight over 2 cores), and the
costliest session fixtures are made once and shared by the workers.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from sarcnet_sklearn.datasets import load_aics, make_synthetic_aics

DATA = Path(__file__).parent / "data"

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(2)


def _shared_folder(tmp_path_factory) -> Path:
    """A folder every xdist worker of this run sees (this session's base folder without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    shared = _shared_folder(tmp_path_factory)
    root = shared / "aics" / "synthetic"
    with FileLock(shared / "aics.lock"):
        if not (shared / "aics.done").exists():
            make_synthetic_aics(root, n_cells=240, image_size=64, random_state=0)
            (shared / "aics.done").touch()
    return root


@pytest.fixture(scope="session")
def cells(synthetic_root):
    """The synthetic dataset as load_aics returns it (do not modify in tests: copy first)."""
    return load_aics(synthetic_root)


@pytest.fixture
def tiny_params() -> dict:
    """SarcNetRegressor settings small enough for a CPU test."""
    return {"image_size": 32, "max_epochs": 2, "batch_size": 16, "verbose": 0, "random_state": 0,
            "test_time_augment": False}


@pytest.fixture(scope="session")
def image_only_net(cells, tmp_path_factory):
    """An image-only ResNet-18 fitted to cells 0-159 with the paper's recipe (no augmentation,
    64 px, 4 epochs); cells 200-239 are unseen. Shared by the learning and the Grad-CAM
    localisation tests (do not modify: copy first)."""
    from sarcnet_sklearn import SarcNetRegressor

    shared = _shared_folder(tmp_path_factory)
    saved = shared / "image_only_net.pkl"
    with FileLock(shared / "image_only_net.lock"):
        if saved.exists():
            with saved.open("rb") as file:
                return pickle.load(file)
        train = cells.iloc[:160]
        net = SarcNetRegressor(use_features=False, image_size=64, max_epochs=4, batch_size=16,
                               lr=1e-3, train_split=None, verbose=0, random_state=0,
                               device="cpu", augment=None, test_time_augment=False)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the same net with or without xdist (sums in one order)
        try:
            net.fit(train[["image_path"]], train["score"])
        finally:
            torch.set_num_threads(threads)
        saved.write_bytes(pickle.dumps(net))
        return net
