"""Hyperparameter tuning of SarcNet with Optuna: pruned, GPU-aware, resumable, parallel.

:func:`tune` runs an Optuna study over the pipeline's hyperparameters
(:func:`default_search_space` or your own), maximising validation Spearman,
with per-epoch pruning; the study can live in a database or journal file
(:func:`resolve_storage`) to be resumed or shared by several workers. The
``sarcnet-sklearn tune`` command does the same from the shell.
"""

from ._search_space import default_search_space
from ._storage import resolve_storage
from ._tune import TuningResult, tune

__all__ = ["TuningResult", "default_search_space", "resolve_storage", "tune"]
