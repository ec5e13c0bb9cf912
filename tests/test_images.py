from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from sarcnet_sklearn.images import (
    ImageReadError,
    load_cell_image,
    load_image_stack,
    read_plane,
    to_uint8,
)


def _pages(n_pages=10, shape=(40, 30), dtype=np.uint8):
    rng = np.random.default_rng(0)
    high = np.iinfo(dtype).max
    return rng.integers(0, high, size=(n_pages, *shape), endpoint=True).astype(dtype)


@pytest.mark.parametrize("compression", [None, "zlib", "lzw"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_read_plane_from_multipage_tiff(tmp_path, compression, dtype):
    pages = _pages(dtype=dtype)
    path = tmp_path / "cell.tiff"
    tifffile.imwrite(path, pages, compression=compression)
    for index in (0, 1, 9):
        np.testing.assert_array_equal(read_plane(path, index), pages[index])


def test_read_plane_from_ome_tiff(tmp_path):
    pages = _pages(n_pages=3)
    path = tmp_path / "cell.ome.tif"
    tifffile.imwrite(path, pages, ome=True, metadata={"axes": "CYX"}, compression="zlib")
    np.testing.assert_array_equal(read_plane(path, 2), pages[2])


def test_read_plane_from_png_and_jpeg(tmp_path):
    rgb = _pages(n_pages=3).transpose(1, 2, 0).copy()
    Image.fromarray(rgb).save(tmp_path / "cell.png")
    np.testing.assert_array_equal(read_plane(tmp_path / "cell.png", 1), rgb[..., 1])
    gray = rgb[..., 0]
    Image.fromarray(gray).save(tmp_path / "gray.jpg", quality=100)
    assert np.abs(read_plane(tmp_path / "gray.jpg", 0).astype(int) - gray).mean() < 3


def test_read_plane_errors_name_the_file(tmp_path):
    with pytest.raises(ImageReadError, match="not found: .*missing.tiff"):
        read_plane(tmp_path / "missing.tiff", 1)
    path = tmp_path / "three.tiff"
    tifffile.imwrite(path, _pages(n_pages=3), photometric="minisblack")
    with pytest.raises(ImageReadError, match="three.tiff: has 3 pages, page 5"):
        read_plane(path, 5)
    bad = tmp_path / "corrupt.tiff"
    bad.write_bytes(b"II*\x00garbage")
    with pytest.raises(ImageReadError, match="corrupt.tiff"):
        read_plane(bad, 0)
    Image.fromarray(_pages(1)[0]).save(tmp_path / "gray.png")
    with pytest.raises(ImageReadError, match="gray.png: has a single plane"):
        read_plane(tmp_path / "gray.png", 1)


def test_to_uint8_keeps_8_bit_and_autocontrasts_others():
    plane = np.array([[0, 10], [200, 255]], dtype=np.uint8)
    assert to_uint8(plane) is plane
    wide = np.array([[1000, 2000], [3000, 5000]], dtype=np.uint16)
    np.testing.assert_array_equal(to_uint8(wide), [[0, 64], [128, 255]])
    assert not to_uint8(np.full((3, 3), 7, dtype=np.uint16)).any()
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(np.array([[0.0, np.nan]]))


def test_load_image_stack_resizes_to_a_compact_uint8_cache(tmp_path):
    paths = []
    for i, shape in enumerate([(40, 30), (64, 64), (20, 90)]):
        path = tmp_path / f"c{i}.tiff"
        pages = _pages(shape=shape)
        pages[1] = 100 + 10 * i
        tifffile.imwrite(path, pages, compression="zlib")
        paths.append(path)
    stack = load_image_stack(paths, page=1, size=16)
    assert stack.shape == (3, 16, 16) and stack.dtype == np.uint8
    np.testing.assert_array_equal(stack[:, 0, 0], [100, 110, 120])
    single = load_cell_image(paths[1], 1, 16)
    np.testing.assert_array_equal(single, stack[1])
    with pytest.raises(ImageReadError, match="nope.tiff"):
        load_image_stack([paths[0], tmp_path / "nope.tiff"], page=1, size=16)
