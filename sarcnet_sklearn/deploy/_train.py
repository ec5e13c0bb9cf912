"""Training a deployable SarcNet model from a table of cells, with a record of how."""

from __future__ import annotations

import warnings
from os import PathLike

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from .._columns import (
    CELL_MASK_PAGE,
    IMAGE_COLUMN,
    PIXEL_SIZE_UM,
    SCORE_RANGE,
    STRUCTURE_PAGE,
    TARGET_COLUMN,
)
from .._doors import option
from .._pixel_size import MODEL_PIXEL_SIZE_KEY
from .._recipe import (
    BATCH_SIZE,
    FINETUNE_LR_FACTOR,
    IMAGE_SIZE_PX,
    LEARNING_RATE,
    MAX_EPOCHS,
)
from ..pipeline import ModelInputs
from ._checks import check_cells, with_images
from ._settings import check_training_settings


class ExcludedCellsWarning(UserWarning):
    """Some cells could not be used for training and were left out."""


VALIDATION_FOLDS = 10
"""Folds of the validation cells for their cross-fitted scores (fewer cells: one cell each)."""

MIN_FIELDS_TO_SPLIT = 5
"""A validation fraction is drawn as whole fields when the cells come from at least this many."""


def _cross_fitted_predictions(pipeline, cells: pd.DataFrame, observed, *,
                              random_state) -> np.ndarray:
    """Scores of the validation ``cells`` with a score map fitted without each of them.

    The fitted score map was fitted on these very cells: with it their metrics are
    in-sample (on 2 cells, an affine map meets both scores exactly: MAE 0, R² 1). Each fold
    gets the map fitted on the other folds' raw predictions; one that cannot be fitted
    (fewer than 2 cells) leaves the raw predictions.
    """
    from .._score_map import apply_score_map, fit_score_map

    net = pipeline.regressor
    fitted = getattr(net, "score_map_", None)
    if fitted is None:
        return pipeline.predict(cells)
    net.score_map_ = None
    try:
        raw = np.asarray(pipeline.predict(cells), dtype=np.float64)
    finally:
        net.score_map_ = fitted
    observed = np.asarray(observed, dtype=np.float64)
    folds = np.random.default_rng(random_state).permutation(len(raw)) % VALIDATION_FOLDS
    scores = raw.copy()
    for fold in np.unique(folds):
        held = folds == fold
        scores[held] = apply_score_map(fit_score_map(raw[~held], observed[~held]), raw[held])
    return scores


