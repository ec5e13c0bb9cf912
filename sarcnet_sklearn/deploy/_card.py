"""A model card: what a model file is, what it was trained on, how well it did, what for.

:func:`model_card` builds it from a fitted pipeline and its metadata; :func:`save_model`
stores it in every model file (``metadata["card"]``); :func:`read_model_card` reads it back
(from ``model.json`` alone for the safe format: nothing is unpickled or built) with the
file's SHA-256; ``sarcnet-sklearn info MODEL`` prints it (``--json`` for a pipeline), and the
report header and every ``run.json`` carry its key facts (:func:`card_facts`).

The builder reads what the metadata holds and tolerates what it lacks: files written
before a key existed give ``None`` for it, and keys the card does not know yet are listed
under ``other_metadata``, so nothing recorded is hidden.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from os import PathLike
from pathlib import Path

from .._pages import sha256_of

logger = logging.getLogger(__name__)

CARD_VERSION = 1
CARD_KEY = "card"
"""Key of the card in a model file's metadata."""

KNOWN_METADATA = {
    "versions", "created", "protocol", "feature_names", "image_column", "structure_page",
    "image_size", "training", "metrics", "metrics_ci95", "metrics_ci95_resampling",
    "calibration", "soundness",
    "agreement", "demo", CARD_KEY,
}
"""Metadata keys the card reads; any other is listed in the card's ``other_metadata``."""

INTENDED_USE = {
    "synthetic": (
        "a demonstration and a test of the pipeline: trained on synthetic cells, it says how "
        "well the code learns, not how real cells score; do not use its scores for biology"
    ),
    "aics": (
        "scoring the sarcomere organization (1-5, the AICS experts' scale) of single hiPSC-CMs "
        "imaged for alpha-actinin-2 as in the AICS dataset (63x, about 0.12 um/px); check it on "
        "a few expert-scored cells of your own before trusting it on other imaging"
    ),
    "other": (
        "scoring cells imaged as its training cells were (same stain, magnification and pixel "
        "size); its validation metrics describe those cells only"
    ),
}


def _regressor(pipeline):
    try:
        from ..pipeline import SarcNetPipeline

        return SarcNetPipeline.of(pipeline).regressor
    except (TypeError, ValueError, AttributeError):
        return None


def training_fingerprint(pipeline) -> dict | None:
    """One fingerprint of the cells a model has seen: the SHA-256 (16 hex digits) of its
    cells' sorted fingerprints (``seen_cells_``), and their number; None when it keeps none."""
    net = _regressor(pipeline)
    seen = getattr(net, "seen_cells_", None) if net is not None else None
    if seen is None or not len(seen):
        return None
    digest = hashlib.sha256("\n".join(sorted(str(item) for item in seen)).encode()).hexdigest()
    return {"sha256_16": digest[:16], "n_cells": len(seen)}


def _score_map_summary(net) -> dict | None:
    score_map = getattr(net, "score_map_", None) if net is not None else None
    if not isinstance(score_map, dict):
        return None
    summary = {"kind": score_map.get("kind"), "n_cells": score_map.get("n_cells")}
    if score_map.get("kind") == "affine":
        summary |= {"slope": score_map.get("slope"), "intercept": score_map.get("intercept")}
    return summary


