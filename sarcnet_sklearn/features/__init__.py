"""Protocol 1 features measured from cell images.

Set 1 (cell morphology, CellProfiler's MeasureObjectSizeShape) and Set 2 (GLCM
global alignment, with the numbers of ``analyze_orientation`` in
``fish_morphology_code/processing/structure_organization/global_alignment/alignment.py``
of AllenCellModeling/fish_morphology_code, which computed the AICS tables) of
one cell with :func:`extract_protocol1`; of a table of image files with the
scikit-learn transformer :class:`Protocol1Extractor`; and the individual steps
for those who need them. :func:`measure_sarcomeres` gives the sarcomere length (um) and the
myofibrils' orientation order that biologists check a score against.
"""

from ._extractor import PROTOCOL1_ERROR_COLUMN, Protocol1Extractor, measure_image_file
from ._fit import decay_residuals, fit_exp_decay
from ._glcm import (
    ANGLES,
    DISTANCES,
    cooccurrence_matrices,
    glcm_correlation,
    glcm_correlation_from_matrices,
    glcm_offsets,
)
from ._protocol1 import alignment_from_correlation, cell_morphology, extract_protocol1
from ._quantize import check_cell, quantize_cell
from ._sarcomere import measure_sarcomeres

__all__ = [
    "ANGLES",
    "DISTANCES",
    "PROTOCOL1_ERROR_COLUMN",
    "Protocol1Extractor",
    "alignment_from_correlation",
    "cell_morphology",
    "check_cell",
    "cooccurrence_matrices",
    "decay_residuals",
    "extract_protocol1",
    "fit_exp_decay",
    "glcm_correlation",
    "glcm_correlation_from_matrices",
    "glcm_offsets",
    "measure_image_file",
    "measure_sarcomeres",
    "quantize_cell",
]
