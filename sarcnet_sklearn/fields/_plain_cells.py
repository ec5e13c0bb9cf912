"""Single-cell images as a microscope and a segmentation tool leave them: one plain image per
cell (any TIFF or PNG, not the AICS 10-page layout) and a mask file beside it.

Each image is treated as a field holding one cell: the mask (any non-zero pixel) is the
cell, cut by the AICS recipe (:func:`~sarcnet_sklearn.fields.cut_cells`: the image's
0-99.8 % stretch, the cell's bounding box, the mask, the cell's own stretch), and handed to
the model as an in-memory AICS-style stack (structure and mask pages), so its Protocol 1
features are measured and it is scored exactly as a cell of a field. The pixel size comes
from the image's metadata unless given.

A table names the masks in a ``mask_path`` column; ``predict --masks FOLDER`` pairs each
image with the file of that folder named after it (``cell7.tif`` with ``cell7.tif``,
``cell7_mask.tif``, ``cell7_masks.png``, ``cell7_cp_masks.png``, ``cell7_seg.npy``...).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from .._columns import CELL_MASK_PAGE, ERROR_COLUMN, IMAGE_COLUMN, N_AICS_PAGES, PIXEL_SIZE_COLUMN

MASK_PATH_COLUMN = "mask_path"
"""Column of a cell table naming each plain image's mask file."""
MASK_SUFFIXES = ("", "_mask", "_masks", "_cp_masks", "_seg", "_label", "_labels", "_cell")
"""What may follow an image's name in the name of its mask (``predict --masks``)."""
MASK_EXTENSIONS = (".tif", ".tiff", ".png", ".npy")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def pair_masks(images, masks_folder: str | PathLike) -> list[str | None]:
    """The mask file of each image in ``masks_folder``; None where there is none (or several).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("c1_cp_masks.png", "c2.tif", "c3_mask.tif", "c3_seg.npy"):
    ...     _ = (folder / name).write_bytes(b"")
    >>> [None if m is None else pathlib.Path(m).name
    ...  for m in pair_masks(["x/c1.tif", "x/c2.tif", "x/c3.tif", "x/c4.tif"], folder)]
    ['c1_cp_masks.png', 'c2.tif', None, None]
    """
    folder = Path(masks_folder)
    if not folder.is_dir():
        raise ValueError(f"--masks {folder}: no such folder")
    files = {path.name.lower(): path for path in folder.iterdir() if path.is_file()}
    pairs: list[str | None] = []
    for image in images:
        stem = _stem(Path(str(image))).lower()
        found = [files[name] for suffix in MASK_SUFFIXES for extension in MASK_EXTENSIONS
                 if (name := f"{stem}{suffix}{extension}") in files]
        if suffix_free := [p for p in found if _stem(p).lower() == stem]:
            found = suffix_free if len(suffix_free) == 1 else found
        pairs.append(str(found[0]) if len(found) == 1 else None)
    return pairs


def cell_stack(image_path, mask_path, *, structure_page: int = 1,
               pixel_size: float | None = None) -> tuple[np.ndarray, float | None]:
    """A plain cell image and its mask as an AICS-style stack, and the image's pixel size.

    Returns
    -------
    stack : ndarray of uint8, shape (10, height, width)
        The cell cut by the AICS recipe on page ``structure_page``, its mask (255) on
        page 9.
    pixel_size : float or None
        From ``pixel_size`` or the image's metadata; None when neither gives one.

    Raises
    ------
    ValueError
        Naming the file: unreadable, image and mask of different shapes, a mask without a
        cell or with several cells, a cell that cannot be cut (one pixel, no signal).
    """
    from ._cut import cut_cells
    from ._read import read_field, read_labels

    field = read_field(image_path, pixel_size=pixel_size)
    mask = np.asarray(read_labels(mask_path))
    if mask.shape != field.data.shape:
        raise ValueError(f"{mask_path}: the mask has shape {mask.shape} but the image "
                         f"{image_path} has shape {field.data.shape}")
    ids = np.unique(mask[mask != 0])
    if len(ids) == 0:
        raise ValueError(f"{mask_path}: the mask holds no cell (every pixel is 0)")
    if len(ids) > 1 and not (mask.dtype == np.uint8 and set(ids.tolist()) <= {1, 255}):
        raise ValueError(f"{mask_path}: the mask holds {len(ids)} cells; give one cell per "
                         "image (or score the whole image with 'fields' and this label image)")
    (cell,) = cut_cells(field, (mask != 0).astype(np.uint8))
    if cell.error is not None:
        raise ValueError(f"{image_path}: {cell.error}")
    stack = np.zeros((N_AICS_PAGES, *cell.image.shape), dtype=np.uint8)
    stack[structure_page] = cell.image
    stack[CELL_MASK_PAGE] = cell.mask.astype(np.uint8) * 255
    return stack, field.pixel_size


def predict_masked_cells(model, cells: pd.DataFrame, *, pixel_size: float | None = None,
                         **options) -> pd.DataFrame:
    """:func:`~sarcnet_sklearn.deploy.predict_cells` for plain images with a ``mask_path``.

    Rows whose image and mask cannot be cut get the reason in ``error``; the others are
    scored from their in-memory stacks (their ``image_path`` is kept as given).

    Examples
    --------
    >>> # model: a Protocol 1 model; cells: a table with image_path and mask_path columns
    >>> scores = predict_masked_cells(model, cells)  # doctest: +SKIP
    """
    from ..deploy import ModelInputs, predict_cells

    inputs = ModelInputs.of(model)
    table = cells.copy()
    stacks = np.empty(len(table), dtype=object)
    sizes = np.full(len(table), np.nan)
    errors: list[str | None] = []
    for row, (image, mask) in enumerate(zip(table[IMAGE_COLUMN], table[MASK_PATH_COLUMN],
                                            strict=True)):
        try:
            if not isinstance(mask, (str, PathLike)) or not str(mask).strip():
                raise ValueError(f"{image}: no mask file for this image")
            stacks[row], size = cell_stack(image, mask, structure_page=inputs.structure_page,
                                           pixel_size=pixel_size)
            sizes[row] = np.nan if size is None else size
            errors.append(None)
        except (ValueError, OSError) as exc:
            errors.append(str(exc))
    ok = np.array([error is None for error in errors], dtype=bool)
    if PIXEL_SIZE_COLUMN not in table or pixel_size is not None:
        table[PIXEL_SIZE_COLUMN] = sizes
    if ok.any():
        ready = table[ok].copy()
        ready[IMAGE_COLUMN] = stacks[ok]
        predicted = predict_cells(model, ready, mask_page=CELL_MASK_PAGE, pixel_size=pixel_size,
                                  **options)
        predicted[IMAGE_COLUMN] = table.loc[ok, IMAGE_COLUMN].to_numpy()
    else:
        predicted = pd.DataFrame(index=table.index[:0])
    failed = table.loc[~ok].copy()
    failed[ERROR_COLUMN] = [error for error in errors if error is not None]
    out = pd.concat([predicted, failed]).reindex(index=table.index)
    for column in ("score_pred", "score_raw", ERROR_COLUMN):
        if column not in out:
            out[column] = np.nan
    return out
