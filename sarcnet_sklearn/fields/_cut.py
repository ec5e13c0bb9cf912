"""Cutting single cells out of a field of view, exactly as the AICS single-cell files were cut.

The recipe (``SARCNET_FACTS.md`` section 6; AICS ``fish_morphology_code``,
``processing/auto_contrast/stretch_utils.py``): the whole field is
contrast-stretched to 8 bits once (:func:`stretch_field`), then each cell's
inclusive bounding box is cut, multiplied by the cell's mask and stretched
again to the full 8-bit range (:func:`cut_cells`). A model trained on the AICS
files only sees the same intensity scale for a lab's cells if every step is
the same, so each step here calls the same scikit-image function.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage import img_as_float64, img_as_ubyte
from skimage.exposure import rescale_intensity

from ._read import FieldImage, field_name

FIELD_QUANTILES = (0.0, 0.998)
"""Quantiles of the whole field's intensities clipped to (AICS fluorescence channels)."""


@dataclass
class CellCrop:
    """One cell cut out of a field of view.

    Attributes
    ----------
    label : int
        The cell's value in the label image.
    bbox : tuple of int
        ``(min_row, min_col, max_row, max_col)`` in the field, maxima exclusive
        (as :func:`skimage.measure.regionprops`).
    centroid : tuple of float
        ``(row, col)`` of the cell's pixels in the field.
    area : int
        Pixels in the cell.
    image : ndarray of uint8, shape (max_row - min_row, max_col - min_col)
        The masked, stretched crop: 0 outside the cell.
    mask : ndarray of bool, same shape
        The cell's pixels in the crop.
    touches_border : bool
        Whether the cell reaches the field's edge (it may be cut off; the AICS
        pipeline left such cells out).
    error : str or None
        Why the cell cannot be scored (one pixel, no signal), or None.
    """

    label: int
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]
    area: int
    image: np.ndarray
    mask: np.ndarray
    touches_border: bool
    error: str | None = None


def stretch_field(
    plane: np.ndarray, quantiles: tuple[float, float] = FIELD_QUANTILES
) -> np.ndarray:
    """Contrast-stretch a whole field to uint8 as the AICS pipeline did (step 1).

    ``img_as_float64``, clip to the field's ``quantiles`` (``np.quantile``),
    ``rescale_intensity`` to [0, 1] and ``img_as_ubyte``.

    Parameters
    ----------
    plane : ndarray of shape (height, width)
        One channel of the field, in its stored dtype (16-bit, 8-bit, float).
    quantiles : tuple of float, default=(0.0, 0.998)
        The AICS values for fluorescence channels.

    Returns
    -------
    stretched : ndarray of uint8

    Examples
    --------
    >>> import numpy as np
    >>> field = np.arange(1000, dtype=np.uint16).reshape(25, 40)
    >>> stretch_field(field)[[0, -1], [0, -1]].tolist()
    [0, 255]
    """
    image = img_as_float64(plane)
    low, high = np.quantile(image, quantiles)
    return _to_ubyte(rescale_intensity(np.clip(image, low, high)))


