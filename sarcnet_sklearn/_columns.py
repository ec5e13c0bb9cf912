"""Canonical column names shared by the datasets, the pipelines and the CLI."""

PROTOCOL_1 = [
    "cell_area",
    "cell_aspect_ratio",
    "max_coefficient_variation",
    "peak_height",
    "peak_distance",
]
"""Set 1 (morphology) and Set 2 (global alignment) features: the paper's Protocol 1."""

PROTOCOL_2 = PROTOCOL_1 + [
    "frac_area_background",
    "frac_area_diffuse_other",
    "frac_area_fibers",
    "frac_area_disorganized_puncta",
    "frac_area_organized_puncta",
    "frac_area_organized_zdiscs",
]
"""Protocol 1 plus Set 3 (local organization): the paper's Protocol 2."""

PROTOCOLS = {1: PROTOCOL_1, 2: PROTOCOL_2}

IMAGE_COLUMN = "image_path"
PATH_RULE = (
    "relative image paths in a CSV are taken relative to the CSV's folder, and the CSVs this "
    "package writes hold image paths relative to their own folder (or absolute)"
)
"""The one rule for image paths in cell tables (the :data:`IMAGE_COLUMN` column), in the API
and on the command line; :mod:`sarcnet_sklearn.tables` applies it."""
TARGET_COLUMN = "score"
EXPERT_COLUMNS = ["expert_1", "expert_2"]
DAY_COLUMN = "day"
COHORT_COLUMN = "cohort"
ERROR_COLUMN = "error"
"""Why a row of an output table could not be measured or scored (empty where it was)."""
REASON_COLUMN = "reason"
"""The short code of :data:`ERROR_COLUMN`'s reason (``border``, ``tiny``...; see
``sarcnet_sklearn._reasons``), in ``fields``' ``cells.csv`` and the napari features table."""

PIXEL_SIZE_UM = 0.12
"""Pixel size of the AICS single-cell images, in micrometres."""

PIXEL_SIZE_COLUMN = "pixel_size"
"""Micrometres per pixel of each cell's image, in cell tables (fields' cells.csv, crops)."""

STRUCTURE_PAGE = 1
"""Page of the AICS single-cell TIFF holding alpha-actinin-2 (the structure)."""

CELL_MASK_PAGE = 9
"""Page of the AICS single-cell TIFF holding the cell mask."""

N_AICS_PAGES = 10

SCORE_PRED_COLUMN = "score_pred"
"""The predicted score in every per-cell output table (predict, fields, explain, report, napari)."""

SCORE_RANGE = (1.0, 5.0)
"""The experts' score range, the default of a model's own ``score_range``."""

SCORE_LOW_COLUMN, SCORE_HIGH_COLUMN = "score_low", "score_high"
"""Bounds of a cell's conformal prediction interval, clipped to the model's score range."""
SCORE_RAW_COLUMN = "score_raw"
"""The model's output before the score policy (not clipped; kept where a cell is refused)."""
OUT_OF_RANGE_COLUMN = "out_of_range"
"""The features of a cell far outside the training data (empty where none are)."""

FIELD_COLUMN = "field"
WELL_COLUMN = "well"
PLATE_COLUMN = "plate"
GROUP_COLUMNS = [FIELD_COLUMN, WELL_COLUMN, PLATE_COLUMN]
"""Where a cell was imaged: cells of one field (well, plate) are not independent."""

SARCOMERE_LENGTH_COLUMN = "sarcomere_length_um"
"""Dominant sarcomere period of a cell, in micrometres."""
ORIENTATION_ORDER_COLUMN = "orientation_order"
"""Orientation order parameter of a cell's myofibrils: 0 isotropic, 1 all parallel."""
SARCOMERIC_FRACTION_COLUMN = "sarcomeric_fraction"
"""Fraction of a cell's area showing a sarcomeric (periodic) pattern."""
SARCOMERE_COLUMNS = [SARCOMERE_LENGTH_COLUMN, ORIENTATION_ORDER_COLUMN, SARCOMERIC_FRACTION_COLUMN]
MEASURABLE_FEATURES = PROTOCOL_1 + SARCOMERE_COLUMNS
"""The features measured from a cell's image and mask: a model using only these can score
any cell image (fields of view, folders of images); the sarcomere measures are optional model
features (e.g. ``protocol=PROTOCOL_1 + SARCOMERE_COLUMNS``)."""
