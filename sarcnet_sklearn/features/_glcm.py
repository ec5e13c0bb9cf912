"""Steps 6-7: gray-level co-occurrence matrices and their correlation property.

Two equivalent routes are provided:

- :func:`cooccurrence_matrices` counts the matrices themselves (one
  ``np.bincount`` per distinct offset); :func:`glcm_correlation_from_matrices`
  then computes ``graycoprops(P, "correlation")`` for all of them at once.
- :func:`glcm_correlation` (the fast route) never forms the matrices. The
  correlation of a GLCM without level 0 is the Pearson correlation of the
  level pairs ``(q(x), q(x + offset))`` over pixel pairs that both lie in the
  cell, so it only needs six sums per offset: the pair count and the sums of
  ``i``, ``j``, ``i^2``, ``j^2`` and ``i j``. Each is a cross-correlation of
  two of the images ``m`` (in-cell indicator), ``q`` and ``q^2``, and all of
  them, for every offset at once, come from a few FFTs. The sums are integers
  and are recovered exactly by rounding (two of them per transform, see
  :func:`_pair_sums`).
"""

from __future__ import annotations

import functools
import math
import threading

import numpy as np
import scipy.fft

DISTANCES = np.linspace(0, 32, 33)
"""The 33 pixel distances of the published method, 0 to 32."""

ANGLES = np.linspace(0, np.pi, 16)
"""The 16 angles of the published method, 0 to pi inclusive."""


