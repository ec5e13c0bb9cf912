"""scikit-learn's own estimator checks over the regressor, the selector and the pipelines.

X is a table of cells (an image column and named feature columns), as the input tags say;
most of scikit-learn's checks fit on bare numeric arrays, which these estimators refuse by
design, so those checks are expected failures, each with its reason. The rest must pass.
"""

from __future__ import annotations

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


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks,
                         xfail_strict=True)
def test_scikit_learn_checks(estimator, check):
    check(estimator)


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
