"""A fitted SarcNet pipeline as plain data and back: what a safe-format model file stores.

:func:`pipeline_settings` describes a pipeline made by
:func:`~sarcnet_sklearn.make_sarcnet_pipeline` (all but the network's weights);
:func:`pipeline_from_settings` rebuilds it. The settings of a file from someone
else are checked first (:mod:`sarcnet_sklearn.deploy._settings`).
"""

from __future__ import annotations

import os
from collections.abc import Collection

import numpy as np
import pandas as pd

from ..pipeline import (
    ProtocolSelector,
    SarcNetPipeline,
    make_sarcnet_pipeline,
    protocol_features,
)
from ..regressor import SarcNetRegressor

SETTINGS_STEPS = ["select", "scale", "model"]
"""The steps of a pipeline that :func:`pipeline_settings` can describe."""


def pipeline_settings(pipeline: SarcNetPipeline,
                      regressor_params: Collection[str] | None = None) -> dict:
    """The fitted pipeline as plain data (all but the network's weights).

    The settings are what :func:`pipeline_from_settings` needs to rebuild the
    pipeline: the protocol, the regressor's parameters, the feature and
    input columns, the scaler's statistics, the features' training range
    and the calibration errors (see :mod:`sarcnet_sklearn.intervals`).
    The weights are ``pipeline.regressor.module_.state_dict()``.

    Parameters
    ----------
    regressor_params : collection of str, optional
        The regressor parameters to include (those set are); default: every
        parameter whose value is plain data (classes, callables and other
        objects are left out).

    Returns
    -------
    settings : dict
        Of plain values (numbers, strings, lists, dicts, None).

    Raises
    ------
    ValueError
        When the pipeline was not made by :func:`make_sarcnet_pipeline`
        (with the default :class:`~sarcnet_sklearn.nn.SarcNetModule`) or
        is not fitted.

    Examples
    --------
    >>> from sarcnet_sklearn.deploy._pipeline_settings import pipeline_settings
    >>> settings = pipeline_settings(model)  # model: a fitted SarcNet pipeline
    >>> settings["protocol"], settings["scaler"]["columns"][:1]
    (1, ['cell_area'])
    """
    from ..intervals import conformity_scores
    from ..nn import SarcNetModule

    names = [name for name, _ in pipeline.steps]
    net = pipeline.steps[-1][1]
    if names != SETTINGS_STEPS or not (
        isinstance(pipeline[0], ProtocolSelector)
        and isinstance(net, SarcNetRegressor)
        and net.module is SarcNetModule
    ):
        raise ValueError(
            "only pipelines made by make_sarcnet_pipeline (with the default SarcNetModule) "
            "can be described as settings"
        )
    select, scale, net = pipeline
    if not hasattr(net, "module_") or not hasattr(scale, "named_transformers_"):
        raise ValueError("the pipeline is not fitted; fit it before saving")
    scaler = scale.named_transformers_["features"]
    all_params = net.get_params(deep=False)
    if regressor_params is None:
        params = {key: _plain(value) for key, value in all_params.items()}
        params = {key: value for key, value in params.items() if value is not _NOT_PLAIN}
    else:
        params = {key: _plain(all_params[key]) for key in regressor_params
                  if key in all_params}
    feature_range = None
    if getattr(net, "feature_min_", None) is not None:
        feature_range = {"min": np.asarray(net.feature_min_, dtype=float).tolist(),
                         "max": np.asarray(net.feature_max_, dtype=float).tolist()}
    scores = conformity_scores(pipeline)
    return {
        "protocol": (int(select.protocol) if isinstance(select.protocol, (int, np.integer))
                     else list(select.protocol)),
        "keeps_image": bool(select.keeps_image_),
        "regressor_params": params,
        "feature_names": list(net.feature_names_),
        "conformity_scores": None if scores is None else [float(s) for s in scores],
        "score_map": getattr(net, "score_map_", None),
        "seen_cells": getattr(net, "seen_cells_", None) or None,
        "input_columns": [str(column) for column in net.feature_names_in_],
        "scaler": {
            "columns": [str(column) for column in scaler.feature_names_in_],
            "mean": scaler.mean_.tolist(),
            "scale": scaler.scale_.tolist(),
            "var": scaler.var_.tolist(),
            "n_samples_seen": int(scaler.n_samples_seen_),
        },
        "feature_range": feature_range,
    }

