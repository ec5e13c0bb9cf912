"""The plugin's sample data: a synthetic field, its cell labels, and a small demo model.

The demo model is trained once on a few tiny synthetic cells and cached, in the
safe format, under the user's cache folder (``SARCNET_SKLEARN_CACHE`` when set,
else :func:`platformdirs.user_cache_dir`), so that a new user sees the widget
work in one click. It is a demonstration, not a model to score real cells with.
Open Sample returns the field at once; the first time, the model is trained in a
worker thread whose progress napari shows, and the widget waits for it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path

CACHE_ENV = "SARCNET_SKLEARN_CACHE"
MODEL_METADATA_KEY = "sarcnet_model"
"""Key of an image layer's metadata naming the model file that goes with it."""
SYNTHETIC_METADATA_KEY = "sarcnet_synthetic"
"""Key of an image layer's metadata saying that the image is synthetic (the sample): a model
trained on synthetic cells then scores it without a warning."""

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


def demo_model_file() -> Path:
    """Where the demo model is cached (it may not exist yet): a safe-format ``.zip`` in
    :func:`cache_dir`, named after the package version and the recipe, so that a new version
    trains its own."""
    from .. import __version__

    recipe = "-".join(str(value) for value in DEMO_SETTINGS.values())
    return cache_dir() / f"demo_model-{__version__}-{recipe}.zip"


def demo_model_path() -> Path:
    """The demo model, trained and cached on first use (seconds on a CPU), waiting for it.

    Returns
    -------
    path : Path
        :func:`demo_model_file`, which exists on return.
    """
    path = demo_model_file()
    wait_for_demo_model(path)
    if not path.is_file():
        for _ in _train_demo_model(path):
            pass
    return path


DEMO_STAGES = ("writing synthetic cells", "training the demo model", "saving the demo model")


def _train_demo_model(path: Path):
    """Train the demo model into ``path``, yielding after each of :data:`DEMO_STAGES`."""
    from ..datasets import load_aics, make_synthetic_aics
    from ..deploy import save_model, train_model

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
        yield DEMO_STAGES[0]
        pipeline, metadata = train_model(
            load_aics(root),
            protocol=1,
            image_size=DEMO_SETTINGS["image_size"],
            max_epochs=DEMO_SETTINGS["max_epochs"],
            lr=DEMO_SETTINGS["lr"],
            batch_size=16,
            random_state=0,
            device="cpu",
            source=root,
        )
        yield DEMO_STAGES[1]
        metadata["demo"] = (
            "trained in seconds on synthetic cells by the napari plugin's sample; a "
            "demonstration, not a model for real cells"
        )
        save_model(pipeline, path, metadata=metadata, format="safe")
        yield DEMO_STAGES[2]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


_TRAINING: dict[str, Future] = {}
_TRAINING_LOCK = threading.Lock()


def start_demo_model() -> Path:
    """The demo model's path at once; trained in the background when not cached yet.

    napari shows the training's progress in its activity dock (a worker thread with a
    progress bar), so Open Sample never blocks the viewer; the scoring widget waits for
    the model (:func:`wait_for_demo_model`) when Score is pressed before it is ready.
    """
    path = demo_model_file()
    with _TRAINING_LOCK:
        if path.is_file() or demo_model_pending(path):
            return path
        future: Future = Future()
        _TRAINING[str(path)] = future

    def stages():
        try:
            yield from _train_demo_model(path)
        except BaseException as exc:  # the waiting widget reports it
            future.set_exception(exc)
            raise
        future.set_result(path)

    try:
        from napari.qt.threading import thread_worker
    except ImportError:  # no Qt: a plain thread
        threading.Thread(target=lambda: list(stages()), daemon=True).start()
        return path
    worker = thread_worker(stages, progress={"total": len(DEMO_STAGES),
                                             "desc": "SarcNet demo model"})()
    worker.errored.connect(lambda exc: None)  # reported by the widget that waits for it
    worker.start()
    return path


def demo_model_pending(path) -> bool:
    """Whether the demo model at ``path`` is being trained in the background."""
    future = _TRAINING.get(str(Path(path)))
    return future is not None and not future.done()


def wait_for_demo_model(path, timeout: float | None = None) -> None:
    """Block until the background training of the demo model at ``path`` (if any) is done.

    Raises
    ------
    Exception
        What the training raised (out of disk space, ...).
    """
    future = _TRAINING.get(str(Path(path)))
    if future is not None:
        future.result(timeout)


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
    model = start_demo_model()
    return [
        (
            field,
            {
                "name": "alpha-actinin-2",
                "scale": scale,
                "colormap": "gray",
                "metadata": {MODEL_METADATA_KEY: str(model), SYNTHETIC_METADATA_KEY: True},
            },
            "image",
        ),
        (labels, {"name": "cells", "scale": scale, "opacity": 0.3}, "labels"),
    ]