def glcm_offsets(distances: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Pixel offsets ``(row, col)`` that ``skimage.feature.graycomatrix`` uses.

    ``graycomatrix`` pairs pixel ``(r, c)`` with ``(r + round(sin(angle) * d),
    c + round(cos(angle) * d))``, rounding half away from zero (C ``round``).

    Parameters
    ----------
    distances : array-like of shape (n_distances,)
    angles : array-like of shape (n_angles,)
        In radians.

    Returns
    -------
    offsets : ndarray of int, shape (n_angles, n_distances, 2)

    Examples
    --------
    >>> glcm_offsets([1, 2], [0, np.pi / 2])[:, :, :].tolist()
    [[[0, 1], [0, 2]], [[1, 0], [2, 0]]]
    """
    distances = np.asarray(distances, dtype=np.float64)
    angles = np.asarray(angles, dtype=np.float64)
    offsets = np.empty((angles.size, distances.size, 2), dtype=np.intp)
    for i, angle in enumerate(angles.tolist()):
        sin, cos = math.sin(angle), math.cos(angle)
        for j, distance in enumerate(distances.tolist()):
            offsets[i, j] = _round_half_away(sin * distance), _round_half_away(cos * distance)
    return offsets


def _round_half_away(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def cooccurrence_matrices(levels: np.ndarray, offsets: np.ndarray, n_levels: int) -> np.ndarray:
    """Non-symmetric, unnormalized co-occurrence matrices for pixel offsets.

    ``P[..., i, j]`` counts the pixels of level ``i`` whose partner at the
    offset lies in the image and has level ``j``: the same counts as
    ``skimage.feature.graycomatrix`` (which returns them as ``P[i, j, d, a]``).

    Parameters
    ----------
    levels : ndarray of int, shape (height, width)
        Values in ``0..n_levels-1``.
    offsets : array-like of int, shape (..., 2)
        ``(row, col)`` offsets, e.g. from :func:`glcm_offsets`.
    n_levels : int

    Returns
    -------
    P : ndarray of int64, shape (..., n_levels, n_levels)

    Examples
    --------
    >>> levels = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 2, 2, 2], [2, 2, 3, 3]])
    >>> cooccurrence_matrices(levels, [0, 1], 4)
    array([[2, 2, 1, 0],
           [0, 2, 0, 0],
           [0, 0, 3, 1],
           [0, 0, 0, 1]])
    """
    levels = np.asarray(levels)
    offsets = np.asarray(offsets, dtype=np.intp)
    if levels.size and (levels.min() < 0 or levels.max() >= n_levels):
        raise ValueError(f"levels must lie in 0..{n_levels - 1}")
    codes = levels.astype(np.intp) * n_levels
    rows, cols = levels.shape
    flat = offsets.reshape(-1, 2)
    unique, inverse = np.unique(flat, axis=0, return_inverse=True)
    counts = np.zeros((len(unique), n_levels * n_levels), dtype=np.int64)
    for k, (dr, dc) in enumerate(unique.tolist()):
        if abs(dr) >= rows or abs(dc) >= cols:
            continue
        source = (slice(max(0, -dr), rows - max(0, dr)), slice(max(0, -dc), cols - max(0, dc)))
        target = (slice(max(0, dr), rows - max(0, -dr)), slice(max(0, dc), cols - max(0, -dc)))
        pairs = codes[source] + levels[target]
        counts[k] = np.bincount(pairs.ravel(), minlength=n_levels * n_levels)
    matrices = counts[inverse.ravel()]
    return matrices.reshape(offsets.shape[:-1] + (n_levels, n_levels))


def glcm_correlation_from_matrices(matrices: np.ndarray) -> np.ndarray:
    """The GLCM "correlation" property of many matrices at once.

    The same formula as ``skimage.feature.graycoprops(P, "correlation")``:
    each matrix is normalized to sum 1 (an all-zero matrix stays zero), and a
    matrix whose row or column levels have a standard deviation below 1e-15
    has correlation 1.

    Parameters
    ----------
    matrices : array-like, shape (..., n_levels, n_levels)

    Returns
    -------
    correlation : ndarray of float64, shape (...)

    Examples
    --------
    >>> glcm_correlation_from_matrices(np.array([[[5, 0], [0, 3]], [[0, 0], [0, 4]]]))
    array([1., 1.])
    """
    P = np.asarray(matrices, dtype=np.float64)
    n_levels = P.shape[-1]
    sums = P.sum(axis=(-2, -1), keepdims=True)
    sums[sums == 0] = 1
    P = P / sums
    index = np.arange(n_levels, dtype=np.float64)
    diff_i = index[:, None] - np.sum(index[:, None] * P, axis=(-2, -1))[..., None, None]
    diff_j = index[None, :] - np.sum(index[None, :] * P, axis=(-2, -1))[..., None, None]
    std_i = np.sqrt(np.sum(P * diff_i**2, axis=(-2, -1)))
    std_j = np.sqrt(np.sum(P * diff_j**2, axis=(-2, -1)))
    cov = np.sum(P * diff_i * diff_j, axis=(-2, -1))
    degenerate = (std_i < 1e-15) | (std_j < 1e-15)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(degenerate, 1.0, cov / (std_i * std_j))


def glcm_correlation(
    levels: np.ndarray,
    distances: np.ndarray = DISTANCES,
    angles: np.ndarray = ANGLES,
) -> np.ndarray:
    """GLCM correlation, level 0 (outside the cell) excluded, for all distances and angles.

    Equal to ``graycoprops(graycomatrix(levels, distances, angles,
    levels=L)[1:, 1:], "correlation").T`` for any ``L > levels.max()``,
    computed from exact pair statistics obtained by FFT cross-correlation.

    Parameters
    ----------
    levels : ndarray of int, shape (height, width)
        0 outside the cell, positive levels inside (see :func:`quantize_cell`).
    distances : array-like of shape (n_distances,), default=DISTANCES
    angles : array-like of shape (n_angles,), default=ANGLES
        In radians.

    Returns
    -------
    correlation : ndarray of float64, shape (n_angles, n_distances)
        Signed correlation; 1 where a matrix has no in-cell pair or a constant
        row or column level (as ``graycoprops``).

    Examples
    --------
    >>> levels = np.array([[1, 2, 1, 2], [2, 1, 2, 1]])
    >>> glcm_correlation(levels, [0, 1], [0, np.pi / 2]).round(6)
    array([[ 1., -1.],
           [ 1., -1.]])
    """
    levels = np.asarray(levels)
    if levels.ndim != 2:
        raise ValueError(f"levels must be a 2-D array, got shape {levels.shape}")
    offsets = _cached_offsets(tuple(np.ravel(distances).tolist()), tuple(np.ravel(angles).tolist()))
    rows, cols = levels.shape
    dr, dc = offsets[..., 0].ravel(), offsets[..., 1].ravel()
    inside = (np.abs(dr) < rows) & (np.abs(dc) < cols)
    dr, dc = np.where(inside, dr, 0), np.where(inside, dc, 0)
    n_pairs, sum_i, sum_j, sum_ii, sum_jj, sum_ij = _pair_sums(levels, dr, dc)
    var_i = n_pairs * sum_ii - sum_i * sum_i
    var_j = n_pairs * sum_jj - sum_j * sum_j
    cov = n_pairs * sum_ij - sum_i * sum_j
    degenerate = (var_i <= 0) | (var_j <= 0) | ~inside
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = cov / np.sqrt(var_i.astype(np.float64) * var_j.astype(np.float64))
    correlation[degenerate] = 1.0
    return correlation.reshape(offsets.shape[:2])


_EXACT = 0.1
"""Largest FFT rounding error (in units of one pair) accepted when packing two sums in one."""


def _pair_sums(
    levels: np.ndarray, dr: np.ndarray, dc: np.ndarray, pack: bool | None = None
) -> np.ndarray:
    """The six in-cell pair sums of :func:`glcm_correlation` at row/column offsets ``dr, dc``.

    For each offset ``δ``, over the pixels ``x`` with ``x`` and ``x + δ`` both in the cell
    (level > 0), with ``i = q(x)`` and ``j = q(x + δ)``: the pair count and the sums of
    ``i``, ``j``, ``i²``, ``j²`` and ``i j``, as exact integers, shape (6, n_offsets).

    They are cross-correlations ``C_ab(δ) = Σ a(x) b(x + δ)`` of the images ``m`` (the cell),
    ``q`` and ``s = q²``: ``C_mm(δ)``, ``C_qm(δ)``, ``C_qm(-δ)``, ``C_sm(δ)``, ``C_sm(-δ)`` and
    ``C_qq(δ)``, computed by FFT. Since they are integers well below 2^53, two of them fit in
    one real correlation, ``C_mm + 2^a C_sm`` and ``C_qm + 2^b C_qq``, whenever the FFT's
    rounding error stays far below one pair (``pack=None`` decides from a bound on that error),
    which halves the inverse transforms. Three forward and two inverse transforms is the
    least that exact float64 arithmetic allows: the six sums involve three images, and
    each packed correlation holds about 45 of the 53 bits.
    """
    rows, cols = levels.shape
    reach_rows, reach_cols = int(np.abs(dr).max()), int(np.abs(dc).max())
    shape = (
        scipy.fft.next_fast_len(rows + reach_rows, real=True),
        scipy.fft.next_fast_len(cols + reach_cols, real=True),
    )
    counts = _level_counts(levels)
    powers = np.arange(counts.size, dtype=np.float64) ** np.arange(5)[:, None]
    total_m, total_q, total_s, _, norm_s2 = powers @ counts  # sums of m, q, q^2, q^3, q^4
    shift_a = float(2 ** math.ceil(math.log2(total_m + 1)))  # C_mm <= total_m
    shift_b = float(2 ** math.ceil(math.log2(total_q + 1)))  # C_qm <= total_q
    if pack is None:
        # |FFT correlation error| <~ eps * log2(size) * ||a|| * ||b||
        scale = np.finfo(np.float64).eps * math.log2(shape[0] * shape[1])
        error_a = scale * shift_a * math.sqrt(norm_s2 * total_m)
        error_b = scale * shift_b * total_s
        pack = max(error_a, error_b) < _EXACT
    # The images q, m and s (or t = m + 2^a s when packing), zero-padded to the transform
    # shape in a buffer reused from call to call. s is stored reversed, in the last rows and
    # columns: its transform is then the conjugate of S (times a one-sample shift), and its
    # correlation with m costs one product.
    rows_s, cols_s = shape[0] - rows, shape[1] - cols
    images = _workspace("images", (3,) + shape, np.float64, pad_rows=True)
    q, m, s = images
    images[:2, rows:, :cols] = 0
    s[:rows_s, cols_s:] = 0
    np.copyto(q[:rows, :cols], levels, casting="unsafe")
    np.greater(levels, 0, out=m[:rows, :cols], casting="unsafe")
    # s (or t) in integers, then written reversed in one conversion pass.
    largest = (counts.size - 1) ** 2 * (shift_a if pack else 1) + 1
    squares = levels.astype(np.uint32 if largest < 2**32 else np.uint64)
    squares *= squares
    if pack:
        squares *= int(shift_a)
        squares += levels > 0
    s[rows_s:, cols_s:] = squares[::-1, ::-1]
    # The real transform runs along the rows, over the columns that hold the cell only, and
    # the complex ones along the contiguous columns, where pocketfft is faster.
    spectra = _workspace("spectra", (3, shape[0] // 2 + 1, shape[1]), np.complex128)
    _rfft(images[:2, :, :cols], axis=1, out=spectra[:2, :, :cols])
    _rfft(s[:, cols_s:], axis=0, out=spectra[2, :, cols_s:])
    spectra[:2, :, cols:] = 0
    spectra[2, :, :cols_s] = 0
    _fft(spectra, axis=2, out=spectra)
    spec_q, spec_m, spec_s = spectra  # spec_s: e^(2 pi i k / n) conj(S)
    if pack:
        spec_s *= spec_m  # -> C_mm + 2^a C_sm, one sample early
        mixed = _workspace("mixed", spec_q.shape, np.complex128)
        np.multiply(spec_q, shift_b, out=mixed)
        mixed += spec_m
        np.conj(spec_q, out=spec_q)
        spec_q *= mixed  # conj(Q) (M + 2^b Q)  ->  C_qm + 2^b C_qq
        products = spectra[::2]
    else:
        products = _workspace("products", (4,) + spec_m.shape, np.complex128)
        np.multiply(np.conj(spec_m), spec_m, out=products[0])
        np.multiply(spec_s, spec_m, out=products[1])  # one sample early
        np.multiply(np.conj(spec_q), spec_m, out=products[2])
        np.multiply(np.conj(spec_q), spec_q, out=products[3])
    # Only column lags -reach_cols-1..reach_cols are needed: inverse the columns, keep those,
    # then the rows.
    _ifft(products, axis=2, out=products)
    lag_cols = np.r_[0 : reach_cols + 1, shape[1] - reach_cols - 1 : shape[1]]
    cross = _irfft(products[:, :, lag_cols], n=shape[0], axis=1)
    col_of = np.empty(shape[1], dtype=np.intp)
    col_of[lag_cols] = np.arange(lag_cols.size)

    def at(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return np.rint(image[rows % shape[0], col_of[cols % shape[1]]])

    if pack:
        qm_qq, mm_sm = cross
        high_a, low_a = np.divmod(at(mm_sm, dr - 1, dc - 1), shift_a)
        high_b, low_b = np.divmod(at(qm_qq, dr, dc), shift_b)
        mirror_a = at(mm_sm, -dr - 1, -dc - 1) // shift_a
        mirror_b = at(qm_qq, -dr, -dc) % shift_b
        sums = np.stack([low_a, low_b, mirror_b, high_a, mirror_a, high_b])
    else:
        mm, sm, qm, qq = cross
        sums = np.stack([
            at(mm, dr, dc), at(qm, dr, dc), at(qm, -dr, -dc),
            at(sm, dr - 1, dc - 1), at(sm, -dr - 1, -dc - 1), at(qq, dr, dc),
        ])
    return sums.astype(np.int64)


_BUFFERS = threading.local()
_KEPT_BYTES = 32 * 2**20
"""Scratch arrays up to this size are kept for the next call (cells up to ~900 px a side)."""


def _workspace(
    name: str, shape: tuple[int, ...], dtype: type, pad_rows: bool = False
) -> np.ndarray:
    """A scratch array of ``shape``, kept per thread and reused by later calls.

    Fresh arrays of a few megabytes cost page faults on every call; arrays above
    ``_KEPT_BYTES`` (huge cells) are not kept, so that one of them does not hold its memory
    for the rest of the process. With ``pad_rows``,
    rows whose length in bytes is a multiple of 512 are padded by one cache line: with
    such strides a transform along the other axis maps its reads to a few cache sets and
    runs slower.
    """
    itemsize = np.dtype(dtype).itemsize
    padded = pad_rows and (shape[-1] * itemsize) % 512 == 0
    width = shape[-1] + (64 // itemsize if padded else 0)
    size = math.prod(shape[:-1]) * width
    buffer = getattr(_BUFFERS, name, None)
    if buffer is None or buffer.size < size or buffer.dtype != dtype:
        buffer = np.empty(size, dtype)
        if size * itemsize <= _KEPT_BYTES:
            setattr(_BUFFERS, name, buffer)
    return buffer[:size].reshape(shape[:-1] + (width,))[..., : shape[-1]]


if np.lib.NumpyVersion(np.__version__) >= "2.0.0":
    # NumPy's pocketfft writes into given arrays (scipy.fft allocates a new one each call)
    # and has less overhead for small inverse transforms.
    def _irfft(x: np.ndarray, n: int, axis: int) -> np.ndarray:
        return np.fft.irfft(x, n=n, axis=axis)

    def _rfft(x: np.ndarray, axis: int, out: np.ndarray) -> None:
        np.fft.rfft(x, axis=axis, out=out)

    def _fft(x: np.ndarray, axis: int, out: np.ndarray) -> None:
        np.fft.fft(x, axis=axis, out=out)

    def _ifft(x: np.ndarray, axis: int, out: np.ndarray) -> None:
        np.fft.ifft(x, axis=axis, out=out)

else:  # pragma: no cover - NumPy 1.x

    def _irfft(x: np.ndarray, n: int, axis: int) -> np.ndarray:
        return scipy.fft.irfft(x, n=n, axis=axis, workers=1)

    def _rfft(x: np.ndarray, axis: int, out: np.ndarray) -> None:
        out[...] = scipy.fft.rfft(x, axis=axis, workers=1)

    def _fft(x: np.ndarray, axis: int, out: np.ndarray) -> None:
        out[...] = scipy.fft.fft(x, axis=axis, workers=1)

    def _ifft(x: np.ndarray, axis: int, out: np.ndarray) -> None:
        out[...] = scipy.fft.ifft(x, axis=axis, workers=1)


def _level_counts(levels: np.ndarray) -> np.ndarray:
    """How many pixels have each level ``1..levels.max()`` (index 0 left at 0), as floats.

    A few levels are counted by comparisons: ``np.bincount`` first converts every pixel to
    a 64-bit index, which costs more.
    """
    if levels.dtype.kind not in "ub" and levels.min() < 0:
        raise ValueError("levels must be non-negative")
    top = int(levels.max())
    if top > 16:
        counts = np.bincount(levels.ravel()).astype(np.float64)
        counts[0] = 0
        return counts
    return np.array([0] + [np.count_nonzero(levels == level) for level in range(1, top + 1)], float)


@functools.lru_cache(maxsize=8)
def _cached_offsets(distances: tuple, angles: tuple) -> np.ndarray:
    offsets = glcm_offsets(np.array(distances), np.array(angles))
    offsets.flags.writeable = False
    return offsets
