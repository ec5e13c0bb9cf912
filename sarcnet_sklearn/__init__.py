"""sarcnet-sklearn: SarcNet sarcomere-organization scoring as a scikit-learn estimator."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sarcnet-sklearn")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from ._columns import PROTOCOL_1, PROTOCOL_2
from .metrics import regression_report, spearman_score, spearman_scorer
from .pipeline import (
    ProtocolSelector,
    SarcNetPipeline,
    make_linear_baseline,
    make_sarcnet_pipeline,
)
from .regressor import SarcNetRegressor

__all__ = [
    "PROTOCOL_1",
    "PROTOCOL_2",
    "ProtocolSelector",
    "SarcNetPipeline",
    "SarcNetRegressor",
    "__version__",
    "make_linear_baseline",
    "make_sarcnet_pipeline",
    "regression_report",
    "spearman_score",
    "spearman_scorer",
]