def model_card(pipeline, metadata: dict | None = None) -> dict:
    """The card of a fitted SarcNet pipeline and its metadata (see the module docstring).

    Parameters
    ----------
    pipeline : fitted SarcNet pipeline, or None
        Read for what only the model knows (backbone, score range, calibration, the
        fingerprint of its cells); None builds the card from ``metadata`` alone.
    metadata : dict, optional
        As :func:`~sarcnet_sklearn.deploy.train_model` returns it (or a model file holds).

    Returns
    -------
    card : dict
        Plain JSON values.

    Examples
    --------
    >>> card = model_card(model, {"training": {"n_cells": 45, "data_kind": "synthetic"}})
    >>> card["backbone"], card["training_data"]["kind"], card["score_range"]
    ('resnet18', 'synthetic', [1.0, 5.0])
    """
    metadata = dict(metadata or {})
    training = metadata.get("training") if isinstance(metadata.get("training"), dict) else {}
    net = _regressor(pipeline) if pipeline is not None else None
    params = net.get_params(deep=False) if net is not None else {}
    stored = metadata.get(CARD_KEY) if isinstance(metadata.get(CARD_KEY), dict) else {}

    def first(*values):
        return next((value for value in values if value is not None), None)

    kind = first(training.get("data_kind"), (stored.get("training_data") or {}).get("kind"))
    score_range = None
    if net is not None:
        from ..pipeline import SarcNetPipeline

        score_range = SarcNetPipeline.of(pipeline).score_range
    calibration = metadata.get("calibration") if isinstance(metadata.get("calibration"),
                                                            dict) else None
    intervals = None
    if net is not None and getattr(net, "conformity_scores_", None) is not None:
        intervals = {"n_cells": int(len(net.conformity_scores_))}
    if calibration:
        intervals = {**(intervals or {}), **calibration}
    pixel_size = training.get("pixel_size_um")
    card = {
        "card_version": CARD_VERSION,
        "model": "SarcNet" if params.get("use_images", True) else "SarcNet (features only)",
        "backbone": first(params.get("backbone"), stored.get("backbone")),
        "initial_weights": first(_plain(params.get("weights")), stored.get("initial_weights")),
        "protocol": first(metadata.get("protocol"), stored.get("protocol")),
        "features": first(metadata.get("feature_names"), stored.get("features")),
        "image_size_px": first(metadata.get("image_size"), stored.get("image_size_px")),
        "pixel_size_um": first(pixel_size, stored.get("pixel_size_um"),
                               getattr(pipeline, "pixel_size_um_", None)),
        "score_range": first(None if score_range is None else list(score_range),
                             stored.get("score_range")),
        "test_time_augment": first(params.get("test_time_augment"),
                                   stored.get("test_time_augment")),
        "canonical_orientation": bool(first(params.get("canonical_orientation"),
                                            stored.get("canonical_orientation"), False)),
        "training_data": {
            "kind": kind,
            "source": training.get("source"),
            "n_cells": training.get("n_cells"),
            "n_validation": training.get("n_validation"),
            "n_test": training.get("n_test"),
            "n_excluded": training.get("n_excluded"),
            "split": training.get("split"),
            "cells_pixel_size_um": training.get("cells_pixel_size_um"),
            "score_mean": training.get("score_mean"),
            "fingerprint": first(training_fingerprint(pipeline) if pipeline is not None
                                 else None,
                                 (stored.get("training_data") or {}).get("fingerprint")),
        },
        "training": {key: training.get(key) for key in
                     ("max_epochs", "epochs_trained", "lr", "batch_size", "random_state",
                      "device", "init_from") if key in training},
        "validation_metrics": (metadata.get("metrics") or {}).get("validation"),
        "test_metrics": (metadata.get("metrics") or {}).get("test"),
        "metrics_ci95": metadata.get("metrics_ci95"),
        "metrics_ci95_resampling": metadata.get("metrics_ci95_resampling"),
        "calibration": {
            "score_map": first(_score_map_summary(net), (stored.get("calibration") or {})
                               .get("score_map")),
            "intervals": first(intervals, (stored.get("calibration") or {}).get("intervals")),
        },
        "soundness_problems": metadata.get("soundness"),
        "versions": metadata.get("versions"),
        "created": metadata.get("created"),
        "intended_use": INTENDED_USE.get(kind or "", "unknown: the file does not record what "
                                         "its training cells were"),
        "note": metadata.get("demo"),
        "other_metadata": sorted(key for key in metadata if key not in KNOWN_METADATA),
    }
    return card


def _plain(value):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return os.fspath(value) if isinstance(value, PathLike) else str(value)


def read_model_card(path: str | PathLike, *, pipeline=None, metadata: dict | None = None
                    ) -> dict:
    """The card of a model file, with the file's name, format and SHA-256.

    A safe-format file is read from its ``model.json`` only (no weights, nothing built);
    a joblib file is loaded (unpickled: only for files you trust) unless ``pipeline`` and
    ``metadata`` are given. A file without a stored card (older versions) gets one built
    from its metadata, marked ``"stored": false``.
    """
    from ._model_file import SETTINGS_FILE, ZIP_MAGIC, _check_header, _parse_settings, _SafeReader

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such model file: {path}")
    if path.is_dir():
        safe = True
    else:
        with open(path, "rb") as handle:
            safe = handle.read(4) == ZIP_MAGIC
    if metadata is None and safe:
        with _SafeReader(path) as reader:
            content = _parse_settings(reader.read(SETTINGS_FILE, 64 << 20))
        if not isinstance(content, dict):
            raise ValueError(f"{path}: {SETTINGS_FILE} is not a model description")
        metadata = _check_header(content, path)
    elif metadata is None:
        from ._model_file import load_model

        pipeline, metadata = load_model(path, return_metadata=True)
    stored = metadata.get(CARD_KEY)
    card = dict(stored) if isinstance(stored, dict) and pipeline is None else model_card(
        pipeline, metadata)
    card = {"file": str(path.resolve()), "format": "safe" if safe else "joblib",
            "sha256": sha256_of(path), "stored": isinstance(stored, dict), **card}
    return json.loads(json.dumps(card, default=str))


