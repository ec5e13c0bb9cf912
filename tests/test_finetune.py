"""Fine-tuning from a model file, freezing the image branch, and agreement with a lab's scorer."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import cohen_kappa_score

from sarcnet_sklearn import PROTOCOL_2
from sarcnet_sklearn.agreement import scorer_agreement, spearman_interval
from sarcnet_sklearn.commands import main
from sarcnet_sklearn.deploy import load_model, save_model, train_model
from sarcnet_sklearn.score_table import predict_scores

SMALL = {"max_epochs": 1, "batch_size": 16, "device": "cpu", "test_time_augment": False}


@pytest.fixture(scope="module")
def base_file(cells, tmp_path_factory):
    """A Protocol 2 model at 16 px with a 0-10 score range, saved in the safe format."""
    base, info = train_model(cells.iloc[:48], image_size=16, validation=0, score_range=(0, 10),
                             **SMALL)
    return save_model(base, tmp_path_factory.mktemp("base") / "base.zip", metadata=info,
                      format="safe")


def test_fine_tuning_starts_from_the_model_and_freezes_its_image_branch(base_file, cells):
    base = load_model(base_file).regressor.module_.state_dict()
    tuned, info = train_model(cells.iloc[48:96], init_from=base_file, validation=0,
                              freeze_image_epochs=1, **SMALL)
    net = tuned.regressor
    state = net.module_.state_dict()
    # the model's settings are kept: 16 px and the 0-10 range, not train_model's 224 and 1-5
    assert (net.image_size, tuple(net.score_range)) == (16, (0, 10))
    image = [name for name in state if name.startswith("image_branch.") and "weight" in name]
    assert all(torch.equal(state[name], base[name]) for name in image)  # frozen for epoch 1
    assert not torch.equal(state["head.0.weight"], base["head.0.weight"])
    assert info["training"]["init_from"] == str(Path(base_file).resolve())
    assert info["training"]["freeze_image_epochs"] == 1
    # the feature scaling is that of the new cells
    scaler = tuned.named_steps["scale"].named_transformers_["features"]
    assert np.allclose(scaler.mean_, cells.iloc[48:96][PROTOCOL_2].mean().to_numpy())


def test_fine_tuning_refuses_settings_that_contradict_the_model(base_file, cells):
    with pytest.raises(ValueError, match="image_size 32 differs from the model's 16"):
        train_model(cells.iloc[48:60], init_from=base_file, image_size=32, **SMALL)
    with pytest.raises(ValueError, match="model file not found"):
        train_model(cells.iloc[48:60], init_from=base_file.parent / "none.zip", **SMALL)


def test_missing_imagenet_weights_fail_before_training(cells, tmp_path):
    hub = Path(torch.hub.get_dir()) / "checkpoints" / "resnet18-f37072fd.pth"
    if hub.exists():
        pytest.skip("the ImageNet weights are cached here")
    with pytest.raises(ValueError, match="init_from 'imagenet': could not obtain"):
        train_model(cells.iloc[:12], init_from="imagenet", **SMALL)


def test_train_init_from_reports_agreement_grouped_by_field(base_file, cells, tmp_path):
    table = cells.iloc[48:84][["image_path", *PROTOCOL_2, "score"]].copy()
    table["field"] = np.repeat(np.arange(6), 6)
    table.to_csv(tmp_path / "lab.csv", index=False)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", str(tmp_path / "lab.csv"), "--init-from", str(base_file),
                     "--out", str(tmp_path / "lab.zip"), "--epochs", "1", "--batch-size", "16",
                     "--device", "cpu", "--cv", "2", "--quiet", "--validation-fraction", "0",
                     "--no-test-time-augment"]) == 0
    text = printed.getvalue()
    assert "agreement with your scores (2-fold cross-validation on 36 cells, folds grouped " \
           "by field" in text
    model, metadata = load_model(tmp_path / "lab.zip", return_metadata=True)
    assert model.regressor.image_size == 16
    agreement = metadata["agreement"]
    assert agreement["grouped_by"] == "field" and agreement["n_folds"] == 2
    assert agreement["ci_low"] <= agreement["spearman"] <= agreement["ci_high"]


def test_spearman_interval_resamples_fields_and_is_wider_for_clustered_cells():
    rng = np.random.default_rng(1)
    fields = np.repeat(np.arange(10), 20)
    truth = rng.normal(size=10)[fields] + rng.normal(0, 0.3, 200)
    predicted = truth + rng.normal(size=10)[fields] * 0.8 + rng.normal(0, 0.3, 200)
    cells = spearman_interval(truth, predicted, n_boot=300)
    grouped = spearman_interval(truth, predicted, fields, n_boot=300)
    assert grouped["spearman"] == cells["spearman"] and grouped["n_groups"] == 10
    assert grouped["ci_high"] - grouped["ci_low"] > 1.5 * (cells["ci_high"] - cells["ci_low"])


def test_scorer_agreement_is_sklearns_weighted_kappa_on_half_steps():
    first = np.array([1, 1.5, 2, 3, 3.5, 4, 5, np.nan])
    second = np.array([1, 2, 2, 3, 3, 4.5, 5, 3])
    result = scorer_agreement(first, second, score_step=0.5)
    assert result["n_cells"] == 7
    expected = cohen_kappa_score((first[:7] * 2).astype(int), (second[:7] * 2).astype(int),
                                 weights="quadratic")
    assert result["kappa_quadratic"] == pytest.approx(expected)
    assert result["exact"] == pytest.approx(4 / 7)


def test_suggest_orders_unscored_cells_by_d4_spread_with_a_random_share(base_file, cells,
                                                                          tmp_path):
    from sarcnet_sklearn.deploy import cell_uncertainty, suggest_cells

    model = load_model(base_file)
    table = cells.iloc[:20][["image_path", *PROTOCOL_2, "score"]].copy()
    table.loc[table.index[3:], "score"] = np.nan  # three cells are scored, 17 to do
    order = suggest_cells(model, table, random_share=0.25)
    assert len(order) == 17 and not set(order.index) & set(table.index[:3])
    assert order["suggested_by"].tolist()[:4] == ["model", "model", "model", "random"]
    assert order["suggest_rank"].tolist() == list(range(1, 18))
    # the model's picks come in decreasing spread of the 8 transforms' scores
    by_model = order[order["suggested_by"] == "model"]["uncertainty"].to_numpy()
    assert (np.diff(by_model) <= 0).all() and by_model[0] > 0
    # the mean of the 8 transforms' scores is the model's test-time-averaged score
    rows = order.index[:6]
    averaged = model.with_test_time_augment(True)  # the base model was saved without
    assert np.allclose(order.loc[rows, "score_pred"], predict_scores(averaged, table.loc[rows]),
                       atol=1e-4)
    alone = cell_uncertainty(model, table.loc[rows[:1]])  # a cell's spread is its own
    assert alone["uncertainty"].iloc[0] == pytest.approx(order["uncertainty"].iloc[0], rel=1e-3)
    table.to_csv(tmp_path / "cells.csv", index=False)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["suggest", str(base_file), str(tmp_path / "cells.csv"), "--out",
                     str(tmp_path / "order.csv")]) == 0
    assert "wrote the order of 17 unscored cells" in printed.getvalue()
