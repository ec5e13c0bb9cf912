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
from sarcnet_sklearn.agreement import scorer_agreement
from sarcnet_sklearn.commands import main
from sarcnet_sklearn.deploy import load_model, save_model, suggest_cells, train_model
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
    # frozen for epoch 1: weights, and the batch-norm running statistics (eval mode) too
    image = [name for name in state if name.startswith("image_branch.")]
    assert any("running_mean" in name for name in image)
    assert [name for name in image if not torch.equal(state[name], base[name])] == []
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
    table = cells.iloc[48:72][["image_path", *PROTOCOL_2, "score"]].copy()
    table["field"] = np.repeat(np.arange(6), 4)
    table.to_csv(tmp_path / "lab.csv", index=False)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["train", str(tmp_path / "lab.csv"), "--init-from", str(base_file),
                     "--out", str(tmp_path / "lab.zip"), "--epochs", "1", "--batch-size", "16",
                     "--device", "cpu", "--cv", "2", "--quiet", "--validation-fraction", "0.25",
                     "--no-test-time-augment"]) == 0
    text = printed.getvalue()
    assert "agreement with your scores (2-fold cross-validation on 16 cells, folds grouped " \
           "by field" in text
    # the validation metrics' intervals resample the table's fields too
    assert "bootstrap 95 % interval (validation: resampling whole fields (" in text
    model, metadata = load_model(tmp_path / "lab.zip", return_metadata=True)
    assert model.regressor.image_size == 16
    agreement = metadata["agreement"]
    assert agreement["grouped_by"] == "field" and agreement["n_folds"] == 2
    # the validation quarter is whole fields: 2 of the 6 fields of 4 cells
    assert metadata["training"]["split"] == "by field, validation 0.25"
    assert metadata["training"]["n_validation"] == 8
    assert metadata["training"]["lr"] == pytest.approx(1e-4)  # a fifth of 5e-4: fine-tuning
    assert agreement["ci_low"] <= agreement["spearman"] <= agreement["ci_high"]


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
    import pandas as pd

    from sarcnet_sklearn.deploy import cell_uncertainty

    table = cells.iloc[:12][["image_path", *PROTOCOL_2, "score"]].copy()
    table.loc[table.index[3:], "score"] = np.nan  # three cells are scored, nine to do
    table.to_csv(tmp_path / "cells.csv", index=False)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # the command is suggest_cells, written out
        assert main(["suggest", str(base_file), str(tmp_path / "cells.csv"), "--out",
                     str(tmp_path / "order.csv"), "--random-share", "0.25",
                     "--order", "uncertain"]) == 0
    assert "wrote the order of 9 unscored cells" in printed.getvalue()
    order = pd.read_csv(tmp_path / "order.csv")
    order.index = order["image_path"].map(pd.Series(table.index, index=table["image_path"]))
    assert len(order) == 9 and not set(order.index) & set(table.index[:3])
    assert order["suggested_by"].tolist()[:5] == ["model", "model", "model", "random", "model"]
    assert order["suggest_rank"].tolist() == list(range(1, 10))
    # the model's picks come in decreasing spread of the 8 transforms' scores
    by_model = order[order["suggested_by"] == "model"]["uncertainty"].to_numpy()
    assert (np.diff(by_model) <= 0).all() and by_model[0] > 0
    # the mean of the 8 transforms' scores is the model's test-time-averaged score
    model = load_model(base_file)
    rows = order.index[:2]
    averaged = model.with_test_time_augment(True)  # the base model was saved without
    assert np.allclose(order.loc[rows, "score_pred"], predict_scores(averaged, table.loc[rows]),
                       atol=1e-4)
    alone = cell_uncertainty(model, table.loc[rows[:1]])  # a cell's spread is its own
    assert alone["uncertainty"].iloc[0] == pytest.approx(order["uncertainty"].iloc[0], rel=1e-3)
    # spread over 3 groups of alike cells: the same cells, the most uncertain still first
    spread = suggest_cells(model, table, order="uncertain", groups=3, random_share=0)
    assert spread.index[0] == order.index[0] and set(spread.index) == set(order.index)
    with pytest.raises(ValueError, match="groups= must be a whole number"):
        suggest_cells(model, table, order="uncertain", groups=0)
    # weighed by typicality: the same cells; odd ones later
    typical = suggest_cells(model, table, order="uncertain", density=1.0, random_share=0)
    assert set(typical.index) == set(order.index)
    with pytest.raises(ValueError, match="density= must be 0 or more"):
        suggest_cells(model, table, order="uncertain", density=-1.0)