def train_model(
    cells: pd.DataFrame,
    *,
    protocol: int = 2,
    target: str = TARGET_COLUMN,
    validation: str | float = 0.2,
    image_size: int = IMAGE_SIZE_PX,
    max_epochs: int = MAX_EPOCHS,
    lr: float | None = None,
    batch_size: int = BATCH_SIZE,
    random_state: int | None = 0,
    device: str | None = None,
    mask_page: int | None = None,
    progress: bool = False,
    source: str | PathLike | None = None,
    score_range: tuple[float, float] | None = SCORE_RANGE,
    test_time_augment: bool = True,
    pixel_size: float | None = None,
    consistency: float = 0.0,
    canonical_orientation: bool = False,
    init_from=None,
    freeze_image_epochs: int = 0,
    cv: int = 0,
):
    """Fit a SarcNet pipeline on a table of cells; return it with its metadata.

    Every row is checked first (image readable and not blank, features finite,
    score present); rows that fail are left out with an
    :class:`ExcludedCellsWarning`. A Protocol 1 model measures its features
    from the images (structure page 1, cell-mask page ``mask_page``) when the
    table lacks them.

    Parameters
    ----------
    cells : DataFrame
        One row per cell: ``image_path``, the protocol's feature columns
        (optional for Protocol 1) and the ``target`` score.
    protocol : {1, 2}, default=2
    target : str, default="score"
        Column with the 1-5 scores to learn.
    validation : "paper" or float, default=0.2
        ``"paper"``: the paper's split (:func:`~sarcnet_sklearn.datasets.paper_split`,
        needs ``expert_1``; its test cells are scored too and left out of
        training). A float: that fraction of the cells, drawn at random with
        ``random_state``, for validation (the best epoch on it is kept), as whole
        fields when a ``field`` column names every cell's field and there are at
        least 5 (cells of one field are alike, so a cell split would flatter the
        validation metrics); 0: no validation, all epochs are trained and the
        last one kept.
    image_size, max_epochs, lr, batch_size, random_state, device
        Passed to :class:`~sarcnet_sklearn.SarcNetRegressor`. The same
        ``random_state`` on the same machine gives the same model. ``lr``
        defaults to the paper's 5e-4, and to a fifth of it when fine-tuning
        (``init_from``; :data:`~sarcnet_sklearn._recipe.FINETUNE_LR_FACTOR`).
    mask_page : int, optional
        Page of the cell mask when features are measured (default 9).
    progress : bool, default=False
        Show progress bars and the per-epoch table.
    source : str or path-like, optional
        Where the cells came from, recorded in the metadata.
    score_range : tuple (low, high) or None, default=(1.0, 5.0)
        The scale of the scores (see :class:`~sarcnet_sklearn.SarcNetRegressor`):
        scores outside it are an error, predictions are clipped to it.
    test_time_augment : bool, default=True
        Score each cell as the mean over its image's 8 flips and quarter
        turns (see :class:`~sarcnet_sklearn.SarcNetRegressor`); False: one
        forward pass per cell, 8x faster and orientation-dependent.
    pixel_size : float, optional
        Micrometres per pixel of every cell, overriding a ``pixel_size`` column
        and the files' metadata (0.12, the AICS images', where none gives one,
        with a warning). Features measured from the images are measured at each
        cell's pixel size, their texture at 0.12 um/px, the pixel size the model
        file records (``training["pixel_size_um"]``, and the fitted pipeline's
        ``pixel_size_um_``).
    consistency : float, default=0.0
        Weight of the training loss's consistency term between two random
        flips or quarter turns of a cell (see
        :class:`~sarcnet_sklearn.SarcNetRegressor`); 0: off.
    canonical_orientation : bool, default=False
        Train and score every cell in its canonical pose among its 8 flips and
        quarter turns: one forward pass, exactly invariant to them (see
        :class:`~sarcnet_sklearn.SarcNetRegressor`).
    init_from : path, fitted pipeline, "imagenet" or None, default=None
        Fine-tune: start from this model's network weights (a model file of
        either format, or a fitted pipeline), keeping its protocol, backbone,
        image size, score range and pixel size (``image_size``, ``protocol``
        and ``score_range`` must then be left at their defaults or agree with
        the model); the feature scaling is refitted on ``cells``. ``"imagenet"``
        or a ``.pth`` file: torchvision's weights for the image branch
        (see :func:`sarcnet_sklearn.nn.build_backbone`).
    freeze_image_epochs : int, default=0
        Train only the feature branch and the head for this many epochs first
        (skorch's ``Freezer``/``Unfreezer``).
    cv : int, default=0
        When 2 or more: also train ``cv`` models on folds of the training cells
        (grouped by ``field`` when the table has one) and report how well
        their scores of the held-out cells agree with ``target``
        (``metadata["agreement"]``: Spearman with a 95 % bootstrap interval,
        see :func:`sarcnet_sklearn.agreement.cross_validated_agreement`).

    Returns
    -------
    pipeline : SarcNetPipeline
        Fitted.
    metadata : dict
        ``training`` (cells used and left out, score range, settings),
        ``metrics`` (on validation and, for the paper split, test cells),
        ``metrics_ci95`` (their bootstrap intervals, resampling whole fields
        when the cells' ``field`` is known: ``metrics_ci95_resampling`` says
        which) and ``calibration`` (None without validation cells), ready for
        :func:`~sarcnet_sklearn.deploy.save_model`.

    The score map (:mod:`sarcnet_sklearn._score_map`) is fitted on the
    validation cells, so their metrics (and the soundness checks) use
    cross-fitted scores: each cell's score comes from a map fitted on the
    other folds (:data:`VALIDATION_FOLDS`), never from one that saw it.

    With validation cells, the model is also calibrated on them for
    prediction intervals (:func:`~sarcnet_sklearn.intervals.calibrate`). They
    also picked the best epoch, which can make the intervals slightly narrower
    than their nominal coverage on a small validation set; calibrate on cells
    used for nothing else when that matters.

    Raises
    ------
    ValueError
        For a bad setting, scores outside ``score_range``, or when no cell can
        be used.
    KeyboardInterrupt
        When training is interrupted (Ctrl-C): no half-trained model is returned.

    Warns
    -----
    ExcludedCellsWarning
        For cells left out of training.
    UserWarning
        When ``validation="paper"`` cannot be used on these cells or the
        score bins are too small for a stratified split (a plain random split
        is then used).

    Examples
    --------
    >>> from sarcnet_sklearn.deploy import save_model, train_model
    >>> # cells: scored cells, e.g. load_aics(make_synthetic_aics("synthetic_aics"))
    >>> model, info = train_model(cells, validation=0.25, image_size=32, max_epochs=1)
    >>> training = info["training"]
    >>> training["n_cells"] + training["n_validation"] == len(cells), training["n_excluded"]
    (True, 0)
    >>> save_model(model, "sarcnet.joblib", metadata=info)
    PosixPath('sarcnet.joblib')
    """
    from .._fingerprint import remember_cells
    from ..datasets import paper_split
    from ..datasets._kind import data_kind
    from ..intervals import calibrate, interval_half_width
    from ..metrics import bootstrap_intervals, field_groups, regression_report, resampling_note
    from ..pipeline import make_sarcnet_pipeline, protocol_features
    from ..regressor import DEFAULT_DEVICE
    from ..soundness import soundness_problems, warn_if_unsound
    from ._finetune import finetune_callbacks, initial_settings

    start = initial_settings(init_from, protocol=protocol, image_size=image_size,
                             score_range=score_range)
    protocol, image_size, score_range = start.protocol, start.image_size, start.score_range
    if protocol not in (1, 2):
        raise ValueError(f"protocol must be 1 or 2, got {protocol!r}")
    for name, value in (("max_epochs", max_epochs), ("batch_size", batch_size),
                        ("image_size", image_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    check_training_settings(image_size=int(image_size), batch_size=int(batch_size))
    if lr is None:
        lr = LEARNING_RATE * (FINETUNE_LR_FACTOR if init_from is not None else 1.0)
    if not (isinstance(lr, (int, float)) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    fraction = isinstance(validation, (int, float)) and not isinstance(validation, bool)
    if not (validation == "paper" or (fraction and 0 <= validation < 1)):
        raise ValueError(
            f"validation must be 'paper' or a fraction in [0, 1), got {validation!r}"
        )
    if target not in cells.columns:
        raise ValueError(f"the input has no {target!r} column to learn from "
                         f"(columns: {list(cells.columns)})")
    mask_page = CELL_MASK_PAGE if mask_page is None else mask_page
    inputs = ModelInputs(protocol_features(protocol), IMAGE_COLUMN, STRUCTURE_PAGE, image_size)
    measured = any(name not in cells.columns for name in inputs.features)
    # features measured from the images: at each cell's pixel size, their texture at the
    # model's (recorded in the model file), so that cells of any pixel size agree
    table, errors, images, sizes, assumed = check_cells(
        cells, inputs, mask_page=mask_page, progress=progress, pixel_size=pixel_size,
        model_pixel_size=PIXEL_SIZE_UM)
    scores = pd.to_numeric(table[target], errors="coerce").astype(np.float64)
    no_score = ~np.isfinite(scores.to_numpy()) & errors.isna().to_numpy()
    errors[no_score] = f"no finite {target!r}"
    table[target] = scores
    if score_range is not None:
        low, high = score_range
        outside = np.flatnonzero(((scores < low) | (scores > high)).to_numpy())
        if len(outside):
            raise ValueError(
                f"{len(outside)} {target!r} value(s) outside the score range [{low:g}, {high:g}], "
                f"e.g. {scores.iloc[outside[0]]:g} in row {outside[0]}; declare the scale of "
                f"your scores ({option('score_range')})"
            )
    usable = errors.isna().to_numpy()
    if not usable.any():
        raise ValueError(f"none of the {len(table)} cells can be used; first reason: "
                         f"{errors.iloc[0]}")
    if not usable.all():
        first = errors.dropna()
        warnings.warn(
            f"{len(first)} of {len(table)} cells left out of training, e.g. row "
            f"{first.index[0]}: {first.iloc[0]}",
            ExcludedCellsWarning,
            stacklevel=2,
        )
    # each image was decoded once, by the checks: the model reads those planes, not the files
    table = with_images(table, errors, images, inputs.image_column)[usable]
    used = table[target].to_numpy()
    if np.ptp(used) == 0:
        warnings.warn(
            f"all {len(used)} training scores are {used[0]:g}: the model cannot learn which "
            "cells are better organized, and Spearman's correlation is undefined (NaN); train "
            "on cells of several scores",
            UserWarning,
            stacklevel=2,
        )

    test = None
    split = "paper" if validation == "paper" else f"random, validation {validation}"
    if validation == "paper":
        try:
            train, valid, test = paper_split(table)
        except ValueError as exc:  # too few cells per score for the stratified split
            warnings.warn(f"{exc}; using a plain random validation split of 20 % instead",
                          UserWarning, stacklevel=2)
            split = "random, validation 0.2 (too few cells for the paper's split)"
            train, valid = train_test_split(table, test_size=0.2, random_state=random_state)
    elif validation > 0:
        fields = field_groups(table)
        if fields is not None and len(set(fields)) >= MIN_FIELDS_TO_SPLIT:
            # cells of one field are alike: no field on both sides of the split
            split = f"by field, validation {validation}"
            parts = GroupShuffleSplit(n_splits=1, test_size=validation,
                                      random_state=random_state).split(table, groups=fields)
            rows, rest = next(parts)
            train, valid = table.iloc[rows], table.iloc[rest]
        else:
            train, valid = train_test_split(table, test_size=validation,
                                            random_state=random_state)
    else:
        train, valid = table, None
    if valid is not None and len(valid) < 2:
        raise ValueError(f"only {len(valid)} validation cell(s); use more cells or "
                         "validation 0")

    def build(verbose: int = int(progress)):
        return make_sarcnet_pipeline(
            protocol,
            image_size=image_size,
            max_epochs=max_epochs,
            lr=lr,
            batch_size=batch_size,
            random_state=random_state,
            device=device or DEFAULT_DEVICE,
            train_split=None,
            verbose=verbose,
            score_range=score_range,
            test_time_augment=test_time_augment,
            consistency=consistency,
            **{"canonical_orientation": canonical_orientation, **start.regressor_params},
            callbacks=finetune_callbacks(start.source, freeze_image_epochs),
        )

    pipeline = build()
    pipeline.fit(
        train,
        train[target],
        validation_data=None if valid is None else (valid, valid[target]),
    )
    net = pipeline.regressor
    if getattr(net, "fit_interrupted_", False):
        raise KeyboardInterrupt(
            f"training interrupted after epoch {len(net.history_)} of {max_epochs}"
        )
    metrics, metrics_ci, resampling, predictions = {}, {}, {}, {}
    for name, part in (("validation", valid), ("test", test)):
        if part is not None:
            predictions[name] = (_cross_fitted_predictions(pipeline, part, part[target],
                                                           random_state=random_state)
                                 if name == "validation" else pipeline.predict(part))
            metrics[name] = regression_report(part[target], predictions[name])
            groups = field_groups(part)  # cells of one field are not independent
            metrics_ci[name] = bootstrap_intervals(part[target], predictions[name], groups=groups)
            resampling[name] = resampling_note(groups)
    calibration = None
    if valid is not None:
        calibrate(pipeline, valid, valid[target])
        calibration = {
            "cells": "validation",
            "n_cells": len(valid),
            "half_width_90": (interval_half_width(pipeline, 0.9)
                              if len(valid) >= 9 else None),
        }
    # the model remembers its cells by their image files (the table holds decoded images)
    parts = [part for part in (train, valid) if part is not None]
    if all(part.index.isin(cells.index).all() for part in parts):
        remember_cells(pipeline, *[cells.loc[part.index] for part in parts], replace=True)
    problems = []
    if valid is not None:
        half_width = (calibration or {}).get("half_width_90")
        problems = soundness_problems(
            valid[target], predictions["validation"], score_range=score_range,
            interval_width=None if half_width is None else 2 * half_width)
        warn_if_unsound(problems, "the trained model")
    agreement = None
    if cv:
        from ..agreement import cross_validated_agreement

        agreement = cross_validated_agreement(lambda: build(verbose=0), train, target,
                                              n_splits=cv, random_state=random_state)
    excluded = errors.dropna()
    training = {
        "source": None if source is None else str(source),
        "data_kind": data_kind(cells, source),
        "target": target,
        "n_cells": len(train),
        "n_validation": 0 if valid is None else len(valid),
        "n_test": 0 if test is None else len(test),
        "n_excluded": len(excluded),
        "excluded_examples": [
            {"row": int(row), "error": str(message)} for row, message in excluded.head(5).items()
        ],
        "split": split,
        "score_min": float(train[target].min()),
        "score_max": float(train[target].max()),
        "score_mean": float(train[target].mean()),
        "features_measured": measured,
        MODEL_PIXEL_SIZE_KEY: PIXEL_SIZE_UM,
        "cells_pixel_size_um": ([float(np.nanmin(sizes)), float(np.nanmax(sizes))]
                                if np.isfinite(sizes).any() else None),
        "cells_pixel_size_assumed": int(assumed.sum()),
        "mask_page": mask_page,
        "image_size": image_size,
        "max_epochs": max_epochs,
        "epochs_trained": len(net.history_),
        "lr": lr,
        "batch_size": batch_size,
        "random_state": random_state,
        "device": str(net.device),
        **start.record(freeze_image_epochs),
    }
    pipeline.pixel_size_um_ = PIXEL_SIZE_UM
    training["n_fingerprinted"] = len(getattr(pipeline.regressor, "seen_cells_", ()))
    return pipeline, {"training": training, "metrics": metrics, "metrics_ci95": metrics_ci,
                      "metrics_ci95_resampling": resampling,
                      "calibration": calibration, "soundness": problems,
                      "agreement": agreement}
