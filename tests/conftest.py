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