def test_the_representative_order_complements_the_scored_cells(base_file, cells, tmp_path):
    import pandas as pd

    table = cells.iloc[:12][["image_path", *PROTOCOL_2, "score"]].copy()
    table.loc[table.index[3:], "score"] = np.nan
    table.to_csv(tmp_path / "cells.csv", index=False)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["suggest", str(base_file), str(tmp_path / "cells.csv"), "--out",
                     str(tmp_path / "order.csv"), "--random-share", "0"]) == 0
    assert "(9 chosen by the model, 0 at random)" in printed.getvalue()
    order = pd.read_csv(tmp_path / "order.csv")
    assert sorted(order["image_path"]) == sorted(table["image_path"].iloc[3:])
    model = load_model(base_file)
    assert suggest_cells(model, table, order="representative", random_share=0)[
        "image_path"].tolist() == order["image_path"].tolist()
    # the cells scored so far steer it: without them, another order of the same cells
    alone = suggest_cells(model, table.iloc[3:], order="representative", random_share=0)
    assert sorted(alone["image_path"]) == sorted(order["image_path"])
    assert alone["image_path"].tolist() != order["image_path"].tolist()
    with pytest.raises(ValueError, match="groups= and density= weigh the model's uncertainty"):
        suggest_cells(model, table, order="representative", groups=3)
    with pytest.raises(ValueError, match="order= must be one of"):
        suggest_cells(model, table, order="chaos")


def test_representative_picks_go_first_to_the_kinds_the_scored_cells_miss(monkeypatch):
    from sarcnet_sklearn.deploy import _suggest
    from sarcnet_sklearn.deploy._suggest import _herding

    rng = np.random.default_rng(0)
    common, rare = rng.normal(0, 0.3, (80, 5)), rng.normal(4, 0.3, (20, 5))
    candidates = np.vstack([common, rare])  # rows 80-99 are the rare kind
    # nothing scored yet: the first 10 picks share the kinds as the table does (8:2)
    first = _herding(candidates, np.empty((0, 5)), rng)[:10]
    assert (first >= 80).sum() == 2
    # 10 common cells scored: the rare kind comes first, then both kinds in turn
    scored = rng.normal(0, 0.3, (10, 5))
    picks = _herding(candidates, scored, rng)
    assert picks[0] >= 80 and (picks[:4] >= 80).sum() >= 2
    assert sorted(picks) == list(range(100))
    # big tables: 60 of the 100 herded, against 60 of 600 scored common cells weighing 10 each
    monkeypatch.setattr(_suggest, "HERDING_CELLS", 60)
    picks = _herding(candidates, rng.normal(0, 0.3, (600, 5)), rng)
    assert sorted(picks) == list(range(100)) and picks[0] >= 80
    assert (picks[:10] >= 80).sum() >= 5  # the 600 common cells outweigh the herded ones


def test_the_models_picks_take_alike_cells_in_turn():
    from sarcnet_sklearn.deploy._suggest import _across_groups

    # rows 0-3 and 4-7 are two kinds of cell; the model is least sure about rows 0, 1, 2, 4, ...
    rng = np.random.default_rng(0)
    descriptors = np.vstack([rng.normal(0, 0.1, (4, 3)), rng.normal(5, 0.1, (4, 3))])
    ranked = [0, 1, 2, 4, 3, 5, 6, 7]
    assert _across_groups(ranked, descriptors, 2, random_state=0) == [0, 4, 1, 5, 2, 6, 3, 7]
    assert _across_groups(ranked, descriptors, 1, random_state=0) == ranked


def test_an_odd_cell_is_the_least_typical():
    from sarcnet_sklearn.deploy._suggest import _typicality

    rng = np.random.default_rng(1)
    descriptors = np.vstack([rng.normal(0, 1, (30, 4)), np.full((1, 4), 8.0)])
    typical = _typicality(descriptors)
    assert typical.argmin() == 30 and typical.max() == 1.0
    assert typical[30] < 0.5 * np.median(typical[:30])


def test_the_frozen_image_branch_keeps_its_batch_norm_statistics_then_trains_again():
    from skorch import NeuralNetRegressor
    from skorch.callbacks import Callback

    from sarcnet_sklearn.deploy import finetune_callbacks

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.image_branch = torch.nn.Sequential(torch.nn.Linear(3, 4),
                                                    torch.nn.BatchNorm1d(4))
            self.head = torch.nn.Linear(4, 1)

        def forward(self, X):
            return self.head(self.image_branch(X))

    class Record(Callback):  # the running mean and the branch's mode after each epoch
        def initialize(self):
            self.means, self.training = [], []
            return self

        def on_batch_end(self, net, training=False, **kwargs):
            if training:
                self.training.append(net.module_.image_branch.training)

        def on_epoch_end(self, net, **kwargs):
            self.means.append(net.module_.image_branch[1].running_mean.clone())

    record = Record()
    X = np.random.default_rng(0).normal(5, 1, (64, 3)).astype(np.float32)
    y = X.sum(axis=1, keepdims=True)
    net = NeuralNetRegressor(Net, max_epochs=3, batch_size=16, train_split=None, verbose=0,
                             callbacks=[*finetune_callbacks(None, freeze_image_epochs=2),
                                        ("record", record)])
    net.fit(X, y)
    assert record.training == [False] * 8 + [True] * 4  # eval mode in the 2 frozen epochs
    assert torch.equal(record.means[1], torch.zeros(4))  # untouched while frozen
    assert not torch.equal(record.means[2], record.means[1])  # updated once unfrozen