def _to_ubyte(image: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # img_as_ubyte warns of the precision it drops
        return img_as_ubyte(image)


def cut_cells(field: FieldImage | np.ndarray, labels: np.ndarray, *,
              stretched: np.ndarray | None = None) -> list[CellCrop]:
    """Cut every labelled cell out of a field by the AICS recipe.

    The field is stretched with :func:`stretch_field`; for each label ``k``
    (ascending), the rows and columns from the first to the last pixel of
    ``labels == k`` (inclusive) are cut, multiplied by the cell's mask,
    stretched to their own full range with ``rescale_intensity`` and converted
    with ``img_as_ubyte``.

    Parameters
    ----------
    field : FieldImage or ndarray of shape (height, width)
        The structure channel (alpha-actinin-2), e.g. from :func:`read_field`.
    labels : ndarray of shape (height, width)
        Integer label image: 0 = background, ``k > 0`` = cell ``k``.

    Returns
    -------
    cells : list of CellCrop
        One per label, in ascending label order. A cell of one pixel or with no
        signal in the stretched field gets its reason in ``error``.

    Raises
    ------
    ValueError
        For a field that is not 2-D, holds NaN/infinite values or is all
        zero; a label image of another shape, not integer, negative or
        without any cell. The message names the field.

    Examples
    --------
    >>> from sarcnet_sklearn.datasets import make_synthetic_field
    >>> field, labels = make_synthetic_field((256, 256), n_cells=4, random_state=0)
    >>> cells = cut_cells(field, labels)
    >>> [cell.label for cell in cells]
    [1, 2, 3, 4]
    >>> cells[0].image.dtype, cells[0].image.shape == cells[0].mask.shape
    (dtype('uint8'), True)
    """
    data = field.data if isinstance(field, FieldImage) else np.asarray(field)
    name = field_name(field)
    check_field(data, name)
    labels = check_labels(labels, data.shape, name)
    if stretched is None:
        stretched = stretch_field(data)
    elif stretched.shape != data.shape:
        raise ValueError(f"{name}: the stretched field has shape {stretched.shape}, the field "
                         f"{data.shape}")
    height, width = data.shape
    values, compact = compact_labels(labels)
    _check_coherent(compact, name)
    cells = []
    for index, box in enumerate(ndi.find_objects(compact)):
        if box is None:
            continue
        label = int(values[index])
        mask = compact[box] == index + 1
        crop = _to_ubyte(rescale_intensity(stretched[box] * mask.astype(np.float64)))
        rows, cols = np.nonzero(mask)
        min_row, min_col = box[0].start, box[1].start
        bbox = (min_row, min_col, box[0].stop, box[1].stop)
        area = len(rows)
        error = None
        if area == 1:
            error = f"label {label} has a single pixel; it is not a cell"
        elif not crop.any():
            error = f"label {label} holds no signal: its crop of the stretched field is all zero"
        cells.append(
            CellCrop(
                label=label,
                bbox=bbox,
                centroid=(min_row + rows.mean(), min_col + cols.mean()),
                area=area,
                image=crop,
                mask=mask,
                touches_border=bool(
                    bbox[0] == 0 or bbox[1] == 0 or bbox[2] == height or bbox[3] == width
                ),
                error=error,
            )
        )
    return cells


def _check_coherent(labels: np.ndarray, name: str) -> None:
    """Raise when neighbouring cell pixels rarely share a label: an intensity image, not labels.

    In a segmentation nearly every cell pixel has the same label as its right
    neighbour; in a noisy intensity image taken for labels (field and labels
    swapped, or the wrong file) few do.
    """
    left, right = labels[:, :-1], labels[:, 1:]
    inside = left > 0
    if inside.sum() < 100:
        return
    same = np.count_nonzero((left == right) & inside) / np.count_nonzero(inside)
    if same < 0.5:
        raise ValueError(
            f"{name}: this does not look like a label image: only {same:.0%} of the labelled "
            "pixels share their label with their right neighbour; is it an intensity image "
            "(were the field and its labels swapped)?"
        )


def compact_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map a label image's ids, of any size, once to compact ids 1..n.

    Returns ``values`` (ascending, without the background) and ``compact``,
    an ``intp`` image where a pixel of label ``values[k - 1]`` holds ``k`` (0
    stays background). Overlays, score maps and :func:`cut_cells` index
    lookups with ``compact``, so their memory does not depend on the ids'
    values (64-bit object ids, ids of 2**63 and more). Small ids are kept as
    they are (``values`` is then ``1..max``, with ids absent from the image).

    Examples
    --------
    >>> values, compact = compact_labels(np.array([[0, 2**40], [7, 7]], dtype=np.int64))
    >>> values.tolist(), compact.tolist()
    ([7, 1099511627776], [[0, 2], [1, 1]])
    """
    labels = np.asarray(labels)
    top = int(labels.max()) if labels.size else 0
    if top <= max(4 * labels.size, 1 << 16):
        return np.arange(1, top + 1).astype(labels.dtype), labels.astype(np.intp, copy=False)
    values, inverse = np.unique(labels, return_inverse=True)
    compact = inverse.reshape(labels.shape).astype(np.intp, copy=False)
    if values[0] != 0:
        compact += 1
    return values[values != 0], compact


def compact_ids(values: np.ndarray, labels) -> np.ndarray:
    """The compact ids (see :func:`compact_labels`) of the label ids ``labels``.

    Raises a ValueError for an id that is not in ``values``.
    """
    wanted = [int(label) for label in labels]
    if not wanted:
        return np.zeros(0, dtype=np.intp)
    positions = np.searchsorted(values, np.array(wanted, dtype=values.dtype))
    positions = np.minimum(positions, len(values) - 1)
    if len(values) == 0 or (values[positions].astype(object) != np.array(wanted, object)).any():
        raise ValueError("some labels of the table are not in the label image")
    return positions + 1


def check_field(data: np.ndarray, name: str) -> None:
    """Raise a ValueError naming the field unless it is a finite, non-blank 2-D plane."""
    if data.ndim != 2:
        raise ValueError(f"{name}: the field must be one 2-D plane, got shape {data.shape}")
    if data.size == 0:
        raise ValueError(f"{name}: the field is empty (shape {data.shape})")
    if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise ValueError(f"{name}: the field must hold numbers, got dtype {data.dtype}")
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        count = int(np.count_nonzero(~np.isfinite(data)))
        raise ValueError(f"{name}: the field holds {count} NaN or infinite value(s)")
    if not data.any():
        raise ValueError(
            f"{name}: the field's channel is all zero; is it the alpha-actinin-2 channel?"
        )


LABEL_DTYPES_HINT = (
    "a label image holds one whole number per pixel: 0 = background, 1, 2, ... = cells "
    "(any integer or boolean type)"
)


def check_labels(labels, shape: tuple[int, ...], name: str) -> np.ndarray:
    """The label image as a non-negative integer array of ``shape``, or a ValueError naming it.

    Any integer type is kept as it is (ids of any size, up to 2**64 - 1); a
    boolean mask is one cell; a floating-point image holding whole numbers is
    converted. Negative labels, fractions, NaN and other types are refused.

    Examples
    --------
    >>> check_labels(np.array([[0.0, 3.0]], np.float32), (1, 2), "x").tolist()
    [[0, 3]]
    >>> check_labels(np.array([[0, -2]]), (1, 2), "x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: x: the label image has negative labels (min -2; 1 pixel(s)); a label image ...
    """
    labels = np.asarray(labels)
    if labels.shape != tuple(shape):
        raise ValueError(
            f"{name}: the label image has shape {labels.shape} but the field has shape "
            f"{tuple(shape)}; give the label image made from this field"
        )
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    elif np.issubdtype(labels.dtype, np.floating):
        finite = np.isfinite(labels)
        if not finite.all() or not np.array_equal(labels, np.round(labels)):
            raise ValueError(
                f"{name}: the label image must hold integer labels, got non-integer "
                f"values of dtype {labels.dtype}; {LABEL_DTYPES_HINT}"
            )
        top = float(labels.max()) if labels.size else 0.0
        if labels.size and labels.min() >= 0:
            if top >= 2.0**64:
                raise ValueError(f"{name}: the label image has labels of 2**64 or more "
                                 f"(max {top:g}); {LABEL_DTYPES_HINT}")
            labels = labels.astype(np.uint64 if top >= 2.0**63 else np.int64)
    elif not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name}: the label image must hold integers, got dtype "
                         f"{labels.dtype}; {LABEL_DTYPES_HINT}")
    if labels.size and labels.min() < 0:
        count = int(np.count_nonzero(labels < 0))
        raise ValueError(f"{name}: the label image has negative labels (min {labels.min():g}; "
                         f"{count} pixel(s)); {LABEL_DTYPES_HINT}")
    if not labels.any():
        raise ValueError(f"{name}: the label image has no cells (every pixel is 0)")
    return labels
