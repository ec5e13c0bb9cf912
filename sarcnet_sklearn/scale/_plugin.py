"""The Dask worker plugin that gives each worker its copy of the model, loaded once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from os import PathLike

from distributed import WorkerPlugin


class ModelPlugin(WorkerPlugin):
    """A Dask worker plugin that holds one model per worker, loaded at most once.

    Parameters
    ----------
    model : path or fitted model
        A model file (loaded with ``load`` on the worker, the first time a task
        needs it) or a fitted model (pickled once per worker with the plugin).
    load : callable, optional
        ``load(path)``: the model in a model file (picklable); needed for a path.
    """

    def __init__(self, model, load: Callable | None = None) -> None:
        self.model = str(model) if isinstance(model, (str, PathLike)) else model
        self.load = load
        self.name = f"sarcnet-model-{uuid.uuid4().hex}"
        self._loaded = None
        self._lock = threading.Lock()

    def __getstate__(self):
        return {"model": self.model, "load": self.load, "name": self.name}

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
                self._loaded = self.load(self.model)
            return self._loaded
