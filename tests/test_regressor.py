from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)
from skorch import NeuralNetRegressor
from skorch.callbacks import Callback

from sarcnet_sklearn import PROTOCOL_1, ProtocolSelector, SarcNetRegressor, spearman_score
from sarcnet_sklearn.images import ImageReadError
from sarcnet_sklearn.nn import SarcNetModule


@pytest.fixture
def scaled(cells):
    """48 Protocol-1 cells with standardised features, as the pipeline's model step sees them."""
    X = cells[["image_path", *PROTOCOL_1]].iloc[:48].copy()
    X[PROTOCOL_1] = (X[PROTOCOL_1] - X[PROTOCOL_1].mean()) / X[PROTOCOL_1].std()
    return X, cells["score"].to_numpy()[:48]


@pytest.mark.parametrize("estimator", [SarcNetRegressor(), ProtocolSelector()])
def test_sklearn_conventions(estimator):
    name = type(estimator).__name__
    check_parameters_default_constructible(name, estimator)
    check_get_params_invariance(name, estimator)
    if isinstance(estimator, ProtocolSelector):
        # skorch's own parameters (history, callbacks, ...) reject the junk values this
        # check sets; the regressor's set_params is tested in test_clone_and_params_round_trip.
        check_set_params(name, estimator)
        check_no_attributes_set_in_init(name, estimator)


def test_init_sets_nothing_beyond_what_skorch_sets():
    skorch_net = NeuralNetRegressor(SarcNetModule)
    skorch_own = set(vars(skorch_net)) - set(skorch_net.get_params())
    net = SarcNetRegressor(image_size=64)
    assert set(vars(net)) - set(net.get_params()) == skorch_own
    assert not any(name.endswith("_") and name not in skorch_own for name in vars(net))


def test_clone_and_params_round_trip(tiny_params):
    net = SarcNetRegressor(backbone="alexnet", use_features=False, optimizer__weight_decay=1e-4,
                           **tiny_params)
    params = net.get_params()
    assert params["backbone"] == "alexnet" and params["optimizer__weight_decay"] == 1e-4
    assert params["lr"] == 5e-4 and params["criterion"] is torch.nn.MSELoss
    copy = clone(net)
    assert copy.get_params()["image_size"] == 32 and copy is not net
    copy.set_params(image_size=48, lr=1e-3)
    assert (copy.image_size, copy.lr, net.image_size) == (48, 1e-3, 32)
    assert not hasattr(copy, "module_")


def test_paper_defaults():
    net = SarcNetRegressor()
    assert (net.lr, net.batch_size, net.max_epochs, net.image_size) == (5e-4, 40, 100, 224)
    assert net.optimizer is torch.optim.Adam and net.backbone == "resnet18"
    assert net.structure_page == 1 and net.weights is None
    assert net.device == ("cuda" if torch.cuda.is_available() else "cpu")


class ShapeCheckingMSE(torch.nn.MSELoss):
    def forward(self, prediction, target):
        assert prediction.shape == target.shape, (prediction.shape, target.shape)
        return super().forward(prediction, target)


def test_fit_with_1d_y_trains_on_the_right_loss_and_predicts_1d(scaled, tiny_params):
    X, y = scaled
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # skorch warns when it broadcasts a 1-D target
        net = SarcNetRegressor(criterion=ShapeCheckingMSE, **tiny_params)
        assert net.fit(X, y) is net
    prediction = net.predict(X)
    assert prediction.shape == (len(X),) and prediction.dtype == np.float32
    two_d = SarcNetRegressor(**tiny_params).fit(X, y.reshape(-1, 1))
    np.testing.assert_allclose(two_d.predict(X), prediction, rtol=1e-4, atol=1e-4)
    assert net.feature_names_ == PROTOCOL_1 and net.n_features_in_ == 6
    with pytest.raises(ValueError, match="y must be 1-D"):
        SarcNetRegressor(**tiny_params).fit(X, np.c_[y, y])


def test_predicts_on_a_batch_of_one_and_trains_with_a_trailing_batch_of_one(scaled, tiny_params):
    X, y = scaled
    n = 2 * tiny_params["batch_size"] + 1
    net = SarcNetRegressor(**tiny_params, train_split=None).fit(X[:n], y[:n])
    one = net.predict(X.iloc[[7]])
    assert one.shape == (1,)
    np.testing.assert_allclose(one, net.predict(X)[7], rtol=1e-5, atol=1e-5)
    module = SarcNetModule(n_features=5).eval()
    out = module(images=torch.zeros((1, 32, 32), dtype=torch.uint8), features=torch.zeros((1, 5)))
    assert out.shape == (1, 1)


