"""Fine-tuning: start training from another model's weights, optionally freezing the image branch.

Both are skorch callbacks, so they work on any :class:`~sarcnet_sklearn.SarcNetRegressor`
(``callbacks=finetune_callbacks(...)``) and in :func:`~sarcnet_sklearn.deploy.train_model`
(``init_from=``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import torch
from skorch.callbacks import Callback, Freezer, Unfreezer

from .._columns import SCORE_RANGE
from .._recipe import IMAGE_SIZE_PX

IMAGE_BRANCH_PARAMETERS = "image_branch.*"
"""The learnable parameters of SarcNet's image branch, as skorch's parameter patterns name them."""

TORCHVISION_SOURCES = ("imagenet",)
"""``init_from`` values taken by torchvision's ``weights=`` machinery rather than a model file."""


def is_torchvision_weights(source) -> bool:
    """Whether ``init_from`` names torchvision weights ("imagenet" or a ``.pth``/``.pt`` file).

    Examples
    --------
    >>> is_torchvision_weights("imagenet"), is_torchvision_weights("lab_model.zip")
    (True, False)
    """
    if isinstance(source, str) and source in TORCHVISION_SOURCES:
        return True
    return isinstance(source, (str, PathLike)) and Path(source).suffix in (".pth", ".pt")


_DEFAULTS = {"protocol": 2, "image_size": IMAGE_SIZE_PX, "score_range": SCORE_RANGE}
"""train_model's defaults: with a model in ``init_from``, these mean "the model's"."""


@dataclass
class InitialSettings:
    """What a fine-tuned model takes from the model it starts from (:func:`initial_settings`)."""

    protocol: int
    image_size: int
    score_range: tuple[float, float] | None
    regressor_params: dict = field(default_factory=dict)
    source: object = None
    description: str | None = None
    kept: dict = field(default_factory=dict)

    def record(self, freeze_image_epochs: int) -> dict:
        """The entries of the training metadata that say how the training started."""
        return {"init_from": self.description, "freeze_image_epochs": freeze_image_epochs,
                **self.kept}


def initial_settings(init_from, *, protocol: int, image_size: int,
                     score_range: tuple[float, float] | None) -> InitialSettings:
    """The settings a training starting from ``init_from`` must use.

    A model (file or fitted pipeline) sets the protocol, image size, score
    range, backbone and head, and its pixel size is kept in the metadata; a
    value given that differs from both train_model's default and the model's
    is an error naming both. ``"imagenet"`` or a ``.pth`` file only sets the
    image branch's initial weights. None changes nothing.

    Examples
    --------
    >>> initial_settings(None, protocol=1, image_size=64, score_range=(1, 5)).image_size
    64
    """
    if init_from is None:
        return InitialSettings(protocol, image_size, score_range)
    if is_torchvision_weights(init_from):
        from ..nn import build_backbone

        try:  # fail before any cell is read when the weights are not at hand
            build_backbone("resnet18", str(init_from))
        except RuntimeError as exc:
            raise ValueError(f"init_from {str(init_from)!r}: {exc}") from exc
        return InitialSettings(protocol, image_size, score_range, {"weights": str(init_from)},
                               description=str(init_from))
    from ..pipeline import SarcNetPipeline

    pipeline, metadata = source_pipeline(init_from)
    model = SarcNetPipeline.of(pipeline)
    inputs, net = model.inputs, model.regressor
    if inputs.protocol is None:
        raise ValueError("init_from: the model's features are not one of the protocols")
    theirs = {"protocol": inputs.protocol, "image_size": inputs.image_size,
              "score_range": None if model.score_range is None else tuple(model.score_range)}
    given = {"protocol": protocol, "image_size": image_size,
             "score_range": None if score_range is None else tuple(score_range)}
    for name, value in given.items():
        if value != _DEFAULTS[name] and value != theirs[name]:
            raise ValueError(f"init_from: {name} {value!r} differs from the model's "
                             f"{theirs[name]!r}; leave it out to keep the model's")
    kept = {key: value for part in (metadata, metadata.get("training") or {})
            for key, value in part.items() if "pixel_size" in key}
    params = {"backbone": net.backbone, "head_activation": net.head_activation,
              "canonical_orientation": bool(getattr(net, "canonical_orientation", False))}
    description = (str(Path(init_from).resolve()) if isinstance(init_from, (str, PathLike))
                   else type(init_from).__name__)
    return InitialSettings(theirs["protocol"], theirs["image_size"], theirs["score_range"],
                           params, source=pipeline, description=description, kept=kept)


def source_pipeline(source, device: str | None = None):
    """The fitted SarcNet pipeline ``init_from`` names, with its metadata.

    ``source`` is a model file (either format: see
    :func:`~sarcnet_sklearn.deploy.load_model`) or a fitted pipeline.
    """
    from ..pipeline import SarcNetPipeline
    from ._model_file import load_model

    if isinstance(source, (str, PathLike)):
        if not Path(source).exists():
            raise ValueError(f"init_from: model file not found: {source}")
        return load_model(source, device=device or "cpu", return_metadata=True)
    pipeline = SarcNetPipeline.of(source)
    pipeline.fitted_regressor  # noqa: B018 (raises NotFittedError for an unfitted model)
    return pipeline, {}


