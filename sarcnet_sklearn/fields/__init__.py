"""From a microscope's field of view and its label image to per-cell scores.

- :func:`read_field`: one 2-D plane of a microscopy file (OME-TIFF, TIFF, PNG;
  CZI, ND2 and LIF with the ``formats`` extra) with its pixel size;
  :func:`read_labels`: a label image.
- :func:`cut_cells`: every labelled cell cut out exactly as the AICS
  single-cell training images were (:func:`stretch_field`, :class:`CellCrop`).
- :func:`score_fields`: fields and label images in, one row per cell out
  (position, area, Protocol 1 features, predicted score, per-cell error),
  here or on a Dask cluster (``client=``).
- :func:`score_field_files`: field files into a results folder (table,
  overlays, crops), a chunk of fields at a time, resumable.

The command line has them as ``sarcnet-sklearn fields``.
"""

from ._cut import CellCrop, cut_cells, stretch_field
from ._read import FieldImage, read_field, read_labels
from ._score import POSITION_COLUMNS, score_fields
from ._screen import FieldsRun, score_field_files

__all__ = [
    "CellCrop",
    "FieldImage",
    "FieldsRun",
    "POSITION_COLUMNS",
    "cut_cells",
    "read_field",
    "read_labels",
    "score_field_files",
    "score_fields",
    "stretch_field",
]
