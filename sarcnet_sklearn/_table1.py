"""The rows of Table 1 that :mod:`sarcnet_sklearn.reproduce` fits, importable without torch.

:class:`Row`, :data:`ROWS` and :data:`ROW_KEYS` are also exported by
:mod:`sarcnet_sklearn.reproduce`; they live here so that the command line offers the rows as
choices (``reproduce --rows``) without importing torch, skorch or pandas.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Row:
    """One row of Table 1: a model and how to build it."""

    key: str
    label: str
    protocol: int
    params: dict = field(default_factory=dict)
    linear: bool = False


ROWS = (
    Row("linear", "Linear regression", 2, linear=True),
    Row("resnet18", "ResNet-18", 2, {"backbone": "resnet18", "use_features": False}),
    Row("densenet", "DenseNet", 2, {"backbone": "densenet121", "use_features": False}),
    Row("alexnet", "AlexNet", 2, {"backbone": "alexnet", "use_features": False}),
    Row("sarcnet_p1", "SarcNet (Protocol 1)", 1),
    Row("sarcnet_p2", "SarcNet (Protocol 2)", 2),
    Row("sarcnet_d4", "SarcNet (Protocol 2), D4 augmentation + test-time averaging", 2,
        {"augment": "d4", "test_time_augment": True}),
    Row("convnext_tiny", "ConvNeXt-Tiny", 2, {"backbone": "convnext_tiny", "use_features": False}),
)
"""The paper's six rows, then the orientation-invariant SarcNet and ConvNeXt-Tiny (image only,
D-SarcNet's backbone), which have no paper numbers."""
ROW_KEYS = tuple(row.key for row in ROWS)

SPLITS = ("cell", "field")
"""The splits ``reproduce`` fits every row on by default: the paper's (cell by cell) and by
field of view (no field in two parts, :func:`~sarcnet_sklearn.datasets.paper_split`
``by="field"``)."""