def pipeline_from_settings(settings: dict, *,
                           device: str | None = None) -> SarcNetPipeline:
    """Rebuild a fitted pipeline from :func:`pipeline_settings`, with freshly initialised weights.

    Load the weights into ``pipeline.regressor.module_`` afterwards. The
    settings are trusted here: check settings from a file first
    (:func:`sarcnet_sklearn.deploy.load_model` does).

    Parameters
    ----------
    settings : dict
    device : str, optional
        Where to run the network; default: the saved device when available
        here, else the CPU.

    Examples
    --------
    >>> from sarcnet_sklearn.deploy._pipeline_settings import (
    ...     pipeline_from_settings, pipeline_settings)
    >>> copy = pipeline_from_settings(pipeline_settings(model), device="cpu")
    >>> weights = model.regressor.module_.state_dict()
    >>> copy.regressor.module_.load_state_dict(weights)
    <All keys matched successfully>
    """
    import torch

    from ..intervals import CONFORMITY_ATTRIBUTE

    params = dict(settings["regressor_params"])
    saved = str(params.get("device") or "cpu")
    if device is None:
        device = saved if not saved.startswith("cuda") or torch.cuda.is_available() else "cpu"
    params.update(weights=None, device=device)
    if params.get("score_range") is not None:
        params["score_range"] = tuple(params["score_range"])
    pipeline = make_sarcnet_pipeline(settings["protocol"], **params)
    select, scale, net = pipeline
    # Fit the transformers on a two-row stand-in with the right columns, then
    # give the scaler the statistics of the real training data.
    stand_in = pd.DataFrame({name: [0.0, 1.0] for name in protocol_features(
        settings["protocol"])})
    if settings["keeps_image"]:
        stand_in.insert(0, select.image_column, ["a", "b"])
    pipeline[:-1].fit(stand_in)
    columns = [str(name) for name in scale.get_feature_names_out()]
    if columns != settings["input_columns"]:
        raise ValueError(f"setting 'input_columns' {settings['input_columns']} does not "
                         f"match the pipeline's {columns}")
    scaler = scale.named_transformers_["features"]
    statistics = settings["scaler"]
    scaler.mean_ = np.asarray(statistics["mean"], dtype=np.float64)
    scaler.scale_ = np.asarray(statistics["scale"], dtype=np.float64)
    scaler.var_ = np.asarray(statistics["var"], dtype=np.float64)
    scaler.n_samples_seen_ = np.int64(statistics["n_samples_seen"])
    net.feature_names_ = list(settings["feature_names"])
    net.feature_names_in_ = np.asarray(settings["input_columns"], dtype=object)
    net.n_features_in_ = len(net.feature_names_in_)
    feature_range = settings.get("feature_range")
    net.feature_min_ = None if feature_range is None else np.asarray(feature_range["min"])
    net.feature_max_ = None if feature_range is None else np.asarray(feature_range["max"])
    net.initialize()
    net.score_map_ = settings.get("score_map")
    net.seen_cells_ = list(settings.get("seen_cells") or [])
    if settings.get("conformity_scores") is not None:
        scores = np.asarray(settings["conformity_scores"], dtype=np.float64)
        if scores.ndim != 1 or not np.isfinite(scores).all() or (scores < 0).any():
            raise ValueError("conformity_scores must be a list of non-negative numbers")
        setattr(net, CONFORMITY_ATTRIBUTE, scores)
    return pipeline


_NOT_PLAIN = object()


def _plain(value):
    """``value`` as plain data (numpy scalars and tuples converted), or ``_NOT_PLAIN``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        items = [_plain(item) for item in value]
        return _NOT_PLAIN if any(item is _NOT_PLAIN for item in items) else items
    return _NOT_PLAIN
