"""The plugin's sample data: a synthetic field, its cell labels, and a small demo model.

The demo model is trained once on a few tiny synthetic cells and cached, in the
safe format, under the user's cache folder (``SARCNET_SKLEARN_CACHE`` when set,
else :func:`platformdirs.user_cache_dir`), so that a new user sees the widget
work in one click. It is a demonstration, not a model to score real cells with.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

CACHE_ENV = "SARCNET_SKLEARN_CACHE"
MODEL_METADATA_KEY = "sarcnet_model"
"""Key of an image layer's metadata naming the model file that goes with it."""

SAMPLE_SHAPE = (384, 384)
SAMPLE_CELLS = 6
SAMPLE_PIXEL_SIZE_UM = 0.48
"""The sample field's pixel size: 6 cells of real size (about 900 um^2) fill 384 x 384 px."""
DEMO_SETTINGS = {"n_cells": 48, "pixel_size_um": SAMPLE_PIXEL_SIZE_UM, "image_size": 32,
                 "max_epochs": 6, "lr": 1e-3}


def cache_dir() -> Path:
    """Where the plugin caches its demo model."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sarcnet-sklearn"))


def demo_model_path() -> Path:
    """The demo model, trained and cached on first use (a few seconds on a CPU).

    Returns
    -------
    path : Path
        A safe-format ``.zip`` in :func:`cache_dir`, named after the package
        version so that a new version trains its own.
    """
    from .. import __version__
    from ..datasets import load_aics, make_synthetic_aics
    from ..deploy import save_model, train_model

    recipe = "-".join(str(value) for value in DEMO_SETTINGS.values())
    path = cache_dir() / f"demo_model-{__version__}-{recipe}.zip"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="demo-cells-", dir=path.parent))
    try:
        root = make_synthetic_aics(
            scratch / "cells",
            n_cells=DEMO_SETTINGS["n_cells"],
            pixel_size_um=DEMO_SETTINGS["pixel_size_um"],
            random_state=0,
            progress=False,
        )
        pipeline, metadata = train_model(
            load_aics(root),
            protocol=1,
            image_size=DEMO_SETTINGS["image_size"],
            max_epochs=DEMO_SETTINGS["max_epochs"],
            lr=DEMO_SETTINGS["lr"],
            batch_size=16,
            random_state=0,
            device="cpu",
        )
        metadata["demo"] = (
            "trained in seconds on synthetic cells by the napari plugin's sample; a "
            "demonstration, not a model for real cells"
        )
        save_model(pipeline, path, metadata=metadata, format="safe")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return path


def synthetic_field() -> list[tuple]:
    """napari sample: a synthetic alpha-actinin-2 field, its cell labels and the demo model.

    Returns
    -------
    layers : list of LayerData tuples
        The field as an Image layer (its pixel size, 0.48 um, as its scale; its
        metadata names the demo model file, which the scoring widget picks up)
        and the cells as a Labels layer.
    """
    from ..datasets import make_synthetic_field

    field, labels = make_synthetic_field(SAMPLE_SHAPE, n_cells=SAMPLE_CELLS, random_state=0,
                                         pixel_size_um=SAMPLE_PIXEL_SIZE_UM)
    scale = (SAMPLE_PIXEL_SIZE_UM, SAMPLE_PIXEL_SIZE_UM)
    model = demo_model_path()
    return [
        (
            field,
            {
                "name": "alpha-actinin-2",
                "scale": scale,
                "colormap": "gray",
                "metadata": {MODEL_METADATA_KEY: str(model)},
            },
            "image",
        ),
        (labels, {"name": "cells", "scale": scale, "opacity": 0.3}, "labels"),
    ]
