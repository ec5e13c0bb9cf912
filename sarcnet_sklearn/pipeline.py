"""Ready-made pipelines: SarcNet and the paper's linear-regression baseline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from ._columns import IMAGE_COLUMN, MEASURABLE_FEATURES, PROTOCOLS, STRUCTURE_PAGE
from ._recipe import IMAGE_SIZE_PX
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


class _NumericColumns(make_column_selector):
    """``make_column_selector(dtype_include=np.number)`` whose repr is the same in every process
    (the default repr holds a memory address, which makes pytest-xdist workers disagree on the
    ids of scikit-learn's estimator checks)."""

    def __init__(self):
        super().__init__(dtype_include=np.number)

    def __repr__(self) -> str:
        return "make_column_selector(dtype_include=np.number)"


def make_feature_scaler(keep_other_columns: bool) -> ColumnTransformer:
    """Standardise the numeric columns; pass the others (the image path) through or drop them."""
    return ColumnTransformer(
        [("features", StandardScaler(), _NumericColumns())],
        remainder="passthrough" if keep_other_columns else "drop",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")


@dataclass(frozen=True)
class ModelInputs:
    """What a SarcNet model reads from each row of a cell table.

    Parameters
    ----------
    features : list of str
        Feature columns, in the model's order.
    image_column : str or None
        Column of image paths (or in-memory images); None for a model that
        reads no images.
    structure_page : int
        Page (or channel) of each image file the model reads.
    image_size : int
        Side of the square the image is resized to.

    Examples
    --------
    >>> from sarcnet_sklearn import PROTOCOL_1
    >>> inputs = ModelInputs(PROTOCOL_1, image_size=32)
    >>> inputs.protocol, inputs.measurable
    (1, True)
    """

    features: list[str]
    image_column: str | None = IMAGE_COLUMN
    structure_page: int = STRUCTURE_PAGE
    image_size: int = IMAGE_SIZE_PX

    @classmethod
    def of(cls, model) -> ModelInputs:
        """The inputs of a fitted SarcNet pipeline (or bare regressor): see
        :attr:`SarcNetPipeline.inputs`."""
        return SarcNetPipeline.of(model).inputs

    @property
    def protocol(self) -> int | None:
        """The number of the protocol whose features these are, or None."""
        return next((number for number, names in PROTOCOLS.items()
                     if list(names) == list(self.features)), None)

    @property
    def measurable(self) -> bool:
        """Whether every feature can be measured from the images (a Protocol 1 model, perhaps
        with the sarcomere measures)."""
        return self.image_column is not None and set(self.features) <= set(MEASURABLE_FEATURES)


class NotSarcNetError(TypeError, ValueError):
    """A model that is not a SarcNet regressor or a pipeline ending in one.

    A TypeError, and a ValueError too, so that commands report it as a bad input file.
    """


class SarcNetPipeline(Pipeline):
    """A :class:`~sklearn.pipeline.Pipeline` ending in a :class:`SarcNetRegressor`.

    It knows its model: the fitted regressor (:attr:`regressor`), what it
    reads from a cell table (:attr:`inputs`), how a table reaches the
    regressor (:meth:`regressor_input`); :mod:`sarcnet_sklearn.deploy` turns it
    into plain data and back (what a safe-format model file stores).
    :meth:`of` gives this view of any fitted SarcNet model.

    ``fit(X, y, validation_data=(X_valid, y_valid))`` fits the transformers on
    ``X`` only, passes ``X_valid`` through them, and hands the result to the
    final estimator's ``fit`` as its ``validation_data`` (so the scaler never
    sees the validation cells, as in the paper).

    Examples
    --------
    >>> from sarcnet_sklearn import SarcNetPipeline, make_sarcnet_pipeline
    >>> pipe = make_sarcnet_pipeline(protocol=1, image_size=32)
    >>> type(pipe.regressor).__name__
    'SarcNetRegressor'
    >>> SarcNetPipeline.of(pipe.regressor).steps[0][0]
    'model'
    """

    @classmethod
    def of(cls, model) -> SarcNetPipeline:
        """The SarcNet pipeline that ``model`` is or holds.

        Parameters
        ----------
        model : Pipeline ending in a SarcNetRegressor, or a SarcNetRegressor
            A :class:`SarcNetPipeline` is returned as it is; another pipeline
            as a SarcNetPipeline sharing its (fitted) steps; a bare regressor
            as a one-step pipeline ``[("model", regressor)]``.

        Raises
        ------
        NotSarcNetError
            When ``model`` is neither (a TypeError and a ValueError).
        """
        if isinstance(model, cls):
            model.regressor  # noqa: B018 (checks the last step)
            return model
        if isinstance(model, Pipeline):
            pipeline = cls(**model.get_params(deep=False))
        else:
            pipeline = cls([("model", model)])
        pipeline.regressor  # noqa: B018
        return pipeline

    @property
    def regressor(self) -> SarcNetRegressor:
        """The final :class:`SarcNetRegressor` (fitted or not).

        Raises
        ------
        NotSarcNetError
            When the last step is something else.
        """
        net = self.steps[-1][1]
        if not isinstance(net, SarcNetRegressor):
            raise NotSarcNetError(
                "model must be a fitted SarcNetRegressor or a pipeline ending in one, "
                f"got {type(net).__name__}"
                + (" as the pipeline's last step" if len(self.steps) > 1 else "")
            )
        return net

    @property
    def fitted_regressor(self) -> SarcNetRegressor:
        """The final regressor, checked to be fitted (or at least initialised).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            When it is not fitted.
        """
        net = self.regressor
        check_is_fitted(net, "module_")
        return net

    @property
    def inputs(self) -> ModelInputs:
        """What the fitted model reads from each row: features, image column, page, size."""
        net = self.fitted_regressor
        check_is_fitted(net, "feature_names_")
        select = self.steps[0][1] if len(self.steps) > 1 else None
        features = list(getattr(select, "features_", net.feature_names_))
        return ModelInputs(
            features=features,
            image_column=net.image_column if net.use_images else None,
            structure_page=int(net.structure_page),
            image_size=int(net.image_size),
        )

    @property
    def score_range(self) -> tuple[float, float] | None:
        """The scale of the scores the regressor learned (None: any)."""
        score_range = self.regressor.score_range
        return None if score_range is None else (float(score_range[0]), float(score_range[1]))

    def with_test_time_augment(self, enabled: bool | None) -> SarcNetPipeline:
        """This fitted pipeline, predicting with or without test-time averaging.

        Parameters
        ----------
        enabled : bool or None
            The regressor's ``test_time_augment`` for the returned pipeline:
            True averages each cell's prediction over its image's 8 flips and
            quarter turns, False makes one forward pass. None: as it is.

        Returns
        -------
        pipeline : SarcNetPipeline
            See :meth:`for_prediction`: ``self`` when nothing changes, else a
            pipeline sharing this one's fitted steps, network and calibration.

        Examples
        --------
        >>> from sarcnet_sklearn import SarcNetPipeline
        >>> fast = SarcNetPipeline.of(model).with_test_time_augment(False)
        >>> shared = fast.regressor.module_ is SarcNetPipeline.of(model).regressor.module_
        >>> fast.regressor.test_time_augment, shared, model.regressor.test_time_augment
        (False, True, True)
        >>> fast.predict(cells.head(2)).shape
        (2,)
        """
        return self.for_prediction(test_time_augment=enabled)

    def for_prediction(self, *, test_time_augment: bool | None = None,
                       batch_size: int | None = None,
                       canonical_orientation: bool | None = None) -> SarcNetPipeline:
        """This fitted pipeline with other prediction settings; ``self`` is not changed.

        Parameters
        ----------
        test_time_augment : bool, optional
            See :meth:`with_test_time_augment`. None: as it is.
        batch_size : int, optional
            Cells per forward pass when predicting (the regressor's
            ``iterator_valid__batch_size``). None: as it is.
        canonical_orientation : bool, optional
            The regressor's ``canonical_orientation`` (False scores a model
            trained in canonical poses on the images as they lie, e.g. to see
            how much its score depends on a cell's pose). None: as it is.

        Returns
        -------
        pipeline : SarcNetPipeline
            ``self`` when nothing changes; otherwise a new pipeline sharing
            this one's fitted steps, network and calibration (nothing is
            copied), with its own regressor settings. ``self`` is unchanged,
            so threads predicting with it are not affected.

        Examples
        --------
        >>> from sarcnet_sklearn import SarcNetPipeline
        >>> big = SarcNetPipeline.of(model).for_prediction(batch_size=500)
        >>> big.regressor.get_params_for("iterator_valid"), "iterator_valid__batch_size" in vars(
        ...     model.regressor)
        ({'batch_size': 500}, False)
        """
        net = self.fitted_regressor
        changes = {}
        if test_time_augment is not None and bool(test_time_augment) != bool(
                net.test_time_augment):
            changes["test_time_augment"] = bool(test_time_augment)
        if canonical_orientation is not None and bool(canonical_orientation) != bool(
                getattr(net, "canonical_orientation", False)):
            changes["canonical_orientation"] = bool(canonical_orientation)
        if batch_size is not None and batch_size != net.get_params_for("iterator_valid").get(
                "batch_size", net.batch_size):
            changes["iterator_valid__batch_size"] = int(batch_size)
        if not changes:
            return self
        view = object.__new__(type(net))  # a shallow copy: skorch's pickling copies the weights
        view.__dict__.update(net.__dict__)
        view.__dict__.update(changes)
        return type(self)(**{**self.get_params(deep=False),
                             "steps": [*self.steps[:-1], (self.steps[-1][0], view)]})

    def regressor_input(self, X) -> pd.DataFrame:
        """``X`` as the final regressor receives it in ``predict(X)`` (through the other steps)."""
        if len(self.steps) == 1:
            return as_frame(X)
        return as_frame(self[:-1].transform(X))

    def fit(self, X, y=None, validation_data=None, **params):
        """Fit the steps, and the regressor on ``validation_data`` too (see the class).

        The fitted pipeline remembers a fingerprint of every cell of ``X`` and
        ``validation_data`` (:mod:`sarcnet_sklearn._fingerprint`), so that a report
        on cells it has seen can say so.
        """
        from ._fingerprint import remember_cells

        if validation_data is None:
            super().fit(X, y, **params)
            remember_cells(self, as_frame(X), replace=True)
            return self
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
        remember_cells(self, as_frame(X), as_frame(X_valid), replace=True)
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
    >>> pipe = make_sarcnet_pipeline(protocol=2, use_images=False, max_epochs=3, verbose=0)
    >>> search = GridSearchCV(pipe, {"select__protocol": [1, 2]}, scoring=spearman_scorer, cv=2)
    >>> # cells: scored cells, e.g. load_aics(make_synthetic_aics("synthetic_aics"))
    >>> search = search.fit(cells, cells["score"])
    >>> search.best_params_["select__protocol"] in (1, 2)
    True
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
