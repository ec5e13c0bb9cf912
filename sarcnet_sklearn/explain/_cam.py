"""Grad-CAM heatmaps of SarcNet's image branch, with pytorch-grad-cam."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from .._batches import N_D4, canonical_d4, d4_inverse, d4_transform
from .._chunks import aligned_chunk_size, chunk_slices, prefetched
from .._console import progress_bar
from ..images import as_image_source, read_plane
from ..pipeline import SarcNetPipeline
from ..regressor import SarcNetRegressor

CAM_LAYERS = {
    "resnet18": ("layer4.1", "layer3.1", "layer2.1", "layer1.1"),
    "resnet50": ("layer4.2", "layer3.5", "layer2.3", "layer1.2"),
    "densenet121": ("features.norm5", "features.denseblock3", "features.denseblock2",
                    "features.denseblock1"),
    "alexnet": ("features.10", "features.3", "features.0"),
    "convnext_tiny": ("features.7", "features.5", "features.3", "features.1"),
    "efficientnet_b0": ("features.8", "features.5", "features.3", "features.2"),
}
"""The Grad-CAM layers of each backbone, deepest first, as submodule names of the image branch.

The last block of each stage (ResNets, ConvNeXt-Tiny, EfficientNet-B0, DenseNet-121)
or the last convolution at each resolution (AlexNet); each stage halves the map's side.
"""
MIN_CAM_SIDE = 7
"""Fewest activations per side of the default Grad-CAM layer's map (7 x 7 for all six
backbones at the paper's 224 px): a coarser map, upsampled to the cell, is a smooth blob
or ramp that shows nothing of where in the cell the evidence lies."""

def default_layer_name(backbone: str, image_size: int = 224) -> str:
    """Name of the layer Grad-CAM looks at by default, for images of ``image_size`` pixels.

    The deepest layer of :data:`CAM_LAYERS` whose map has at least
    :data:`MIN_CAM_SIDE` activations per side at that input size (the shallowest
    one when none has): the last convolutional block at the paper's 224 px,
    earlier blocks for the small images of quick models (ResNet-18 halves the
    image five times, so at 64 px its last block is a 2 x 2 map).

    Examples
    --------
    >>> [default_layer_name("resnet18", size) for size in (224, 128, 64, 32)]
    ['layer4.1', 'layer3.1', 'layer2.1', 'layer1.1']
    >>> default_layer_name("alexnet", 64)
    'features.3'
    """
    if backbone not in CAM_LAYERS:
        raise ValueError(f"no default Grad-CAM layer for backbone {backbone!r}; pass layer=")
    sides = map_sides(backbone, int(image_size))
    for name in CAM_LAYERS[backbone]:
        if sides[name] >= MIN_CAM_SIDE:
            return name
    return CAM_LAYERS[backbone][-1]


@cache
def map_sides(backbone: str, image_size: int) -> dict[str, int]:
    """The shorter side of each :data:`CAM_LAYERS` map of ``backbone`` for a square image.

    Measured on the architecture built on PyTorch's ``meta`` device (shapes
    only, no weights, no arithmetic). A layer that the image is too small to
    reach (e.g. AlexNet at 32 px fails in its pooling) has side 0.

    Examples
    --------
    >>> map_sides("resnet18", 64)
    {'layer4.1': 2, 'layer3.1': 4, 'layer2.1': 8, 'layer1.1': 16}
    """
    from ..nn import build_backbone

    with torch.device("meta"):
        branch, _ = build_backbone(backbone)
    sides = dict.fromkeys(CAM_LAYERS[backbone], 0)

    def recorder(name: str):
        def record(_module, _inputs, output) -> None:
            sides[name] = min(output.shape[-2:])
        return record

    for name in sides:
        branch.get_submodule(name).register_forward_hook(recorder(name))
    try:
        branch.eval()(torch.zeros((1, 3, image_size, image_size), device="meta"))
    except RuntimeError:  # too small for a later layer: the ones reached are recorded
        pass
    return sides


def default_target_layer(module: nn.Module, backbone: str, image_size: int = 224) -> nn.Module:
    """The layer Grad-CAM looks at by default, see :func:`default_layer_name`.

    Examples
    --------
    >>> from sarcnet_sklearn.nn import SarcNetModule
    >>> module = SarcNetModule(use_features=False)
    >>> type(default_target_layer(module, "resnet18", 64)).__name__
    'BasicBlock'
    """
    return module.image_branch.get_submodule(default_layer_name(backbone, image_size))


def grad_cam_layer(model, layer: str | nn.Module | None = None) -> str:
    """Name of the image-branch layer that :func:`grad_cam` explains for ``model`` and ``layer``.

    Examples
    --------
    >>> # model: a SarcNet pipeline (ResNet-18) fitted at 32 px
    >>> grad_cam_layer(model), grad_cam_layer(model, "layer3")
    ('layer1.1', 'layer3')
    """
    net = SarcNetPipeline.of(model).fitted_regressor
    if isinstance(layer, str):
        resolve_layer(net, layer)
        return layer
    module = _image_module(net)
    if layer is not None:
        names = {sub: name for name, sub in module.image_branch.named_modules()}
        return names.get(layer, type(layer).__name__)
    return default_layer_name(net.backbone, net.image_size)


def _image_module(net: SarcNetRegressor) -> nn.Module:
    module = _plain_module(net)
    if getattr(module, "image_branch", None) is None:
        raise ValueError(
            "Grad-CAM explains the image branch, but this model has none (use_images=False)"
        )
    return module


def resolve_layer(net: SarcNetRegressor, layer: str | nn.Module | None) -> nn.Module:
    module = _image_module(net)
    if layer is None:
        return default_target_layer(module, net.backbone, net.image_size)
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
        return self.module.forward_normalized(images, self.features)


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
        ``"layer3"``) or itself. None: :func:`default_target_layer` at the
        model's ``image_size`` (a map of at least 7 x 7 activations).
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
        (its ``test_time_augment``). A model with ``canonical_orientation``
        is explained in the canonical pose it scores, the heatmap turned back
        onto the image (so a turned cell's heatmap is the turned heatmap too).

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
    >>> from sarcnet_sklearn.images import read_plane
    >>> # model: a fitted SarcNet pipeline, e.g. load_model("sarcnet.zip")
    >>> heatmaps = grad_cam(model, cells.head(4))
    >>> heatmaps[0].shape == read_plane(cells["image_path"][0], 1).shape
    True
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import RawScoresOutputTarget

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    pipeline = SarcNetPipeline.of(model)
    net = pipeline.fitted_regressor
    Xt = pipeline.regressor_input(X)
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
    canonical = bool(getattr(net, "canonical_orientation", False))
    transforms = range(N_D4) if test_time_augment else range(1)

    def prepare(chunk: pd.DataFrame) -> tuple[dict, list[tuple[int, int]]]:
        # each plane is read once: its shape sizes the heatmap, the model decodes it
        planes = np.empty(len(chunk), dtype=object)
        planes[:] = [read_plane(as_image_source(value), net.structure_page)
                     if _names_an_image(value) else value for value in chunk[net.image_column]]
        inputs = net.module_inputs(chunk.assign(**{net.image_column: planes}))
        return inputs, [plane.shape for plane in planes]

    chunks = (Xt.iloc[part] for part in chunk_slices(len(Xt), aligned_chunk_size(batch_size)))
    heatmaps = []
    with preserved_state(module), progress_bar(
        total=len(Xt), desc="Grad-CAM", unit="cell", show=progress
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
                    if canonical:  # the pose the network scores; heatmaps turned back
                        posed, chosen = canonical_d4(cached)
                        maps = torch.from_numpy(cam(
                            input_tensor=module.normalize_images(posed).requires_grad_(True),
                            targets=[target] * len(posed)))
                        mean = torch.stack([d4_inverse(one, int(t))
                                            for one, t in zip(maps, chosen, strict=True)]).numpy()
                    else:
                        total = 0.0
                        for t in transforms:
                            images = module.normalize_images(d4_transform(cached, t))
                            maps = cam(input_tensor=images.requires_grad_(True),
                                       targets=[target] * len(images))
                            total = total + d4_inverse(torch.from_numpy(maps), t).numpy()
                        mean = total / len(transforms)
                    heatmaps += map(_resize_heatmap, mean, shapes[batch])
                    bar.update(len(cached))
        finally:
            cam.activations_and_grads.release()
    return heatmaps


DIRECTIONS = ("raise", "lower")


def _names_an_image(value) -> bool:
    """Whether a table cell holds an image or a path (not a blank the model reports)."""
    return isinstance(value, np.ndarray) or not (pd.isna(value) or str(value).strip() == "")


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
