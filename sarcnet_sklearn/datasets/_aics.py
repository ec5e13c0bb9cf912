"""Reading the AICS hiPSC-CM dataset (Gerbin et al. 2021) from its Quilt layout."""

from __future__ import annotations

import re
import warnings
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from .._columns import (
    COHORT_COLUMN,
    DAY_COLUMN,
    EXPERT_COLUMNS,
    FIELD_COLUMN,
    GROUP_COLUMNS,
    IMAGE_COLUMN,
    PIXEL_SIZE_COLUMN,
    PIXEL_SIZE_UM,
    PLATE_COLUMN,
    PROTOCOL_2,
    TARGET_COLUMN,
    WELL_COLUMN,
)

COHORTS = ("fish_1", "fish_2")
FEATURES_DIR = "2d_autocontrasted_single_cell_features_{cohort}/features"
FIELDS_DIR = "2d_autocontrasted_fields_and_single_cells_{cohort}"
IMAGE_DIR = "rescaled_2D_single_cell_tiff_path"
KEYS = ["napariCell_ObjectNumber", "fov_path"]

EXPERT_1, EXPERT_2 = "mh_structure_org_score", "kg_structure_org_score"
SET3_TABLE_COLUMNS = (
    "Frac_Area_Background",
    "Frac_Area_DiffuseOthers",
    "Frac_Area_Fibers",
    "Frac_Area_Disorganized_Puncta",
    "Frac_Area_Organized_Puncta",
    "Frac_Area_Organized_ZDisks",
)
"""Set 3 columns of the features table, in the order of PROTOCOL_2's fractions."""
FEATURE_TABLE_COLUMNS = [
    "napariCell_ObjectNumber",
    "fov_path",
    "napariCell_AreaShape_Area",
    "napariCell_AreaShape_MinorAxisLength",
    "napariCell_AreaShape_MajorAxisLength",
    *SET3_TABLE_COLUMNS,
    "Maximum_Coefficient_Variation",
    "Peak_Height",
    "Peak_Distance",
    "cell_age",
    EXPERT_1,
    EXPERT_2,
]
TABLE_PIXEL_SIZE_COLUMN = "synthetic_pixel_size_um"
"""A features-table column holding each cell's pixel size (um), written by
:func:`~sarcnet_sklearn.datasets.make_synthetic_aics`; the AICS tables have none (their images
are all at 0.12 um/px). :func:`load_aics` gives it as the ``pixel_size`` column."""
METADATA_COLUMNS = [
    "napariCell_ObjectNumber",
    "original_fov_location",
    "rescaled_2D_single_cell_tiff_path",
]
RENAMED_FEATURES = {
    **dict(zip(SET3_TABLE_COLUMNS, PROTOCOL_2[5:], strict=True)),
    "Maximum_Coefficient_Variation": "max_coefficient_variation",
    "Peak_Height": "peak_height",
}
OUTPUT_COLUMNS = (
    [IMAGE_COLUMN]
    + PROTOCOL_2
    + [TARGET_COLUMN, *EXPERT_COLUMNS, DAY_COLUMN, COHORT_COLUMN]
    + KEYS
    + GROUP_COLUMNS
)
FIELD_NAME = re.compile(r"^(?P<plate>\d+)_\d+X_\d{8}_S\d+_P\d+_(?P<well>[A-Z]\d{1,2})$")
"""An AICS field of view's file stem: ``<plate>_63X_<date>_S<scene>_P<position>_<well>``."""
SPLIT_GROUPS = ("cell", *GROUP_COLUMNS)
"""What :func:`paper_split` can keep together: nothing (cells), or a field, well or plate."""


def cell_locations(fov_paths) -> pd.DataFrame:
    """Field of view, well and plate of each cell, from its field's file path.

    The field is the file name of the field of view without its extension (cells
    of one field share it); for AICS names
    (``<plate>_63X_<date>_S<scene>_P<position>_<well>``), the well is
    ``<plate>_<well>`` and the plate the leading number. A name of another
    form gives the field only (well and plate missing).

    Parameters
    ----------
    fov_paths : array-like of str
        The ``fov_path`` (``original_fov_location``) of each cell.

    Returns
    -------
    locations : DataFrame
        Columns ``field``, ``well``, ``plate`` (:data:`~sarcnet_sklearn._columns.GROUP_COLUMNS`).

    Examples
    --------
    >>> from sarcnet_sklearn.datasets import cell_locations
    >>> cell_locations(["/allen/aics/5500000013_63X_20190807_S1_P1_B2.czi"]).iloc[0].tolist()
    ['5500000013_63X_20190807_S1_P1_B2', '5500000013_B2', '5500000013']
    """
    fields = [Path(str(path).replace("\\", "/")).stem for path in fov_paths]
    parts = [FIELD_NAME.match(field) for field in fields]
    return pd.DataFrame({
        FIELD_COLUMN: fields,
        WELL_COLUMN: [f"{m['plate']}_{m['well']}" if m else None for m in parts],
        PLATE_COLUMN: [m["plate"] if m else None for m in parts],
    })


