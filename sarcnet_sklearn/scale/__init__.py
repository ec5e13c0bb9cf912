"""Screens of many cells: chunked runs that resume, here or on a Dask cluster.

:func:`run_in_chunks` works through a table of cells a chunk at a time, saving
each finished chunk beside the output so that a stopped run resumes where it
was; :func:`map_chunks` runs the chunks here or on the workers of a
``distributed.Client`` (each worker loading the model once, as the caller says
models are loaded) and :func:`map_table` puts their results back together; :func:`connect`
opens a client to a running scheduler. The ``features``, ``predict`` and
``fields`` commands use them (``--chunk-size``, ``--scheduler``, see
:mod:`sarcnet_sklearn.commands`). Dask is an
optional dependency: ``pip install 'sarcnet-sklearn[cluster]'``.
"""

from ._engine import connect, map_chunks, map_table
from ._resume import RunResult, partial_folder, run_in_chunks

__all__ = [
    "RunResult",
    "connect",
    "map_chunks",
    "map_table",
    "partial_folder",
    "run_in_chunks",
]
