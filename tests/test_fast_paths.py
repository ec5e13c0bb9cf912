"""The fast data path and mixed precision give the same results as the plain ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset

from sarcnet_sklearn import PROTOCOL_1, SarcNetRegressor, spearman_score
from sarcnet_sklearn._batches import BatchIterator, CellDataset
from sarcnet_sklearn.nn import SarcNetModule

BF16_ATOL = 0.05
"""Largest difference allowed between bf16-autocast and float32 predictions (scores 1-5)."""


@pytest.fixture
def scaled(cells):
    X = cells[["image_path", *PROTOCOL_1]].iloc[:32].copy()
    X[PROTOCOL_1] = (X[PROTOCOL_1] - X[PROTOCOL_1].mean()) / X[PROTOCOL_1].std()
    return X, cells["score"].to_numpy()[:32]


def _cached(n: int, seed: int = 0) -> CellDataset:
    rng = np.random.default_rng(seed)
    inputs = {
        "images": rng.integers(0, 256, (n, 8, 8), dtype=np.uint8),
        "features": np.c_[np.arange(n), rng.normal(size=(n, 2))].astype(np.float32),
    }
    return CellDataset(inputs, rng.normal(size=(n, 1)).astype(np.float32))


def _as_numpy(batch):
    X, y = batch
    return {name: value.numpy() for name, value in X.items()}, y.numpy()


@pytest.mark.parametrize("indices", [None, [5, 0, 17, 3, 9, 30, 11]])
def test_cached_batches_equal_the_dataloader_batches(indices):
    dataset = _cached(33)
    plain_source = dataset if indices is None else Subset(dataset, indices)
    plain = [_as_numpy(batch) for batch in DataLoader(plain_source, batch_size=4)]
    fast = [_as_numpy(batch) for batch in BatchIterator(dataset, indices, batch_size=4)]
    assert len(fast) == len(plain) > 1
    for (fast_X, fast_y), (plain_X, plain_y) in zip(fast, plain, strict=True):
        assert fast_X["images"].dtype == np.uint8
        np.testing.assert_array_equal(fast_X["images"], plain_X["images"])
        np.testing.assert_array_equal(fast_X["features"], plain_X["features"])
        np.testing.assert_array_equal(fast_y, plain_y)


def test_training_batches_visit_every_cell_once_and_drop_a_trailing_one():
    net = SarcNetRegressor(batch_size=16, device="cpu")
    dataset = _cached(33)
    orders = []
    for _ in range(2):
        iterator = net.get_iterator(dataset, training=True)
        assert isinstance(iterator, BatchIterator)
        batches = list(iterator)
        assert [len(y) for _, y in batches] == [16, 16]  # the lone 33rd cell is left out
        ids = np.concatenate([X["features"][:, 0].numpy() for X, _ in batches]).astype(int)
        assert len(set(ids)) == 32 and set(ids) <= set(range(33))
        orders.append(ids)
    assert not np.array_equal(orders[0], orders[1])  # shuffled anew each epoch
    even = list(net.get_iterator(_cached(32), training=True))
    ids = np.concatenate([X["features"][:, 0].numpy() for X, _ in even]).astype(int)
    assert sorted(ids) == list(range(32))
    valid = list(net.get_iterator(dataset, training=False))
    assert [len(y) for _, y in valid] == [16, 16, 1]
    subset = Subset(dataset, np.arange(0, 33, 2))  # 17 cells, as a ValidSplit makes
    ids = np.concatenate([X["features"][:, 0].numpy()
                          for X, _ in net.get_iterator(subset, training=False)]).astype(int)
    assert list(ids) == list(range(0, 33, 2))


def test_custom_loader_options_fall_back_to_the_dataloader():
    net = SarcNetRegressor(batch_size=16, device="cpu", iterator_train__num_workers=0)
    iterator = net.get_iterator(_cached(33), training=True)
    assert isinstance(iterator, DataLoader) and iterator.drop_last
    assert sum(len(y) for _, y in iterator) == 32


def test_fast_and_plain_paths_train_the_same_model(scaled, tiny_params):
    X, y = scaled
    # No augmentation: a DataLoader draws its seed from torch's generator, so random D4 draws
    # would differ between the paths.
    params = {**tiny_params, "train_split": None, "iterator_train__shuffle": False,
              "augment": None}
    fast = SarcNetRegressor(**params).fit(X, y)
    plain = SarcNetRegressor(**params, iterator_train__num_workers=0).fit(X, y)
    np.testing.assert_allclose(fast.predict(X), plain.predict(X), rtol=1e-4, atol=1e-4)


def test_bf16_autocast_predicts_like_float32(scaled, tiny_params):
    X, y = scaled
    net = SarcNetRegressor(**tiny_params, train_split=None, precision="fp32").fit(X, y)
    full = net.predict(X)
    net.set_params(precision="bf16")
    half = net.predict(X)
    assert half.dtype == np.float32
    assert np.max(np.abs(half - full)) <= BF16_ATOL
    assert spearman_score(full, half) > 0.95
    # One step is enough to show it trains (bf16 on a CPU without native support is slow).
    trained_in_bf16 = SarcNetRegressor(**{**tiny_params, "max_epochs": 1, "batch_size": 2},
                                       train_split=None, precision="bf16").fit(X[:2], y[:2])
    assert np.all(np.isfinite(trained_in_bf16.history[:, "train_loss"]))
    with pytest.raises(ValueError, match="precision must be"):
        SarcNetRegressor(**tiny_params, precision="fp8").fit(X, y)


def test_feature_widths_reach_the_module_and_the_default_is_unchanged(scaled, tiny_params):
    X, y = scaled
    default = SarcNetModule(n_features=5, use_images=False)
    assert [m.out_features for m in default.feature_branch if hasattr(m, "out_features")] == [
        128, 256, 512]
    net = SarcNetRegressor(**{**tiny_params, "max_epochs": 1}, use_images=False,
                           module__feature_widths=(8, 16, 32)).fit(X[PROTOCOL_1], y)
    widths = [m.out_features for m in net.module_.feature_branch if hasattr(m, "out_features")]
    assert widths == [8, 16, 32] and net.module_.head[0].in_features == 32
    with pytest.raises(ValueError, match="feature_widths"):
        SarcNetModule(n_features=5, feature_widths=())


def test_normalisation_is_unchanged_on_cpu():
    images = torch.tensor([[[0, 255], [127, 128]]], dtype=torch.uint8)
    out = SarcNetModule.normalize_images(images)
    assert out.shape == (1, 3, 2, 2) and out.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(out[0, 0].numpy(), [[-1, 1], [127 / 127.5 - 1, 128 / 127.5 - 1]],
                               atol=1e-6)