def cell_groups(cells: pd.DataFrame, by: str) -> np.ndarray:
    """The group of each cell (its field, well or plate), checked: one label per cell.

    Parameters
    ----------
    cells : DataFrame
        A table with the ``by`` column, as :func:`load_aics` gives.
    by : {"field", "well", "plate"}

    Returns
    -------
    groups : ndarray of str, shape (n_cells,)
        For scikit-learn's group splitters (``groups=``).

    Raises
    ------
    ValueError
        For another ``by``, a table without that column, or a cell without a group.

    Examples
    --------
    >>> import pandas as pd
    >>> from sarcnet_sklearn.datasets import cell_groups
    >>> cell_groups(pd.DataFrame({"field": ["a", "a", "b"]}), "field").tolist()
    ['a', 'a', 'b']
    """
    if by not in GROUP_COLUMNS:
        raise ValueError(f"group cells by one of {GROUP_COLUMNS}, not {by!r}")
    if by not in cells.columns:
        raise ValueError(
            f"the cells have no {by!r} column to group by (load_aics gives {GROUP_COLUMNS}; "
            f"add the column to a table of your own)"
        )
    labels = cells[by]
    missing = labels.isna().to_numpy()
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} cell(s) without a {by!r}, e.g. row {cells.index[missing][0]}"
        )
    return labels.astype(str).to_numpy()


def aics_paths(root: str | PathLike, cohort: str) -> dict[str, Path]:
    """Locations of one cohort's features table, metadata table and image folder under ``root``.

    Raises FileNotFoundError naming what is missing.
    """
    root = Path(root)
    features_dir = root / FEATURES_DIR.format(cohort=cohort)
    fields_dir = root / FIELDS_DIR.format(cohort=cohort)
    found = sorted(features_dir.glob("*_cp_features.csv"))
    if len(found) > 1:
        raise ValueError(f"{features_dir}: expected one *_cp_features.csv, found {len(found)}")
    paths = {
        "features": found[0] if found else features_dir / "<hash>_cp_features.csv",
        "metadata": fields_dir / "metadata.csv",
        "images": fields_dir / IMAGE_DIR,
    }
    missing = [str(path) for path in paths.values() if not path.exists()]
    if missing:
        raise FileNotFoundError(
            f"not an AICS dataset root ({root}): missing {missing}. Expected the Quilt package "
            "aics/integrated_transcriptomics_structural_organization_hipsc_cm (cohorts "
            f"{', '.join(COHORTS)}), or a folder made by make_synthetic_aics."
        )
    return paths


def _read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    table = pd.read_csv(path, low_memory=False)
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    return table


def _read_cohort(root: Path, cohort: str) -> pd.DataFrame:
    paths = aics_paths(root, cohort)
    features = _read_table(paths["features"], FEATURE_TABLE_COLUMNS)
    optional = [TABLE_PIXEL_SIZE_COLUMN] if TABLE_PIXEL_SIZE_COLUMN in features.columns else []
    features = features[FEATURE_TABLE_COLUMNS + optional]
    metadata = _read_table(paths["metadata"], METADATA_COLUMNS)[METADATA_COLUMNS]
    metadata = metadata.rename(columns={"original_fov_location": "fov_path"})
    for table, path in ((features, paths["features"]), (metadata, paths["metadata"])):
        numbers = pd.to_numeric(table["napariCell_ObjectNumber"], errors="coerce")
        if numbers.isna().any():
            row = table.index[numbers.isna().to_numpy()][0]
            raise ValueError(f"{path}: napariCell_ObjectNumber is not a number in row {row}")
        table["napariCell_ObjectNumber"] = numbers.astype(int).astype(str)
        table["fov_path"] = table["fov_path"].astype(str)
    try:
        cells = features.merge(metadata, on=KEYS, how="inner", validate="one_to_one")
    except pd.errors.MergeError as exc:
        raise ValueError(
            f"{paths['features']} / {paths['metadata']}: a cell ({', '.join(KEYS)}) appears "
            f"more than once ({exc})"
        ) from exc
    cells[COHORT_COLUMN] = cohort
    names = cells.pop("rescaled_2D_single_cell_tiff_path").astype(str)
    images = paths["images"].resolve()
    cells[IMAGE_COLUMN] = [str(images / Path(name.replace("\\", "/")).name) for name in names]
    return cells


