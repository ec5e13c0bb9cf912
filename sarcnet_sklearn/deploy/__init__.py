"""Deployment: train and save a model, load it anywhere, score any folder of cells safely.

:func:`train_model` fits a SarcNet pipeline and records how; :func:`save_model`
and :func:`load_model` write and read model files with their metadata (a
joblib file, or a pickle-free ``"safe"`` folder/.zip for models from others);
:func:`predict_cells` scores a table of cells row by row, so that a bad image
or feature gives that row an error message instead of stopping the run;
:func:`model_card` / :func:`read_model_card`: what a model file is and was trained on.
"""

from .._columns import ERROR_COLUMN, SCORE_RANGE
from ._card import model_card, read_model_card
from ._checks import ModelInputs, check_cells
from ._finetune import InitialWeights, finetune_callbacks
from ._model_file import (
    FORMAT_VERSION,
    ModelVersionWarning,
    load_model,
    model_metadata,
    save_model,
)
from ._predict import (
    HIGH_COLUMN,
    LOW_COLUMN,
    RANGE_COLUMN,
    RAW_COLUMN,
    SCORE_COLUMN,
    predict_cells,
)
from ._suggest import cell_uncertainty, suggest_cells
from ._train import ExcludedCellsWarning, train_model

__all__ = [
    "ERROR_COLUMN",
    "FORMAT_VERSION",
    "HIGH_COLUMN",
    "LOW_COLUMN",
    "RANGE_COLUMN",
    "RAW_COLUMN",
    "SCORE_COLUMN",
    "SCORE_RANGE",
    "ExcludedCellsWarning",
    "InitialWeights",
    "ModelInputs",
    "ModelVersionWarning",
    "cell_uncertainty",
    "check_cells",
    "finetune_callbacks",
    "load_model",
    "model_card",
    "model_metadata",
    "predict_cells",
    "read_model_card",
    "save_model",
    "suggest_cells",
    "train_model",
]
