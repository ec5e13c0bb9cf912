"""What a safe-format ``model.json`` may say, checked before anything is built from it.

The settings of a model file from someone else are untrusted input: each one
is checked against :data:`REGRESSOR_SETTINGS` (type and range) and the parts
are cross-checked (feature names against the protocol, the scaler and the
weights) before a single array is allocated. To store a new regressor setting
in the safe format, add one :class:`Setting` line to the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .._columns import PROTOCOLS
from .._fingerprint import MAX_SEEN_CELLS
from .._recipe import BACKBONES
from .._score_map import check_score_map

HEX = set("0123456789abcdef")

MAX_FEATURES = 256
MAX_NAME_LENGTH = 200
MAX_CALIBRATION_CELLS = 10**6
MAX_BATCH_PIXELS = 2**24
"""``batch_size * image_size**2`` at most: one prediction batch stays within a few GB."""


@dataclass(frozen=True)
class Setting:
    """The allowed values of one setting.

    Parameters
    ----------
    kind : {"bool", "int", "float", "str", "none", "int_list", "float_list"}
        Its type; several kinds separated by ``|`` (e.g. ``"int|none"``).
    low, high : float, optional
        Inclusive bounds of a number, or of each item of a list.
    choices : tuple, optional
        The allowed values of a string (or any plain value).
    length : tuple of int, optional
        ``(min, max)`` items of a list (or characters of a string).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    length: tuple[int, int] = (0, MAX_NAME_LENGTH)

    def check(self, name: str, value: Any) -> None:
        """Raise ValueError naming ``name`` when ``value`` is not allowed."""
        for kind in self.kind.split("|"):
            if _is_kind(value, kind):
                break
        else:
            raise ValueError(f"setting {name!r} must be {self.kind.replace('|', ' or ')}, "
                             f"got {_short(value)}")
        if value is None or isinstance(value, bool):
            pass
        elif self.choices is not None and value not in self.choices:
            raise ValueError(f"setting {name!r} must be one of {self.choices}, got {_short(value)}")
        elif isinstance(value, (str, list)):
            low, high = self.length
            if not low <= len(value) <= high:
                raise ValueError(f"setting {name!r} must have {low} to {high} items/characters, "
                                 f"got {len(value)}")
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                if (self.low is not None and item < self.low) or (
                        self.high is not None and item > self.high):
                    raise ValueError(f"setting {name!r} must be in [{self.low}, {self.high}], "
                                     f"got {_short(value)}")