def load_aics(root: str | PathLike, *, check_images: bool = True) -> pd.DataFrame:
    """Load the AICS single-cell dataset as one table with the canonical columns.

    Reads both cohorts (``fish_1``, ``fish_2``) of the Quilt package under
    ``root``: each cohort's CellProfiler features table and metadata table are
    inner-joined on ``napariCell_ObjectNumber`` and the field-of-view path;
    cells are kept when both experts scored them above 0 (5,761 cells on the
    real data); the image path is the metadata's file name looked up in the
    cohort's image folder. Derived columns follow the SarcNet code: aspect
    ratio = minor / major axis length, area in um^2 (pixels x 0.12^2), peak
    distance in um (pixels x 0.12), ``score`` = mean of the two experts.

    Parameters
    ----------
    root : str or path-like
        Folder holding ``2d_autocontrasted_single_cell_features_fish_N/`` and
        ``2d_autocontrasted_fields_and_single_cells_fish_N/`` (N = 1, 2).
    check_images : bool, default=True
        Raise if a kept cell's image file does not exist.

    Returns
    -------
    cells : DataFrame
        Columns ``image_path`` (absolute), the eleven
        :data:`~sarcnet_sklearn.PROTOCOL_2` features, ``score``, ``expert_1``
        (mh), ``expert_2`` (kg), ``day``, ``cohort``, ``napariCell_ObjectNumber``,
        ``fov_path`` and where the cell was imaged, ``field``, ``well`` and
        ``plate`` (see :func:`cell_locations`); a fresh 0..n-1 index. A dataset made by
        :func:`make_synthetic_aics` adds ``pixel_size`` (um, the pixel size its images were
        rendered at), last: the pixel-size rule of every door takes it from
        there without opening the files. The AICS tables have no such column; their images
        are at 0.12 um/px.

    Raises
    ------
    FileNotFoundError
        A table, the image folder or (with ``check_images``) an image is missing.
    ValueError
        A table lacks a required column or has an unreadable key.

    Examples
    --------
    >>> from sarcnet_sklearn.datasets import load_aics, make_synthetic_aics
    >>> cells = load_aics(make_synthetic_aics("synthetic_aics", n_cells=40, image_size=32,
    ...                                       random_state=0))
    >>> cells[["image_path", "score"]].shape  # two of the 40 cells have no score
    (38, 2)
    >>> cells["pixel_size"].unique().tolist()  # cells of image_size pixels count as 0.12 um
    [0.12]
    """
    root = Path(root)
    cells = pd.concat([_read_cohort(root, cohort) for cohort in COHORTS], ignore_index=True)
    keep = (cells[EXPERT_1] > 0) & (cells[EXPERT_2] > 0)
    cells = cells[keep.to_numpy()].reset_index(drop=True)
    cells["cell_area"] = cells["napariCell_AreaShape_Area"] * PIXEL_SIZE_UM**2
    cells["cell_aspect_ratio"] = (
        cells["napariCell_AreaShape_MinorAxisLength"]
        / cells["napariCell_AreaShape_MajorAxisLength"]
    )
    cells["peak_distance"] = cells["Peak_Distance"] * PIXEL_SIZE_UM
    cells = cells.rename(
        columns={**RENAMED_FEATURES, EXPERT_1: "expert_1", EXPERT_2: "expert_2", "cell_age": "day"}
    )
    cells[TARGET_COLUMN] = cells[EXPERT_COLUMNS].mean(axis=1)
    cells[GROUP_COLUMNS] = cell_locations(cells["fov_path"]).to_numpy()
    columns = list(OUTPUT_COLUMNS)
    if TABLE_PIXEL_SIZE_COLUMN in cells.columns:  # a synthetic dataset's rendering pixel size
        cells[PIXEL_SIZE_COLUMN] = pd.to_numeric(cells.pop(TABLE_PIXEL_SIZE_COLUMN),
                                                 errors="coerce")
        columns.append(PIXEL_SIZE_COLUMN)
    if check_images:
        exists = np.array([Path(path).is_file() for path in cells[IMAGE_COLUMN]], dtype=bool)
        if not exists.all():
            missing = cells.loc[~exists, IMAGE_COLUMN].tolist()
            raise FileNotFoundError(
                f"{len(missing)} image file(s) listed in the metadata are missing, "
                f"e.g. {missing[:3]}"
            )
    return cells[columns]


