"""The paper's training recipe, the image branches and the score range, importable without torch.

The one place for what several modules default to: the estimator
(:class:`~sarcnet_sklearn.SarcNetRegressor`), :func:`~sarcnet_sklearn.deploy.train_model`,
``reproduce`` and the command line's defaults and choices.
"""

from ._backbones import BACKBONES
from ._columns import SCORE_RANGE

IMAGE_SIZE_PX = 224
"""Side of the square each cell image is resized to (the paper's 224 px)."""

MAX_EPOCHS = 100
"""Training epochs (the paper's 100)."""

BATCH_SIZE = 40
"""Cells per training batch (the paper's 40)."""

LEARNING_RATE = 5e-4
"""Adam's learning rate (the paper's 5e-4)."""

FINETUNE_LR_FACTOR = 0.2
"""Fine-tuning (``init_from``) trains at this share of the learning rate by default: learnt
weights want small steps (measured in ``benchmarks/bench_finetune.py``: at a fifth of the rate,
200 of a lab's cells gave a model 0.09 better in Spearman than at the full rate)."""

DEFAULT_BACKBONE = "resnet18"
"""The image branch of SarcNet (D-SarcNet's ResNet-18)."""

SUGGEST_RANDOM_SHARE = 0.2
"""Share of the hand-scoring order drawn at random (``suggest``), so it does not only chase
outliers."""

SUGGEST_ORDERS = ("representative", "uncertain")
"""How ``suggest`` orders the cells to score by hand (see ``suggest_cells``)."""

SUGGEST_ORDER = "representative"
"""The default of :data:`SUGGEST_ORDERS`: on the synthetic other lab of
``benchmarks/bench_finetune.py`` at least as good as random cells (+0.01 in Spearman, within the
noise), and the hand-scored cells stay a fair sample of the table, so the agreement measured on
them stands for the table's."""

SUGGEST_DENSITY = 0.0
"""Power of each cell's typicality weighing the model's uncertainty in hand-scoring orders."""

SUGGEST_GROUPS = 1
"""Groups of alike cells the model's picks for hand-scoring are spread over."""

__all__ = ["BACKBONES", "BATCH_SIZE", "DEFAULT_BACKBONE", "FINETUNE_LR_FACTOR", "IMAGE_SIZE_PX",
           "LEARNING_RATE", "MAX_EPOCHS", "SCORE_RANGE", "SUGGEST_DENSITY", "SUGGEST_GROUPS",
           "SUGGEST_ORDER", "SUGGEST_ORDERS", "SUGGEST_RANDOM_SHARE"]
