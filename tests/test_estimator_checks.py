"""scikit-learn's own estimator checks over the regressor, the selector and the pipelines.

X is a table of cells (an image column and named feature columns), as the input tags say;
most of scikit-learn's checks fit on bare numeric arrays, which these estimators refuse by
design, so those checks are expected failures, each with its reason. The rest must pass.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

from sarcnet_sklearn import (
    PROTOCOL_1,
    ProtocolSelector,
    SarcNetRegressor,
    make_linear_baseline,
    make_sarcnet_pipeline,
)

TINY = {"image_size": 16, "max_epochs": 1, "batch_size": 8, "verbose": 0, "random_state": 0,
        "device": "cpu", "module__feature_widths": (4,), "test_time_augment": False}

BARE_ARRAY = ("X must be a table with named columns (an image column and feature columns); "
              "the check passes a bare array")
BARE_ARRAY_CHECKS = [
    "check_complex_data",
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_dtype_object",
    "check_estimators_dtypes",
    "check_estimators_empty_data_messages",
    "check_estimators_fit_returns_self",
    "check_estimators_nan_inf",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_fit1d",
    "check_fit2d_1feature",
    "check_fit2d_1sample",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_n_features_in_after_fitting",
    "check_pipeline_consistency",
    "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input",
]
REGRESSOR_CHECKS = [
    "check_regressor_data_not_an_array",
    "check_regressor_multioutput",
    "check_regressors_int",
    "check_regressors_no_decision_function",
    "check_regressors_train",
    "check_requires_y_none",
    "check_supervised_y_2d",
    "check_supervised_y_no_nan",
]
TRANSFORMER_CHECKS = [
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
]
SKORCH = {
    "check_no_attributes_set_in_init": "skorch's NeuralNet sets history_, initialized_ and "
                                       "its callback lists in __init__",
    "check_set_params": "skorch's own parameters (callbacks, history, ...) reject the junk "
                        "values this check sets",
}
FAILURES = {
    BARE_ARRAY: r"^X must be a pandas DataFrame \(or a dict of column arrays\) with an "
                r"image-path column and feature columns, got ",
    SKORCH["check_no_attributes_set_in_init"]: r"should not set any attribute apart from "
                                               r"parameters during init",
    SKORCH["check_set_params"]: r"^'float' object has no attribute",
}
"""The error each expected failure must end in (or be caused by): the reason, as raised."""


def expected_failed_checks(estimator) -> dict[str, str]:
    names = list(BARE_ARRAY_CHECKS)
    names += TRANSFORMER_CHECKS if hasattr(estimator, "transform") else REGRESSOR_CHECKS
    if hasattr(estimator, "partial_fit"):
        names.append("check_estimators_partial_fit_n_features")
    expected = dict.fromkeys(names, BARE_ARRAY)
    if isinstance(estimator, SarcNetRegressor):
        expected.update(SKORCH)
    return expected


ESTIMATORS = [
    SarcNetRegressor(**TINY),
    ProtocolSelector(protocol=1),
    make_sarcnet_pipeline(1, **TINY),
    make_linear_baseline(1),
]


def _messages(exc: BaseException | None) -> list[str]:
    """The messages of ``exc`` and of the exceptions it was raised from or during."""
    messages = []
    while exc is not None:
        messages.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return messages


@parametrize_with_checks(ESTIMATORS)  # the expected failures are asserted below, each its reason
def test_scikit_learn_checks(estimator, check):
    name = getattr(check, "func", check).__name__
    reason = expected_failed_checks(estimator).get(name)
    if reason is None:
        check(estimator)
        return
    with pytest.raises(Exception) as failure:  # noqa: PT011 (the reason is matched below)
        check(estimator)
    messages = _messages(failure.value)
    assert any(re.search(FAILURES[reason], message) for message in messages), (
        f"{name} failed for another reason than {reason!r}: {messages}")
    pytest.xfail(reason)


def _table(n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(n, len(PROTOCOL_1))), columns=PROTOCOL_1)
    table.insert(0, "image_path", list(rng.integers(0, 256, (n, 16, 16), dtype=np.uint8)))
    return table


def test_input_tags_say_x_is_a_table_with_an_image_column():
    for estimator in (SarcNetRegressor(), ProtocolSelector()):
        tags = get_tags(estimator).input_tags
        assert tags.string and tags.dict and not tags.sparse and not tags.allow_nan
    assert not get_tags(SarcNetRegressor(use_images=False)).input_tags.string
    assert get_tags(SarcNetRegressor(random_state=0)).non_deterministic is False


def test_selector_records_the_columns_it_was_fitted_on():
    table = _table()
    selector = ProtocolSelector(protocol=1).fit(table)
    assert list(selector.feature_names_in_) == list(table.columns)
    assert selector.n_features_in_ == len(table.columns)


@pytest.mark.parametrize("container", ["pandas", "default"])
def test_pipeline_wide_set_output_keeps_fit_working(container):
    table, y = _table(), np.linspace(1, 5, 12)
    model = make_sarcnet_pipeline(1, **{**TINY, "train_split": None})
    model.set_output(transform=container).fit(table, y)
    assert model.predict(table).shape == (12,)
    baseline = make_linear_baseline(1).set_output(transform=container).fit(table, y)
    assert baseline.predict(table).shape == (12,)


# -- what the expected failures would have checked, on a small table of real cells ---------


@pytest.fixture(scope="module")
def small(cells):
    """16 synthetic AICS cells (image files and the Protocol 2 features) and their scores."""
    return cells.iloc[:16].reset_index(drop=True)


def _same_params(before: dict, after: dict) -> bool:
    """Every parameter the same object or value; skorch's default callbacks (the
    ``model__callbacks__<name>`` entries, not the ``callbacks`` parameter) are made anew
    by each ``initialize``, as skorch does."""
    return before.keys() == after.keys() and all(
        after[key] is value or after[key] == value for key, value in before.items()
        if not key.startswith("model__callbacks__"))


@pytest.mark.parametrize("make", [lambda: make_sarcnet_pipeline(1, **TINY, train_split=None),
                                  lambda: make_linear_baseline(1)], ids=["sarcnet", "baseline"])
def test_fit_keeps_the_parameters_and_fitting_twice_gives_the_same_model(small, make):
    model = make()
    before = model.get_params(deep=True)
    first = model.fit(small, small["score"]).predict(small)
    assert _same_params(before, model.get_params(deep=True))
    again = model.fit(small, small["score"]).predict(small)
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(make().fit(small, small["score"]).predict(small), first)


def test_pickled_model_predicts_the_same_and_row_order_does_not_matter(small):
    import pickle

    model = make_sarcnet_pipeline(1, **TINY, train_split=None).fit(small, small["score"])
    scores = model.predict(small)
    copy = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(copy.predict(small), scores)
    order = np.random.default_rng(1).permutation(len(small))
    np.testing.assert_allclose(model.predict(small.iloc[order]), scores[order], rtol=1e-5)
    np.testing.assert_allclose(model.predict(small.iloc[[3]]), scores[[3]], rtol=1e-5)