def paper_split(
    cells: pd.DataFrame,
    random_state: int = 42,
    stratify_column: str = "expert_1",
    *,
    by: str = "cell",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The paper's train / validation / test split, cell by cell or by field (well, plate).

    20 % of the cells go to the test set, then 20 % of the rest to validation,
    both stratified on expert 1's score with ``random_state`` 42, as in the
    SarcNet code: 3,686 / 922 / 1,153 cells on the 5,761 real cells.

    Cells of one field of view share their plate, well, day and imaging, and
    their scores are alike (a quarter of the score's variance lies between
    fields on the real labels), so a cell split can overstate accuracy. With
    ``by="field"`` (``"well"``, ``"plate"``) no field is in two parts: the
    test set is one fold of :class:`~sklearn.model_selection.StratifiedGroupKFold`
    with 5 folds (about 20 % of the cells), validation one fold of 5 of the rest,
    both as stratified on ``stratify_column`` as whole groups allow.

    Parameters
    ----------
    cells : DataFrame
        A table from :func:`load_aics` (any table with ``stratify_column``, and
        the ``by`` column unless ``by="cell"``).
    random_state : int, default=42
    stratify_column : str, default="expert_1"
    by : {"cell", "field", "well", "plate"}, default="cell"
        Keep the cells of each group in one part; "cell": the paper's split.

    Returns
    -------
    train, valid, test : DataFrame
        Row subsets of ``cells`` (original index kept).

    Examples
    --------
    >>> from sarcnet_sklearn.datasets import paper_split
    >>> # cells: scored cells, e.g. load_aics(make_synthetic_aics("synthetic_aics"))
    >>> train, valid, test = paper_split(cells, stratify_column="day")  # a small table
    >>> len(train) + len(valid) + len(test) == len(cells)
    True
    >>> train, valid, test = paper_split(cells, stratify_column="day", by="field")
    >>> set(train["field"]).isdisjoint(test["field"])
    True
    """
    if by not in SPLIT_GROUPS:
        raise ValueError(f"by must be one of {list(SPLIT_GROUPS)}, got {by!r}")
    if stratify_column not in cells.columns:
        raise ValueError(f"cells has no column {stratify_column!r} to stratify on")
    if by != "cell":
        return _group_split(cells, random_state, stratify_column, by)
    try:
        rest, test = train_test_split(
            cells, test_size=0.2, random_state=random_state, stratify=cells[stratify_column]
        )
        train, valid = train_test_split(
            rest, test_size=0.2, random_state=random_state, stratify=rest[stratify_column]
        )
    except ValueError as exc:
        counts = cells[stratify_column].value_counts().sort_index().to_dict()
        raise ValueError(
            f"cannot split {len(cells)} cells stratified on {stratify_column!r} (cells per "
            f"value: {counts}): every value needs at least 2 cells in each split; use more "
            f"cells ({exc})"
        ) from exc
    return train, valid, test


def _group_split(
    cells: pd.DataFrame, random_state: int, stratify_column: str, by: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One fold of five for test, then one of five of the rest for validation, by group."""
    groups = pd.Series(cell_groups(cells, by), index=cells.index)

    def fifth(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        names = groups.loc[table.index]
        if names.nunique() < 5:
            raise ValueError(
                f"cannot split {len(table)} cells by {by!r}: they come from "
                f"{names.nunique()} {by}(s), and a split keeping each {by} in one part "
                "needs at least 5 (use a smaller group, e.g. by='field')"
            )
        splitter = StratifiedGroupKFold(5, shuffle=True, random_state=random_state)
        strata = table[stratify_column].astype(str).to_numpy()
        with warnings.catch_warnings():  # rare strata only make the folds less stratified
            warnings.simplefilter("ignore", UserWarning)
            keep, out = next(splitter.split(table, strata, names.to_numpy()))
        return table.iloc[keep], table.iloc[out]

    rest, test = fifth(cells)
    train, valid = fifth(rest)
    return train, valid, test
