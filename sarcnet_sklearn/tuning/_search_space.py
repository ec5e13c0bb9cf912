"""The default hyperparameter search space of :func:`~sarcnet_sklearn.tuning.tune`."""

from __future__ import annotations

from collections.abc import Sequence

import optuna

FEATURE_WIDTHS = (32, 64, 128, 256)
"""Choices of the feature branch's first width ``w`` (widths ``w, 2w, 4w``; SarcNet: 128)."""


def default_search_space(
    trial: optuna.Trial,
    *,
    image_sizes: Sequence[int] = (128, 224),
    protocols: Sequence[int] = (1, 2),
    imagenet: bool = False,
    backbones: Sequence[str] = ("resnet18",),
    augment: bool = False,
) -> dict[str, object]:
    """Suggest the parameters of a SarcNet pipeline for one Optuna trial.

    The search space, centred on the paper's recipe (Protocol 2, Adam with
    learning rate 5e-4, batch size 40, image size 224, no head activation):

    - ``select__protocol``: one of ``protocols`` (trial parameter ``protocol``);
    - ``model__lr``: 1e-5 to 1e-2, log scale (``lr``);
    - ``model__optimizer__weight_decay``: 1e-7 to 1e-2, log scale (``weight_decay``);
    - ``model__batch_size``: 16, 32, 40 or 64 (``batch_size``);
    - ``model__patience``: stop after 5 to 20 epochs without improvement (``patience``);
    - ``model__image_size``: one of ``image_sizes`` (``image_size``);
    - ``model__head_activation``: False or True (``head_activation``);
    - ``model__weights``: None or "imagenet", only when ``imagenet`` (``weights``);
    - ``model__module__feature_widths``: ``(w, 2w, 4w)`` with w in 32, 64, 128, 256
      (``feature_width``; 128 is SarcNet's);
    - ``model__backbone``: one of ``backbones``, when more than one (``backbone``);
    - ``model__augment``: None or "d4", only when ``augment`` (``augment``).

    Test-time averaging is not searched: it costs nothing in training and
    follows the pipeline's setting (on by default).

    The number of epochs is a budget, not a hyperparameter: it is the
    pipeline's ``max_epochs`` (with early stopping after ``patience`` epochs
    and per-epoch pruning, few trials use all of it).

    To change the space, pass your own ``search_space(trial) -> dict`` to
    :func:`~sarcnet_sklearn.tuning.tune`, or fix this one's options with
    ``functools.partial``. Every worker of a shared study must use the same space.

    Parameters
    ----------
    trial : optuna.Trial
    image_sizes : sequence of int, default=(128, 224)
        Image sizes to try (the paper: 224).
    protocols : sequence of {1, 2}, default=(1, 2)
        Feature protocols to try; ``(1,)`` for a table with the Protocol 1
        features only (as ``sarcnet-sklearn features`` writes).
    imagenet : bool, default=False
        Also try ImageNet-initialised backbones; only when the weights can be
        downloaded or are in the torch hub cache.
    backbones : sequence of str, default=("resnet18",)
        Image branches to try, from :data:`sarcnet_sklearn.nn.BACKBONES`
        (e.g. ``("resnet18", "convnext_tiny", "efficientnet_b0")``).
    augment : bool, default=False
        Also try training without D4 augmentation (the paper's recipe); by
        default every trial keeps the pipeline's setting (D4).

    Returns
    -------
    params : dict
        Pipeline parameters for ``pipeline.set_params(**params)``.

    Examples
    --------
    >>> import optuna
    >>> from sarcnet_sklearn.tuning import default_search_space
    >>> trial = optuna.trial.FixedTrial({"protocol": 1, "lr": 1e-3, "weight_decay": 1e-5,
    ...     "batch_size": 32, "patience": 10, "image_size": 128, "head_activation": False,
    ...     "feature_width": 128})
    >>> default_search_space(trial)["model__lr"]
    0.001
    """
    params: dict[str, object] = {
        "select__protocol": trial.suggest_categorical("protocol", list(protocols)),
        "model__lr": trial.suggest_float("lr", 1e-5, 1e-2, log=True),
        "model__optimizer__weight_decay": trial.suggest_float("weight_decay", 1e-7, 1e-2, log=True),
        "model__batch_size": trial.suggest_categorical("batch_size", [16, 32, 40, 64]),
        "model__patience": trial.suggest_int("patience", 5, 20),
        "model__image_size": trial.suggest_categorical("image_size", list(image_sizes)),
        "model__head_activation": trial.suggest_categorical("head_activation", [False, True]),
    }
    if imagenet:
        params["model__weights"] = trial.suggest_categorical("weights", [None, "imagenet"])
    width = trial.suggest_categorical("feature_width", list(FEATURE_WIDTHS))
    params["model__module__feature_widths"] = (width, 2 * width, 4 * width)
    if len(backbones) > 1:
        params["model__backbone"] = trial.suggest_categorical("backbone", list(backbones))
    if augment:
        params["model__augment"] = trial.suggest_categorical("augment", [None, "d4"])
    return params
