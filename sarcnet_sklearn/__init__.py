"""sarcnet-sklearn: SarcNet sarcomere-organization scoring as a scikit-learn estimator.

The estimators and pipelines are imported on first use, so that light
submodules (``sarcnet_sklearn.features`` in joblib workers, for instance) do
not pay for importing torch.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from ._columns import PROTOCOL_1, PROTOCOL_2

try:
    __version__ = version("sarcnet-sklearn")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

_LAZY = {
    "ProtocolSelector": "pipeline",
    "SarcNetPipeline": "pipeline",
    "make_linear_baseline": "pipeline",
    "make_sarcnet_pipeline": "pipeline",
    "SarcNetRegressor": "regressor",
    "regression_report": "metrics",
    "spearman_score": "metrics",
    "spearman_scorer": "metrics",
    "bootstrap_intervals": "metrics",
    "expert_agreement": "metrics",
    "UnsoundModelWarning": "soundness",
    "assess_predictions": "soundness",
    "calibrate": "intervals",
    "predict_interval": "intervals",
    "predict_scores": "score_table",
    "load_model": "deploy",
    "predict_cells": "deploy",
    "save_model": "deploy",
    "train_model": "deploy",
    "finetune_callbacks": "deploy",
    "suggest_cells": "deploy",
    "compare_conditions": "screens",
}

__all__ = ["PROTOCOL_1", "PROTOCOL_2", "__version__", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
