"""Counting the files a process opens, here and on Dask workers (for the tests only): how
often each image file is opened, how often a model file is loaded.

Every ``open`` of a file is counted through an audit hook (:func:`sys.addaudithook`),
installed here by :func:`install` and on each worker of a cluster, also one that joins
later or replaces a dead one, by the :class:`CountOpens` worker plugin. A load of a model
file opens it a fixed number of times (:func:`opens_per_load` measures it), so the count
of opens says how often the file was loaded, without touching the package's code.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

from distributed import WorkerPlugin

OPENS: Counter = Counter()
"""Files opened by this process since :func:`install`, by absolute path."""

_installed = []


def _count(event: str, args: tuple) -> None:
    if event == "open" and isinstance(args[0], (str, os.PathLike)):
        OPENS[os.path.abspath(os.fspath(args[0]))] += 1


def install() -> None:
    """Start counting the files this process opens (once per process)."""
    if not _installed:
        sys.addaudithook(_count)
        _installed.append(True)


def opens() -> dict[str, int]:
    """This process's counts (``client.run(opens)`` gives each worker's)."""
    return dict(OPENS)


def opens_per_load(path) -> int:
    """How many times loading the model file ``path`` opens it (measured here)."""
    from sarcnet_sklearn.deploy import load_model

    install()
    path = os.path.abspath(os.fspath(path))
    before = OPENS[path]
    load_model(path)
    return OPENS[path] - before


class CountOpens(WorkerPlugin):
    """Installs the counter on every worker of a cluster."""

    name = "test-count-opens"

    def setup(self, worker) -> None:
        install()
