"""Ready-made pipelines: SarcNet and the paper's linear-regression baseline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from ._columns import IMAGE_COLUMN, PROTOCOLS
from ._validation import as_frame, check_finite_features
from .images import as_image_source
from .regressor import SarcNetRegressor


def protocol_features(protocol: int | Sequence[str]) -> list[str]:
    """Feature columns of a protocol: 1 (5 features), 2 (11 features) or an explicit list."""
    if isinstance(protocol, (int, np.integer)) and not isinstance(protocol, bool):
        if int(protocol) not in PROTOCOLS:
            raise ValueError(f"protocol must be 1, 2 or a list of columns, got {protocol!r}")
        return list(PROTOCOLS[int(protocol)])
    if isinstance(protocol, str) or not isinstance(protocol, Sequence):
        raise ValueError(f"protocol must be 1, 2 or a list of columns, got {protocol!r}")
    return list(protocol)


class ProtocolSelector(TransformerMixin, BaseEstimator):
    """Keep the image column and the feature columns of one feature protocol.

    Checks that every feature column is present, numeric and finite, naming the
    column and row at fault otherwise, and returns a new DataFrame (the input
    is never modified).

    Parameters
    ----------
    protocol : {1, 2} or list of str, default=2
        1: :data:`~sarcnet_sklearn.PROTOCOL_1` (morphology and global alignment,
        5 features); 2: :data:`~sarcnet_sklearn.PROTOCOL_2` (plus local
        organization, 11 features); or an explicit list of feature columns.
    image_column : str or None, default="image_path"
        Kept when present in ``X``; None drops it.

    Attributes
    ----------
    features_ : list of str
        The protocol's feature columns.
    keeps_image_ : bool
        Whether the image column was present in ``fit`` and is passed on.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of str
        Names of the columns seen in ``fit``.

    Examples
    --------
    >>> import pandas as pd
    >>> from sarcnet_sklearn import PROTOCOL_2, ProtocolSelector
    >>> cells = pd.DataFrame({c: [0.5, 1.0] for c in PROTOCOL_2})
    >>> cells["image_path"] = ["a.tiff", "b.tiff"]
    >>> list(ProtocolSelector(protocol=1).fit_transform(cells).columns)
    ['image_path', 'cell_area', 'cell_aspect_ratio', 'max_coefficient_variation', \
'peak_height', 'peak_distance']
    """

    def __init__(self, protocol: int | Sequence[str] = 2, image_column: str | None = IMAGE_COLUMN):
        self.protocol = protocol
        self.image_column = image_column

    def fit(self, X, y=None):
        df = as_frame(X)
        self.features_ = protocol_features(self.protocol)
        check_finite_features(df, self.features_)
        self.keeps_image_ = self.image_column is not None and self.image_column in df.columns
        self.n_features_in_ = df.shape[1]
        self.feature_names_in_ = np.asarray(df.columns, dtype=object)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # X is a table: named numeric feature columns beside an image column of paths
        # (strings) or arrays; a dict of column arrays is accepted too.
        tags.input_tags.string = True
        tags.input_tags.dict = True
        tags.requires_fit = True
        return tags

    def transform(self, X) -> pd.DataFrame:
        check_is_fitted(self, "features_")
        df = as_frame(X)
        features = check_finite_features(df, self.features_)
        out = pd.DataFrame(features, columns=self.features_, index=df.index)
        if self.keeps_image_:
            if self.image_column not in df.columns:
                raise ValueError(f"X is missing the image column {self.image_column!r}")
            images = np.empty(len(df), dtype=object)
            images[:] = [as_image_source(value) for value in df[self.image_column]]
            out.insert(0, self.image_column, images)
        return out

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "features_")
        names = ([self.image_column] if self.keeps_image_ else []) + self.features_
        return np.asarray(names, dtype=object)


def make_feature_scaler(keep_other_columns: bool) -> ColumnTransformer:
    """Standardise the numeric columns; pass the others (the image path) through or drop them."""
    return ColumnTransformer(
        [("features", StandardScaler(), make_column_selector(dtype_include=np.number))],
        remainder="passthrough" if keep_other_columns else "drop",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")


class SarcNetPipeline(Pipeline):
    """A :class:`~sklearn.pipeline.Pipeline` whose ``fit`` also takes validation data.

    ``fit(X, y, validation_data=(X_valid, y_valid))`` fits the transformers on
    ``X`` only, passes ``X_valid`` through them, and hands the result to the
    final estimator's ``fit`` as its ``validation_data`` (so the scaler never
    sees the validation cells, as in the paper).
    """

    def fit(self, X, y=None, validation_data=None, **params):
        if validation_data is None:
            return super().fit(X, y, **params)
        final_name = self.steps[-1][0]
        prefix = f"{final_name}__"
        unknown = [key for key in params if not key.startswith(prefix)]
        if unknown:
            raise ValueError(
                f"with validation_data, only {prefix}* fit parameters are supported, got {unknown}"
            )
        X_valid, y_valid = validation_data
        transformers = self[:-1]
        Xt = transformers.fit_transform(X, y)
        self._final_estimator.fit(
            Xt,
            y,
            validation_data=(transformers.transform(X_valid), y_valid),
            **{key[len(prefix):]: value for key, value in params.items()},
        )
        return self

    def set_output(self, *, transform=None):
        """Set the output container of ``transform`` of every step but the regressor's inputs.

        The regressor reads a table with named columns, so the steps before it
        go on handing it pandas DataFrames whatever ``transform`` is.
        """
        super().set_output(transform=transform)
        for _, step in self.steps[:-1]:
            if hasattr(step, "set_output"):
                step.set_output(transform="pandas")
        return self


def make_sarcnet_pipeline(protocol: int | Sequence[str] = 2, **regressor_params) -> SarcNetPipeline:
    """SarcNet as a pipeline: select a protocol's features, standardise them, regress.

    Steps: ``select`` (:class:`ProtocolSelector`), ``scale`` (a
    ``ColumnTransformer`` standardising the features and passing the image
    column through) and ``model`` (:class:`SarcNetRegressor`).

    Parameters
    ----------
    protocol : {1, 2} or list of str, default=2
        Feature protocol, see :class:`ProtocolSelector`.
    **regressor_params
        Passed to :class:`SarcNetRegressor` (``image_size``, ``max_epochs``, ...).

    Returns
    -------
    pipeline : SarcNetPipeline

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sarcnet_sklearn import make_sarcnet_pipeline, spearman_scorer
    >>> pipe = make_sarcnet_pipeline(protocol=2, image_size=96, max_epochs=10)
    >>> search = GridSearchCV(pipe, {"select__protocol": [1, 2], "model__lr": [5e-4, 1e-3]},
    ...                       scoring=spearman_scorer, cv=3)
    >>> search.fit(cells, cells["score"])  # doctest: +SKIP
    """
    image_column = regressor_params.get("image_column", IMAGE_COLUMN)
    return SarcNetPipeline(
        [
            ("select", ProtocolSelector(protocol, image_column=image_column)),
            ("scale", make_feature_scaler(keep_other_columns=True)),
            ("model", SarcNetRegressor(**regressor_params)),
        ]
    )


def make_linear_baseline(protocol: int | Sequence[str] = 2) -> Pipeline:
    """The paper's baseline: linear regression on a protocol's standardised features.

    Examples
    --------
    >>> from sarcnet_sklearn import make_linear_baseline
    >>> baseline = make_linear_baseline(protocol=1)
    >>> [name for name, _ in baseline.steps]
    ['select', 'scale', 'model']
    """
    return Pipeline(
        [
            ("select", ProtocolSelector(protocol, image_column=None)),
            ("scale", make_feature_scaler(keep_other_columns=False)),
            ("model", LinearRegression()),
        ]
    )
