"""Shared fixtures: one small synthetic AICS dataset per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sarcnet_sklearn.datasets import load_aics, make_synthetic_aics

DATA = Path(__file__).parent / "data"

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("aics") / "synthetic"
    return make_synthetic_aics(root, n_cells=240, image_size=64, random_state=0)


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
def image_only_net(cells):
    """An image-only ResNet-18 fitted to cells 0-159 with the paper's recipe (no augmentation,
    64 px, 6 epochs); cells 200-239 are unseen. Shared by the learning and the Grad-CAM
    localisation tests (do not modify: copy first)."""
    from sarcnet_sklearn import SarcNetRegressor

    train = cells.iloc[:160]
    net = SarcNetRegressor(use_features=False, image_size=64, max_epochs=6, batch_size=16,
                           lr=1e-3, train_split=None, verbose=0, random_state=0, device="cpu",
                           augment=None, test_time_augment=False)
    return net.fit(train[["image_path"]], train["score"])
