"""The SarcNet family of torch modules: image branch, feature branch and head.

One module class, :class:`SarcNetModule`, covers every model of the paper's
Table 1 but the linear baseline: SarcNet (ResNet-18 image branch joined with the
feature MLP), the image-only CNN regressors (``use_features=False``) and a
feature-only MLP (``use_images=False``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import torch
from torch import nn

from ._backbones import BACKBONES

_IMAGENET_HEADS = {
    "resnet18": "fc",
    "resnet50": "fc",
    "densenet121": "classifier",
    "alexnet": "classifier.6",
    "convnext_tiny": "classifier.2",
    "efficientnet_b0": "classifier.1",
}
"""The ImageNet classification layer of each backbone: cut off, and not read from weight files."""
FEATURE_WIDTHS = (128, 256, 512)
# torchvision's published DenseNet files name layers "norm.1" where the model says "norm1".
_OLD_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
FUSED_HEAD_WIDTHS = (512, 256, 128)
SINGLE_BRANCH_HEAD_WIDTHS = (256, 128)


def build_backbone(name: str, weights: str | PathLike | None = None) -> tuple[nn.Module, int]:
    """Build a torchvision CNN that maps a ``(n, 3, h, w)`` batch to ``(n, d)`` embeddings.

    Parameters
    ----------
    name : {"resnet18", "densenet121", "alexnet", "convnext_tiny", "efficientnet_b0", "resnet50"}
        The architecture, cut before its ImageNet classification layer:
        ResNet-18 after global average pooling (512 values, as in SarcNet);
        DenseNet-121 after its pooled features (1024); AlexNet before its last
        fully connected layer (4096); ConvNeXt-Tiny (D-SarcNet's backbone)
        after its pooled, layer-normalised features (768); EfficientNet-B0
        after pooling (1280); ResNet-50 after pooling (2048).
    weights : None, "imagenet" or path, default=None
        ``None``: random initialisation. ``"imagenet"``: torchvision's ImageNet
        weights (downloaded on first use, or taken from the torch hub cache).
        A path: a file saved with ``torch.save(state_dict)`` holding the full
        torchvision model's state dict (classifier included or not).

    Returns
    -------
    backbone : nn.Module
    n_outputs : int
        Length of the embedding.

    Raises
    ------
    ValueError
        For an unknown name.
    RuntimeError
        When ImageNet weights cannot be obtained or a weights file does not fit.

    Examples
    --------
    >>> from sarcnet_sklearn.nn import build_backbone
    >>> backbone, n_outputs = build_backbone("resnet18")
    >>> n_outputs
    512
    """
    import torchvision.models as tvm

    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")
    builder = getattr(tvm, name)
    tv_weights = None
    if isinstance(weights, str) and weights == "imagenet":
        tv_weights = tvm.get_model_weights(name).DEFAULT
    model = _build_torchvision_model(builder, name, tv_weights)
    if weights is not None and tv_weights is None:
        _load_weights_file(model, name, Path(weights))
    head_name = _IMAGENET_HEADS[name]
    n_outputs = model.get_submodule(head_name).in_features
    parent_name, _, child = head_name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, nn.Identity())
    return model, n_outputs


def _build_torchvision_model(builder, name: str, tv_weights) -> nn.Module:
    if tv_weights is None:
        return builder(weights=None)
    try:
        return builder(weights=tv_weights)
    except Exception as exc:  # no network, proxy refusal, corrupt cache, ...
        raise RuntimeError(
            f"could not obtain the ImageNet weights of {name} ({tv_weights}): {exc}. "
            "Without internet access, download them elsewhere and either put the file in "
            f"the torch hub cache ({torch.hub.get_dir()}/checkpoints) or pass its path as "
            "weights=PATH; or train from random initialisation with weights=None."
        ) from exc


def _load_weights_file(model: nn.Module, name: str, path: Path) -> None:
    if not path.is_file():
        raise RuntimeError(
            f"weights file not found: {path} (weights must be None, 'imagenet' or the path "
            f"of a saved {name} state dict)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RuntimeError(f"cannot read weights file {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise RuntimeError(f"weights file {path} does not hold a state dict")
    if name == "densenet121":
        state = {_OLD_DENSENET_KEY.sub(r"\1\2", key): value for key, value in state.items()}
    own = model.state_dict()
    classifier = {k for k in own if k.startswith(_IMAGENET_HEADS[name] + ".")}
    missing = sorted(set(own) - set(state) - classifier)
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise RuntimeError(
            f"weights file {path} does not fit torchvision's {name}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    shape_mismatch = [k for k in state if k not in classifier and state[k].shape != own[k].shape]
    if shape_mismatch:
        raise RuntimeError(f"weights file {path}: wrong shapes for {shape_mismatch[:5]}")
    model.load_state_dict({k: v for k, v in state.items() if k not in classifier}, strict=False)


def mlp(n_inputs: int | None, widths: Sequence[int], activation: bool) -> tuple[nn.Sequential, int]:
    """A stack of linear layers of the given widths, with ReLU after each when ``activation``.

    ``n_inputs=None``: the first layer takes its input size from the first
    batch or state dict it sees (``torch.nn.LazyLinear``).
    """
    layers: list[nn.Module] = []
    for width in widths:
        layers.append(nn.LazyLinear(width) if n_inputs is None else nn.Linear(n_inputs, width))
        if activation:
            layers.append(nn.ReLU())
        n_inputs = width
    return nn.Sequential(*layers), n_inputs


class SarcNetModule(nn.Module):
    """SarcNet: a CNN over the cell image joined with an MLP over cell features.

    Image branch: a torchvision backbone (ResNet-18 for SarcNet) up to global
    pooling. Feature branch: Linear(n, 128), ReLU, Linear(128, 256), ReLU,
    Linear(256, 512), ReLU. The two embeddings are concatenated and passed
    through the head Linear(., 512), Linear(512, 256), Linear(256, 128),
    Linear(128, 1) (as in the public SarcNet code, without activations between
    these layers unless ``head_activation``). With a single branch the head is
    Linear(., 256), Linear(256, 128), Linear(128, 1): the image-only CNN
    regressors with "two fully connected layers added at the end".

    The image input is the compact uint8 cache, ``(n, h, w)`` or
    ``(n, 1, h, w)``; it is scaled to [0, 1], normalised with mean 0.5 and std
    0.5 and repeated to 3 channels inside :meth:`forward`, so the cache can stay
    uint8 (and on the GPU).

    Parameters
    ----------
    n_features : int or None, default=0
        Number of cell features (0 when ``use_features`` is False); None: taken
        from the first batch or loaded state dict.
    backbone : str, default="resnet18"
        One of :data:`BACKBONES`, see :func:`build_backbone`.
    use_images, use_features : bool, default=True
        Which branches to build; at least one.
    weights : None, "imagenet" or path, default=None
        Initial backbone weights, see :func:`build_backbone`.
    head_activation : bool, default=False
        Put a ReLU between the head's linear layers.
    feature_widths : tuple of int, default=(128, 256, 512)
        Widths of the feature branch's layers (each followed by a ReLU); the
        last one is the feature embedding's length.

    Examples
    --------
    >>> import torch
    >>> from sarcnet_sklearn.nn import SarcNetModule
    >>> module = SarcNetModule(n_features=5).eval()
    >>> images = torch.zeros((1, 64, 64), dtype=torch.uint8)
    >>> module(images=images, features=torch.zeros((1, 5))).shape
    torch.Size([1, 1])
    """

    def __init__(
        self,
        n_features: int | None = 0,
        backbone: str = "resnet18",
        use_images: bool = True,
        use_features: bool = True,
        weights: str | PathLike | None = None,
        head_activation: bool = False,
        feature_widths: Sequence[int] = FEATURE_WIDTHS,
    ) -> None:
        super().__init__()
        if not (use_images or use_features):
            raise ValueError("SarcNetModule needs use_images or use_features (or both)")
        if use_features and n_features is not None and n_features < 1:
            raise ValueError("use_features=True needs at least one feature column")
        feature_widths = tuple(int(width) for width in feature_widths)
        if not feature_widths or min(feature_widths) < 1:
            raise ValueError(f"feature_widths must be positive widths, got {feature_widths!r}")
        self.use_images = use_images
        self.use_features = use_features
        n_embedding = 0
        self.image_branch = None
        self.feature_branch = None
        if use_images:
            self.image_branch, n_image = build_backbone(backbone, weights)
            n_embedding += n_image
        if use_features:
            self.feature_branch, n_feature = mlp(n_features, feature_widths, activation=True)
            n_embedding += n_feature
        widths = FUSED_HEAD_WIDTHS if use_images and use_features else SINGLE_BRANCH_HEAD_WIDTHS
        hidden, n_last = mlp(n_embedding, widths, activation=head_activation)
        self.head = nn.Sequential(*hidden, nn.Linear(n_last, 1))

    @staticmethod
    def normalize_images(images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(n, h, w)`` or ``(n, 1, h, w)`` -> float ``(n, 3, h, w)`` in [-1, 1].

        The result is channels-last, the layout the convolutions ran fastest in on both a
        CPU and a GPU, with the same outputs to float32 rounding (``benchmarks/RESULTS.md``).
        """
        if images.ndim == 3:
            images = images.unsqueeze(1)
        images = images.float().div_(127.5).sub_(1.0)
        return images.expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)

    def forward(
        self, images: torch.Tensor | None = None, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        normalized = self.normalize_images(images) if self.use_images else None
        return self.forward_normalized(normalized, features)

    def forward_normalized(
        self, images: torch.Tensor | None = None, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """:meth:`forward` from images already through :meth:`normalize_images` (float
        ``(n, 3, h, w)``, which can carry a gradient: what Grad-CAM differentiates)."""
        parts = []
        if self.use_images:
            parts.append(self.image_branch(images))
        if self.use_features:
            parts.append(self.feature_branch(features.float()))
        return self.head(torch.cat(parts, dim=1))