def card_facts(card: dict) -> dict:
    """The key facts of a card, for a report header and ``run.json``.

    Examples
    --------
    >>> card_facts({"backbone": "resnet18", "protocol": 1, "pixel_size_um": 0.12,
    ...             "training_data": {"kind": "synthetic", "n_cells": 40}})["trained_on"]
    '40 synthetic cells'
    """
    data = card.get("training_data") or {}
    validation = card.get("validation_metrics") or {}
    kind = {"synthetic": "synthetic", "aics": "AICS", "other": "own"}.get(data.get("kind"),
                                                                           "unrecorded")
    n_cells = data.get("n_cells")
    facts = {
        "model": f"{card.get('model', 'SarcNet')}, {card.get('backbone') or '?'} backbone, "
                 f"Protocol {card.get('protocol') or '?'}, "
                 f"{card.get('image_size_px') or '?'} px input",
        "trained_on": f"{n_cells if n_cells is not None else '?'} {kind} cells",
        "pixel_size_um": card.get("pixel_size_um"),
        "score_range": card.get("score_range"),
        "validation": ", ".join(f"{name} {value:.3f}" for name, value in validation.items()
                                if isinstance(value, (int, float))) or None,
        "fingerprint": (data.get("fingerprint") or {}).get("sha256_16"),
        "intended_use": card.get("intended_use"),
    }
    if card.get("sha256"):
        facts["sha256"] = card["sha256"]
    return facts


def format_card(card: dict) -> str:
    """The card as text for people, one fact per line.

    Examples
    --------
    >>> print(format_card({"backbone": "resnet18", "protocol": 1}).splitlines()[0])
    model card
    """
    lines = ["model card"]

    def empty(value) -> bool:
        if isinstance(value, dict):
            return all(empty(item) for item in value.values())
        return value is None or value == []

    def add(label, value, indent=2):
        if empty(value):
            return
        if isinstance(value, dict):
            lines.append(" " * indent + f"{label}:")
            for key, item in value.items():
                add(key, item, indent + 2)
            return
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, list) and len(value) > 12:
            value = ", ".join(str(v) for v in value[:12]) + f", ... ({len(value)} in all)"
        elif isinstance(value, list):
            value = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value)
        lines.append(" " * indent + f"{label}: {value}")

    for key in ("file", "format", "sha256", "model", "backbone", "initial_weights",
                "protocol", "features", "image_size_px", "pixel_size_um", "score_range",
                "test_time_augment", "canonical_orientation", "training_data", "training",
                "validation_metrics", "test_metrics", "calibration", "soundness_problems",
                "versions", "created", "intended_use", "note", "other_metadata"):
        add(key.replace("_", " "), card.get(key))
    if card.get("stored") is False:
        lines.append("  (this file stores no card: built from its metadata)")
    return "\n".join(lines)


def synthetic_model_message(card: dict | None, not_synthetic, what: str = "files"
                            ) -> str | None:
    """What to warn when ``card`` says synthetic training cells and ``not_synthetic`` (the
    inputs not known to be synthetic) is not empty; None otherwise."""
    kind = ((card or {}).get("training_data") or {}).get("kind")
    items = list(not_synthetic)
    if kind != "synthetic" or not items:
        return None
    noun, verb = (what[:-1], "is") if len(items) == 1 and what.endswith("s") else (what, "are")
    return (
        f"this model was trained on synthetic cells and is scoring {len(items)} {noun} that "
        f"{verb} not synthetic (e.g. {items[0]}): its scores show that the pipeline runs, not how "
        "organized real sarcomeres are; train on scored real cells (the AICS data or your "
        "own) before using the scores"
    )


def warn_if_synthetic_model(card: dict | None, not_synthetic, what: str = "files") -> bool:
    """Log :func:`synthetic_model_message` as a warning (logger ``sarcnet_sklearn.deploy._card``);
    returns whether it did.

    Examples
    --------
    >>> warn_if_synthetic_model({"training_data": {"kind": "synthetic"}}, ["well_B4.tif"])
    True
    >>> warn_if_synthetic_model({"training_data": {"kind": "aics"}}, ["well_B4.tif"])
    False
    """
    message = synthetic_model_message(card, not_synthetic, what)
    if message is not None:
        logger.warning("%s", message)
    return message is not None
