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

- :func:`score_image`, :func:`reason_image`, :func:`write_field_maps`: per-pixel
  maps of a scored field (OME-TIFF that napari and Fiji lay on the field).
- :func:`segment_field`: a label image for a field without one (``classical``
  scikit-image recipe, or cellpose).

The command line has them as ``sarcnet-sklearn fields``.
"""

from ._cut import CellCrop, cut_cells, stretch_field
from ._maps import reason_image, score_image, write_field_maps
from ._read import FieldImage, read_field, read_labels
from ._score import POSITION_COLUMNS, score_fields
from ._screen import FieldsRun, score_field_files
from ._segment import segment_field

__all__ = [
    "CellCrop",
    "FieldImage",
    "FieldsRun",
    "POSITION_COLUMNS",
    "cut_cells",
    "read_field",
    "read_labels",
    "reason_image",
    "score_field_files",
    "score_fields",
    "score_image",
    "segment_field",
    "stretch_field",
    "write_field_maps",
]