def test_explicit_validation_keeps_the_best_epoch(scaled, tiny_params):
    X, y = scaled
    params = {**tiny_params, "max_epochs": 4, "lr": 3e-3}
    net = SarcNetRegressor(**params).fit(X[:32], y[:32], validation_data=(X[32:], y[32:]))
    scores = net.history[:, "valid_spearman"]
    assert len(scores) == 4 and net.history[0, "valid_loss"] is not None
    best = int(np.nanargmax(scores))
    assert spearman_score(y[32:], net.predict(X[32:])) == pytest.approx(scores[best], abs=1e-4)
    # Validation came from validation_data, not from a split of the training cells.
    batches = net.history[-1, "batches"]
    assert sum(b.get("train_batch_size", 0) for b in batches) == 32
    assert sum(b.get("valid_batch_size", 0) for b in batches) == len(X) - 32


def test_missing_image_file_is_named(scaled, tiny_params):
    X, y = scaled
    X = X.copy()
    X.loc[X.index[4], "image_path"] = "/nowhere/cell_4.tiff"
    with pytest.raises(ImageReadError, match="/nowhere/cell_4.tiff"):
        SarcNetRegressor(**tiny_params).fit(X, y)


def test_nan_feature_is_named_with_its_row(scaled, tiny_params):
    X, y = scaled
    X = X.copy()
    X.loc[X.index[9], "peak_height"] = np.nan
    with pytest.raises(ValueError, match=r"'peak_height' is nan in row 9"):
        SarcNetRegressor(**tiny_params).fit(X, y)


def test_bad_target_and_columns(scaled, tiny_params):
    X, y = scaled
    with pytest.raises(ValueError, match="y has 3 values but X has"):
        SarcNetRegressor(**tiny_params).fit(X, y[:3])
    with pytest.raises(ValueError, match="no image column 'image_path'"):
        SarcNetRegressor(**tiny_params).fit(X.drop(columns="image_path"), y)
    net = SarcNetRegressor(**{**tiny_params, "max_epochs": 1}, train_split=None).fit(X[:20], y[:20])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['peak_distance'\]"):
        net.predict(X.drop(columns="peak_distance"))


def test_dict_input_and_feature_only_and_image_only(scaled, tiny_params):
    X, y = scaled
    as_dict = {column: X[column].to_numpy() for column in X.columns}
    net = SarcNetRegressor(**{**tiny_params, "max_epochs": 1}, train_split=None).fit(as_dict, y)
    np.testing.assert_allclose(net.predict(as_dict), net.predict(X), rtol=1e-5, atol=1e-5)
    features_only = SarcNetRegressor(use_images=False, **tiny_params).fit(X[PROTOCOL_1], y)
    assert features_only.module_.image_branch is None
    assert features_only.predict(X[PROTOCOL_1]).shape == (len(X),)
    images_only = SarcNetRegressor(use_features=False, **tiny_params).fit(X, y)
    assert images_only.module_.feature_branch is None and images_only.feature_names_ == []


class GradAccNet(SarcNetRegressor):
    """skorch's gradient-accumulation recipe (skorch FAQ), unchanged."""

    def __init__(self, *args, acc_steps=2, **kwargs):
        super().__init__(*args, **kwargs)
        self.acc_steps = acc_steps

    def get_loss(self, *args, **kwargs):
        loss = super().get_loss(*args, **kwargs)
        return loss / self.acc_steps

    def train_step(self, batch, **fit_params):
        n_train_batches = len(self.history[-1, "batches"])
        step = self.train_step_single(batch, **fit_params)
        if n_train_batches % self.acc_steps == 0:
            self.optimizer_.step()
            self.optimizer_.zero_grad()
        return step


