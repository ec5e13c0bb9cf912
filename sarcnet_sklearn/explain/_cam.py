"""Grad-CAM heatmaps of SarcNet's image branch, with pytorch-grad-cam."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted
from torch import nn
from tqdm.auto import tqdm

from .._batches import N_D4, d4_inverse, d4_transform
from .._chunks import aligned_chunk_size, chunk_slices, prefetched
from .._validation import as_frame
from ..images import as_image_source, read_plane
from ..regressor import SarcNetRegressor

DEFAULT_LAYERS = {
    "resnet18": "layer4.1",
    "densenet121": "features.norm5",
    "alexnet": "features.10",
    "convnext_tiny": "features.7",
    "efficientnet_b0": "features.8",
    "resnet50": "layer4.2",
}
"""Default Grad-CAM layer of each backbone, as a submodule name of the image branch."""


def final_regressor(model) -> SarcNetRegressor:
    """The fitted :class:`~sarcnet_sklearn.SarcNetRegressor` that is ``model`` or ends it."""
    net = model[-1] if isinstance(model, Pipeline) else model
    if not isinstance(net, SarcNetRegressor):
        raise TypeError(
            "model must be a fitted SarcNetRegressor or a pipeline ending in one, "
            f"got {type(net).__name__}"
            + (" as the pipeline's last step" if isinstance(model, Pipeline) else "")
        )
    check_is_fitted(net, "module_")
    return net


def split_model(model, X) -> tuple[SarcNetRegressor, pd.DataFrame]:
    """The fitted SarcNet regressor inside ``model`` and ``X`` as that regressor receives it.

    For a pipeline, ``X`` is passed through all steps but the last, so that the
    regressor sees exactly what it sees in ``model.predict(X)``.
    """
    net = final_regressor(model)
    if isinstance(model, Pipeline):
        return net, as_frame(model[:-1].transform(X))
    return net, as_frame(X)


def default_target_layer(module: nn.Module, backbone: str) -> nn.Module:
    """The layer Grad-CAM looks at by default: the image branch's last convolutional block.

    ResNet-18 and ResNet-50: the last block of ``layer4``; DenseNet-121:
    ``features.norm5`` (the normalised output of ``features.denseblock4``);
    AlexNet: the last convolution; ConvNeXt-Tiny: its last stage
    (``features.7``); EfficientNet-B0: its last convolution block
    (``features.8``, 1x1 convolution, batch norm, SiLU).

    Examples
    --------
    >>> from sarcnet_sklearn.nn import SarcNetModule
    >>> module = SarcNetModule(use_features=False)
    >>> type(default_target_layer(module, "resnet18")).__name__
    'BasicBlock'
    """
    if backbone not in DEFAULT_LAYERS:
        raise ValueError(f"no default Grad-CAM layer for backbone {backbone!r}; pass layer=")
    return module.image_branch.get_submodule(DEFAULT_LAYERS[backbone])


def resolve_layer(net: SarcNetRegressor, layer: str | nn.Module | None) -> nn.Module:
    module = _plain_module(net)
    if getattr(module, "image_branch", None) is None:
        raise ValueError(
            "Grad-CAM explains the image branch, but this model has none (use_images=False)"
        )
    if layer is None:
        return default_target_layer(module, net.backbone)
    if isinstance(layer, nn.Module):
        return layer
    try:
        return module.image_branch.get_submodule(layer)
    except AttributeError as exc:
        names = [name for name, _ in module.image_branch.named_children()]
        raise ValueError(
            f"layer {layer!r} is not a submodule of the {net.backbone} image branch "
            f"(top-level submodules: {names})"
        ) from exc


class ImageInputModule(nn.Module):
    """SarcNet with a float image input: what Grad-CAM differentiates.

    Takes the images already normalised by :meth:`SarcNetModule.normalize_images`
    (``(n, 3, h, w)`` float, so that they can carry a gradient) and combines them
    with fixed cell features, set per batch in :attr:`features`.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.features: torch.Tensor | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        parts = [self.module.image_branch(images)]
        if self.module.use_features:
            parts.append(self.module.feature_branch(self.features))
        return self.module.head(torch.cat(parts, dim=1))


@contextmanager
def preserved_state(module: nn.Module) -> Iterator[None]:
    """Evaluation mode and frozen weights inside; train/eval flags, ``requires_grad`` and
    ``.grad`` of every parameter restored on exit."""
    modes = {sub: sub.training for sub in module.modules()}
    parameters = list(module.parameters())
    flags = [p.requires_grad for p in parameters]
    grads = [p.grad for p in parameters]
    try:
        module.eval()
        for p in parameters:
            p.requires_grad_(False)
        yield
    finally:
        for sub, training in modes.items():
            sub.training = training
        for p, flag, grad in zip(parameters, flags, grads, strict=True):
            p.requires_grad_(flag)
            p.grad = grad