class InitialWeights(Callback):
    """Load another model's network weights before the first epoch (a skorch callback).

    The weights are loaded at the start of a fresh training (``fit``), not
    when training continues (``partial_fit`` on a net that has epochs).

    Parameters
    ----------
    source : path, fitted SarcNet pipeline or SarcNetRegressor
        The model whose weights to start from; its network must have the same
        shapes (backbone, number of features).

    Examples
    --------
    >>> from sarcnet_sklearn import make_sarcnet_pipeline
    >>> from sarcnet_sklearn.deploy._finetune import InitialWeights
    >>> # base: a fitted SarcNet pipeline on the same protocol and image size
    >>> tuned = make_sarcnet_pipeline(2, image_size=32, max_epochs=1,
    ...                               callbacks=[InitialWeights(base)])  # doctest: +SKIP
    """

    def __init__(self, source) -> None:
        self.source = source

    def on_train_begin(self, net, X=None, y=None, **kwargs) -> None:
        if len(net.history) > 0:  # continuing (partial_fit): keep the weights trained so far
            return
        state = _state_dict(self.source)
        own = net.module_.state_dict()
        wrong = [name for name in own if name not in state or state[name].shape != own[name].shape]
        if wrong:
            raise ValueError(
                f"init_from: the model's network does not fit this one ({len(wrong)} tensors "
                f"differ, e.g. {wrong[0]!r}); fine-tune with the same backbone, protocol and "
                "feature columns as the model"
            )
        with torch.no_grad():
            net.module_.load_state_dict(state)


def _state_dict(source) -> dict:
    from ..regressor import SarcNetRegressor

    if isinstance(source, SarcNetRegressor):
        return source.module_.state_dict()
    pipeline, _ = source_pipeline(source)
    return pipeline.regressor.module_.state_dict()


class FrozenImageStatistics(Callback):
    """Keep the image branch in eval mode during its frozen epochs: batch norm stays as loaded.

    skorch's ``Freezer`` stops the gradients, but a frozen branch in train mode
    still normalises each batch by its own statistics and moves its batch-norm
    running means and variances towards the new cells. With this callback the
    frozen branch computes exactly what the model it came from computes (running
    statistics used and kept); from epoch ``epochs + 1`` it trains as usual.

    Parameters
    ----------
    epochs : int, default=1
        The first ``epochs`` epochs of a fit (those ``Freezer`` freezes).

    Examples
    --------
    >>> FrozenImageStatistics(epochs=2).epochs
    2
    """

    def __init__(self, epochs: int = 1):
        self.epochs = epochs

    def initialize(self):
        self.hook_ = None
        return self

    def on_epoch_begin(self, net, **kwargs):
        frozen = len(net.history) <= self.epochs
        branch = getattr(net.module_, "image_branch", None)
        if frozen and self.hook_ is None and branch is not None:
            # skorch sets train mode before each batch; the hook sets eval back, per forward
            self.hook_ = branch.register_forward_pre_hook(_eval_mode)
        elif not frozen:
            self._remove()

    def on_train_end(self, net, **kwargs):
        self._remove()

    def _remove(self):
        if getattr(self, "hook_", None) is not None:
            self.hook_.remove()
            self.hook_ = None


def _eval_mode(module, inputs) -> None:
    module.train(False)


def finetune_callbacks(init_from=None, freeze_image_epochs: int = 0) -> list:
    """skorch callbacks that start from ``init_from`` and freeze the image branch at first.

    Parameters
    ----------
    init_from : path, fitted pipeline or None
        A model to take the weights from (:class:`InitialWeights`); None keeps
        the net's own initial weights (random or ``weights=``).
    freeze_image_epochs : int, default=0
        Train only the feature branch and the head for this many epochs (the
        image branch's weights do not move, and its batch norm keeps and uses
        its running statistics: :class:`FrozenImageStatistics`), then
        everything: skorch's ``Freezer`` and ``Unfreezer``.

    Returns
    -------
    callbacks : list of (name, callback)

    Examples
    --------
    >>> [name for name, _ in finetune_callbacks(None, freeze_image_epochs=2)]
    ['freeze_image_branch', 'freeze_image_statistics', 'unfreeze_image_branch']
    """
    if isinstance(freeze_image_epochs, bool) or not isinstance(freeze_image_epochs, int) \
            or freeze_image_epochs < 0:
        raise ValueError(f"freeze_image_epochs must be a whole number >= 0, got "
                         f"{freeze_image_epochs!r}")
    callbacks = []
    if init_from is not None:
        callbacks.append(("init_from", InitialWeights(init_from)))
    if freeze_image_epochs:
        callbacks += [
            ("freeze_image_branch", Freezer(IMAGE_BRANCH_PARAMETERS, at=1)),
            ("freeze_image_statistics", FrozenImageStatistics(epochs=freeze_image_epochs)),
            ("unfreeze_image_branch", Unfreezer(IMAGE_BRANCH_PARAMETERS,
                                                at=freeze_image_epochs + 1)),
        ]
    return callbacks