def _is_kind(value, kind: str) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    finite = number and math.isfinite(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return finite
    if kind == "str":
        return isinstance(value, str)
    if kind == "none":
        return value is None
    if kind == "int_list":
        return isinstance(value, list) and all(_is_kind(item, "int") for item in value)
    if kind == "float_list":
        return isinstance(value, list) and all(_is_kind(item, "float") for item in value)
    raise AssertionError(f"unknown setting kind {kind!r}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


REGRESSOR_SETTINGS: dict[str, Setting] = {
    "backbone": Setting("str", choices=BACKBONES),
    "augment": Setting("str|none", choices=("d4", None)),
    "test_time_augment": Setting("bool"),
    "canonical_orientation": Setting("bool"),
    "consistency": Setting("float", 0, 1e6),
    "use_features": Setting("bool"),
    "use_images": Setting("bool"),
    "image_column": Setting("str", length=(1, MAX_NAME_LENGTH)),
    "structure_page": Setting("int", 0, 4096),
    "image_size": Setting("int", 16, 1024),
    "head_activation": Setting("bool"),
    "patience": Setting("int|none", 1, 10**6),
    "random_state": Setting("int|none", -(2**63), 2**63 - 1),
    "precision": Setting("str", choices=("auto", "bf16", "fp16", "fp32")),
    "lr": Setting("float", 0, 1e3),
    "max_epochs": Setting("int", 0, 10**7),
    "batch_size": Setting("int", 1, 4096),
    "device": Setting("str|none", length=(1, 20)),
    "verbose": Setting("int", 0, 10),
    "warm_start": Setting("bool"),
    "compile": Setting("bool"),
    "use_caching": Setting("str|bool", choices=("auto",)),
    "predict_nonlinearity": Setting("str|none", choices=("auto",)),
    "score_range": Setting("float_list|none", -1e6, 1e6, length=(2, 2)),
    "calibrate_scores": Setting("bool"),
    "module__feature_widths": Setting("int_list", 1, 4096, length=(1, 8)),
}
"""The regressor settings the safe format stores, and what each may be."""

RENAMED_SETTINGS = {"image_channel": "structure_page"}
"""Settings stored under an older name in earlier files: old name -> current name."""

STORED_ONLY_IF_SET = ("module__",)
"""Prefixes of settings that change the network: a pipeline with one outside the table
cannot be saved in the safe format (others, e.g. ``optimizer__*``, only matter for training)."""

DEVICES = ("cpu", "cuda", "mps")


def check_training_settings(*, image_size: int, batch_size: int, use_images: bool = True) -> None:
    """Refuse, before training, an image size or batch that no model file could store.

    The same table and limits :func:`check_settings` applies when a model is
    saved, so a run is never refused only after its last epoch.

    Examples
    --------
    >>> check_training_settings(image_size=5, batch_size=40)
    Traceback (most recent call last):
    ...
    ValueError: setting 'image_size' must be in [16, 1024], got 5
    """
    REGRESSOR_SETTINGS["image_size"].check("image_size", image_size)
    REGRESSOR_SETTINGS["batch_size"].check("batch_size", batch_size)
    pixels = batch_size * image_size**2
    if use_images and pixels > MAX_BATCH_PIXELS:
        raise ValueError(f"settings 'batch_size' x 'image_size'^2 = {pixels} pixels per batch "
                         f"exceeds {MAX_BATCH_PIXELS}; use a smaller batch or image size")


def check_settings(settings) -> dict:
    """Check the ``pipeline`` part of a ``model.json``; return it (unchanged) when sound.

    Raises
    ------
    ValueError
        Naming the first setting of the wrong type, out of range, unknown, or
        inconsistent with another.

    Examples
    --------
    >>> check_settings({"protocol": 3})
    Traceback (most recent call last):
    ...
    ValueError: setting 'protocol' must be 1, 2 or a list of feature names, got 3
    """
    if not isinstance(settings, dict):
        raise ValueError(f"the pipeline settings must be an object, got {_short(settings)}")
    features = _check_protocol(settings.get("protocol"))
    expected = {"protocol", "keeps_image", "regressor_params", "feature_names",
                "input_columns", "scaler", "feature_range", "conformity_scores", "score_map",
                "seen_cells"}
    unknown = sorted(set(settings) - expected)
    missing = sorted(expected - set(settings) - {"feature_range", "conformity_scores",
                                                 "score_map", "seen_cells"})
    if unknown or missing:
        raise ValueError(f"pipeline settings: unknown {unknown}, missing {missing}")
    Setting("bool").check("keeps_image", settings["keeps_image"])
    params = settings["regressor_params"]
    if not isinstance(params, dict):
        raise ValueError("setting 'regressor_params' must be an object")
    for old, new in RENAMED_SETTINGS.items():
        if old in params and new not in params:
            params[new] = params.pop(old)
    for name, value in params.items():
        if name not in REGRESSOR_SETTINGS:
            raise ValueError(f"unknown regressor setting {name!r}")
        REGRESSOR_SETTINGS[name].check(name, value)
    device = params.get("device")
    if device is not None and device.split(":")[0] not in DEVICES:
        raise ValueError(f"setting 'device' must be one of {DEVICES}, got {device!r}")
    use_images, use_features = params.get("use_images", True), params.get("use_features", True)
    if not (use_images or use_features):
        raise ValueError("settings 'use_images' and 'use_features' are both false")
    if use_images and not settings["keeps_image"]:
        raise ValueError("the model reads images ('use_images') but its pipeline drops the "
                         "image column ('keeps_image' is false)")
    pixels = params.get("batch_size", 40) * params.get("image_size", 224) ** 2
    if use_images and pixels > MAX_BATCH_PIXELS:
        raise ValueError(f"settings 'batch_size' x 'image_size'^2 = {pixels} pixels per batch "
                         f"exceeds {MAX_BATCH_PIXELS}")
    score_range = params.get("score_range")
    if score_range is not None and not score_range[0] < score_range[1]:
        raise ValueError(f"setting 'score_range' must be [low, high] with low < high, "
                         f"got {score_range}")
    names = settings["feature_names"]
    _names("feature_names", names, 0)
    if names != (features if use_features else []):
        raise ValueError(f"setting 'feature_names' {_short(names)} does not match the "
                         f"protocol's features {_short(features)}")
    _names("input_columns", settings["input_columns"], 1)
    _check_scaler(settings["scaler"], features)
    feature_range = settings.get("feature_range")
    if feature_range is not None:
        _check_feature_range(feature_range, len(names))
    if settings.get("score_map") is not None:
        check_score_map(settings["score_map"])
    seen = settings.get("seen_cells")
    if seen is not None and not (
            isinstance(seen, list) and len(seen) <= MAX_SEEN_CELLS
            and all(isinstance(key, str) and len(key) == 16 and set(key) <= HEX for key in seen)):
        raise ValueError(f"setting 'seen_cells' must be a list of at most {MAX_SEEN_CELLS} "
                         "fingerprints of 16 hex digits")
    scores = settings.get("conformity_scores")
    if scores is not None:
        Setting("float_list", 0, None, length=(1, MAX_CALIBRATION_CELLS)).check(
            "conformity_scores", scores)
    return settings


def _check_protocol(protocol) -> list[str]:
    if isinstance(protocol, int) and not isinstance(protocol, bool) and protocol in PROTOCOLS:
        return list(PROTOCOLS[protocol])
    if isinstance(protocol, list):
        _names("protocol", protocol, 1)
        return list(protocol)
    raise ValueError(f"setting 'protocol' must be 1, 2 or a list of feature names, "
                     f"got {_short(protocol)}")


def _names(name: str, values, minimum: int) -> None:
    if not (isinstance(values, list) and all(isinstance(value, str) for value in values)):
        raise ValueError(f"setting {name!r} must be a list of names, got {_short(values)}")
    if not minimum <= len(values) <= MAX_FEATURES + 1:
        raise ValueError(f"setting {name!r} must have {minimum} to {MAX_FEATURES + 1} names, "
                         f"got {len(values)}")
    if any(not 0 < len(value) <= MAX_NAME_LENGTH for value in values):
        raise ValueError(f"setting {name!r} holds an empty or overlong name")
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise ValueError(f"setting {name!r} repeats {repeated}")


def _check_scaler(scaler, features: list[str]) -> None:
    if not isinstance(scaler, dict) or set(scaler) != {"columns", "mean", "scale", "var",
                                                       "n_samples_seen"}:
        raise ValueError("setting 'scaler' must hold columns, mean, scale, var, n_samples_seen")
    if scaler["columns"] != features:
        raise ValueError(f"scaler columns {_short(scaler['columns'])} do not match the "
                         f"protocol's features {_short(features)}")
    n = len(features)
    for key, low in (("mean", None), ("scale", 1e-300), ("var", 0)):
        Setting("float_list", low, None, length=(n, n)).check(f"scaler.{key}", scaler[key])
    Setting("int", 1, 2**62).check("scaler.n_samples_seen", scaler["n_samples_seen"])


def _check_feature_range(feature_range, n: int) -> None:
    if not isinstance(feature_range, dict) or set(feature_range) != {"min", "max"}:
        raise ValueError("setting 'feature_range' must hold min and max")
    for key in ("min", "max"):
        Setting("float_list", length=(n, n)).check(f"feature_range.{key}", feature_range[key])
    if any(low > high for low, high in zip(feature_range["min"], feature_range["max"],
                                           strict=True)):
        raise ValueError("setting 'feature_range' has a min above its max")
