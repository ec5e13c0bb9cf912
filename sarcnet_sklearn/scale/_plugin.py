"""The Dask worker plugin that gives each worker its copy of the model, loaded once."""

from __future__ import annotations

import threading
import uuid
from os import PathLike

from distributed import WorkerPlugin

from ._engine import MODEL_LOADS


class ModelPlugin(WorkerPlugin):
    """A Dask worker plugin that holds one model per worker, loaded at most once.

    Parameters
    ----------
    model : path or fitted model
        A model file (loaded with :func:`~sarcnet_sklearn.deploy.load_model` on
        the worker, the first time a task needs it) or a fitted model (pickled
        once per worker with the plugin).
    device : str, optional
        Device the model file is loaded onto (default: as ``load_model`` chooses).
    """

    def __init__(self, model, device: str | None = None) -> None:
        self.model = str(model) if isinstance(model, (str, PathLike)) else model
        self.device = device
        self.name = f"sarcnet-model-{uuid.uuid4().hex}"
        self._loaded = None
        self._lock = threading.Lock()

    def __getstate__(self):
        return {"model": self.model, "device": self.device, "name": self.name}

    def __setstate__(self, state) -> None:
        self.__dict__.update(state)
        self._loaded = None
        self._lock = threading.Lock()

    def setup(self, worker) -> None:  # the WorkerPlugin hooks
        pass

    def teardown(self, worker) -> None:
        self._loaded = None

    def get(self):
        """The fitted model, loading it from its file on first use."""
        if not isinstance(self.model, str):
            return self.model
        with self._lock:
            if self._loaded is None:
                from ..deploy import load_model

                self._loaded = load_model(self.model, device=self.device)
                MODEL_LOADS[self.model] += 1
            return self._loaded