def test_skorch_gradient_accumulation_recipe_works(scaled, tiny_params):
    X, y = scaled
    X, y = X[PROTOCOL_1][:32], y[:32]
    # No BatchNorm in the feature-only MLP: two accumulated half batches are one whole batch.
    params = {**tiny_params, "use_images": False, "train_split": None,
              "iterator_train__shuffle": False, "lr": 1e-2}
    accumulated = GradAccNet(acc_steps=2, **{**params, "batch_size": 8}).fit(X, y)
    whole = SarcNetRegressor(**{**params, "batch_size": 16}).fit(X, y)
    stepwise = SarcNetRegressor(**{**params, "batch_size": 8}).fit(X, y)
    np.testing.assert_allclose(accumulated.predict(X), whole.predict(X), rtol=1e-4, atol=1e-5)
    assert not np.allclose(stepwise.predict(X), whole.predict(X), rtol=1e-4, atol=1e-5)


class GradientRecorder(Callback):
    def initialize(self):
        self.calls = []
        return self

    def on_grad_computed(self, net, named_parameters, training=None, **kwargs):
        largest = max(float(p.grad.abs().max()) for _, p in named_parameters if p.grad is not None)
        self.calls.append((training, largest))


def test_fp16_gradient_scaling_goes_through_skorchs_step(scaled, tiny_params):
    X, y = scaled
    recorder = GradientRecorder()
    net = SarcNetRegressor(**{**tiny_params, "max_epochs": 1, "batch_size": 4}, use_images=False,
                           precision="fp16", train_split=None, callbacks=[recorder])
    net.fit(X[PROTOCOL_1][:48], y[:48])
    assert net.grad_scaler_ is not None and net.grad_scaler_.get_scale() > 1
    assert len(recorder.calls) == 12 and all(training is True for training, _ in recorder.calls)
    # Callbacks (gradient clipping) see true gradients, not ones scaled by 2**16 (the scaler
    # skips the first steps, whose scaled gradients overflow, and lowers its scale).
    finite = [largest for _, largest in recorder.calls if np.isfinite(largest)]
    assert finite and max(finite) < 100
    assert np.isfinite(net.history[-1, "train_loss"])


def test_random_state_leaves_torchs_global_generator_alone(scaled, tiny_params):
    X, y = scaled
    before = torch.get_rng_state()
    first = SarcNetRegressor(**tiny_params).fit(X[:40], y[:40])
    assert torch.equal(torch.get_rng_state(), before)
    torch.rand(100)  # the user's own code draws in between
    second = SarcNetRegressor(**tiny_params).fit(X[:40], y[:40])
    np.testing.assert_array_equal(first.predict(X[40:50]), second.predict(X[40:50]))
    third = SarcNetRegressor(**{**tiny_params, "random_state": 1}).fit(X[:40], y[:40])
    assert not np.array_equal(first.predict(X[40:50]), third.predict(X[40:50]))


@pytest.mark.parametrize("name", ["backbone", "use_features", "n_features"])
def test_module_parameters_that_twin_the_regressors_are_refused(name):
    net = SarcNetRegressor(**{f"module__{name}": 3}, use_images=False)
    with pytest.raises(ValueError, match=f"module__{name} clashes"):
        net.initialize()


def test_skorch_save_params_load_params_round_trip(scaled, tiny_params, tmp_path):
    X, y = scaled
    X, y = X[:24], y[:24]
    params = {**tiny_params, "max_epochs": 1, "train_split": None}
    before = SarcNetRegressor(**params).fit(X, y)
    files = {"f_params": tmp_path / "params.pt", "f_optimizer": tmp_path / "optimizer.pt",
             "f_history": tmp_path / "history.json"}
    before.save_params(**files)
    after = SarcNetRegressor(**params).initialize()
    after.load_params(**files)
    np.testing.assert_allclose(after.predict(X), before.predict(X), rtol=1e-5, atol=1e-6)
    assert len(after.history) == 1
    after.partial_fit(X, y)  # training goes on from the loaded weights and optimizer state
    assert len(after.history) == 2


def test_partial_fit_on_a_table_continues_training(scaled, tiny_params):
    X, y = scaled
    net = SarcNetRegressor(**{**tiny_params, "max_epochs": 1}, use_images=False, train_split=None)
    net.partial_fit(X[PROTOCOL_1][:20], y[:20])
    first = net.module_.head[-1].weight.detach().clone()
    net.partial_fit(X[PROTOCOL_1][20:40], y[20:40])
    assert len(net.history) == 2 and net.feature_names_ == PROTOCOL_1
    assert not torch.equal(first, net.module_.head[-1].weight)
    with pytest.raises(ValueError, match="missing column"):
        net.partial_fit(X[PROTOCOL_1[:3]][:20], y[:20])
