"""End to end: images are read and used. An image-only ResNet-18, trained for well under a
minute of CPU on small synthetic cells, ranks held-out cells like the experts do."""

from __future__ import annotations

import time

import pytest

from sarcnet_sklearn import SarcNetRegressor, spearman_score
from sarcnet_sklearn.datasets import load_aics, make_synthetic_aics


@pytest.fixture(scope="module")
def learning_cells(tmp_path_factory):
    root = tmp_path_factory.mktemp("learning") / "aics"
    return load_aics(make_synthetic_aics(root, n_cells=320, image_size=64, random_state=1))


def test_image_only_resnet18_learns_the_synthetic_rubric(learning_cells):
    cells = learning_cells.sample(frac=1.0, random_state=0).reset_index(drop=True)
    train, valid, test = cells.iloc[:200], cells.iloc[200:240], cells.iloc[240:]
    net = SarcNetRegressor(
        use_features=False,
        image_size=48,
        max_epochs=10,
        lr=1e-3,
        batch_size=32,
        random_state=0,
        verbose=0,
        test_time_augment=False,
    )
    start = time.process_time()
    net.fit(train[["image_path"]], train["score"],
            validation_data=(valid[["image_path"]], valid["score"]))
    cpu_seconds = time.process_time() - start
    held_out = spearman_score(test["score"], net.predict(test[["image_path"]]))
    print(f"held-out Spearman {held_out:.3f} after {cpu_seconds:.0f} s of CPU")
    assert held_out >= 0.5