def grad_cam(
    model,
    X,
    *,
    layer: str | nn.Module | None = None,
    direction: str = "raise",
    batch_size: int = 16,
    progress: bool | None = None,
    test_time_augment: bool | None = None,
) -> list[np.ndarray]:
    """Grad-CAM heatmaps of SarcNet's image branch, one per cell, at the image's resolution.

    The heatmap shows where the image branch finds evidence that raises (or,
    with ``direction="lower"``, lowers) the predicted score: Grad-CAM of the
    scalar prediction (or of its negative) with respect to the activations of
    ``layer`` (pytorch-grad-cam's ``GradCAM`` with a ``RawScoresOutputTarget``),
    with each cell's own features held fixed. It is
    computed at the model's input size, then resized to the size of the image
    plane in the file (before the model's resizing) and scaled to [0, 1].
    The images are decoded a chunk at a time (the next while the current one
    is explained), so only the heatmaps themselves grow with the number of cells.

    Parameters
    ----------
    model : SarcNetRegressor or Pipeline
        Fitted; a pipeline (e.g. :func:`~sarcnet_sklearn.make_sarcnet_pipeline`)
        must end in a :class:`~sarcnet_sklearn.SarcNetRegressor`, and its other
        steps transform ``X`` first, exactly as in ``model.predict(X)``.
    X : DataFrame
        Cells, with the columns ``model.predict`` needs.
    layer : str, nn.Module or None, default=None
        Layer to explain: a submodule of the image branch, by name (e.g.
        ``"layer3"``) or itself. None: :func:`default_target_layer`.
    direction : {"raise", "lower"}, default="raise"
        Map the evidence for a higher score (standard Grad-CAM) or for a lower
        one. A regression score has both: a poorly organized cell is often
        explained better by what lowers its score.
    batch_size : int, default=16
        Cells per forward/backward pass.
    progress : bool or None, default=None
        Progress bar over batches; None shows one for more than 200 cells.
    test_time_augment : bool or None, default=None
        Average the heatmaps of the image's 8 flips and quarter turns (D4),
        each turned back to the image's own orientation first, as the model's
        prediction averages its scores: the heatmap of a turned cell is then
        the turned heatmap. None: as the model predicts
        (its ``test_time_augment``).

    Returns
    -------
    heatmaps : list of ndarray
        One float32 array per row of ``X``, of the shape of the cell's image
        plane, with values in [0, 1] (its maximum is 1, unless the map is all
        zero: nothing in the image raises the score).

    Raises
    ------
    TypeError
        When ``model`` is not a SarcNet regressor or a pipeline ending in one.
    sklearn.exceptions.NotFittedError
        When it is not fitted.
    ValueError
        For a model without image branch, an unknown layer or bad input.

    Examples
    --------
    >>> from sarcnet_sklearn.explain import grad_cam
    >>> heatmaps = grad_cam(pipeline, cells.head(4))  # doctest: +SKIP
    >>> heatmaps[0].shape == read_plane(cells["image_path"][0], 1).shape  # doctest: +SKIP
    True
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import RawScoresOutputTarget

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    net, Xt = split_model(model, X)
    target_layer = resolve_layer(net, layer)
    module = _plain_module(net)
    device = next(module.parameters()).device
    wrapper = ImageInputModule(module)
    target = RawScoresOutputTarget() if direction == "raise" else _negated_score
    if len(Xt) == 0:
        raise ValueError("X has no rows")
    if progress is None:
        progress = len(Xt) > 200
    if test_time_augment is None:
        test_time_augment = bool(net.test_time_augment)
    transforms = range(N_D4) if test_time_augment else range(1)

    def prepare(chunk: pd.DataFrame) -> tuple[dict, list[tuple[int, int]]]:
        sources = [as_image_source(value) for value in chunk[net.image_column]]
        shapes = [read_plane(source, net.structure_page).shape for source in sources]
        return net._net_input(chunk), shapes

    chunks = (Xt.iloc[part] for part in chunk_slices(len(Xt), aligned_chunk_size(batch_size)))
    heatmaps = []
    with preserved_state(module), tqdm(
        total=len(Xt), desc="Grad-CAM", unit="cell", disable=not progress
    ) as bar:
        cam = GradCAM(model=wrapper, target_layers=[target_layer])
        try:
            for inputs, shapes in prefetched(prepare, chunks):
                for batch in chunk_slices(len(shapes), batch_size):
                    cached = torch.as_tensor(inputs["images"][batch], device=device)
                    if module.use_features:
                        wrapper.features = torch.as_tensor(
                            inputs["features"][batch], device=device
                        )
                    total = 0.0
                    for t in transforms:
                        images = module.normalize_images(d4_transform(cached, t))
                        maps = cam(input_tensor=images.requires_grad_(True),
                                   targets=[target] * len(images))
                        total = total + d4_inverse(torch.from_numpy(maps), t).numpy()
                    heatmaps += map(_resize_heatmap, total / len(transforms), shapes[batch])
                    bar.update(len(cached))
        finally:
            cam.activations_and_grads.release()
    return heatmaps


DIRECTIONS = ("raise", "lower")


def _negated_score(model_output: torch.Tensor) -> torch.Tensor:
    return -model_output


def _plain_module(net: SarcNetRegressor) -> nn.Module:
    """The fitted torch module, unwrapped from ``torch.compile`` when compiled."""
    return getattr(net.module_, "_orig_mod", net.module_)


def _resize_heatmap(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a [0, 1] map to ``shape`` (height, width), rescaled to maximum 1."""
    height, width = shape
    resized = np.asarray(
        Image.fromarray(np.asarray(heatmap, dtype=np.float32)).resize(
            (width, height), Image.Resampling.BILINEAR
        ),
        dtype=np.float32,
    )
    resized = np.clip(resized, 0.0, None)
    peak = resized.max()
    return resized / peak if peak > 0 else resized
