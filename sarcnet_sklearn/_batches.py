"""Mini-batches sliced from the cached cell arrays, on the device that trains on them.

skorch's default data path indexes a Dataset one cell at a time and lets a
DataLoader collate the rows. :class:`CellDataset` instead copies the whole
cache (uint8 images, float32 features, targets) to the device once, and
:class:`BatchIterator` hands out batches as index slices of those tensors, so a
batch costs one gather on the device rather than a Python loop over cells.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np
import torch
from skorch.dataset import Dataset
from torch.utils.data import Subset


class CellDataset(Dataset):
    """A skorch ``Dataset`` over a dict of equal-length arrays that can live on a device.

    It behaves as skorch's ``Dataset`` (indexing, ``len``, ``ValidSplit``,
    scoring callbacks) and adds :meth:`tensors`, which returns the arrays as
    tensors on a device, copied there at most once.

    Examples
    --------
    >>> import numpy as np
    >>> from sarcnet_sklearn._batches import CellDataset
    >>> data = CellDataset({"images": np.zeros((3, 8, 8), np.uint8)}, np.zeros((3, 1), np.float32))
    >>> data.tensors("cpu")[0]["images"].shape
    torch.Size([3, 8, 8])
    """

    def __init__(self, X: Mapping[str, np.ndarray], y: np.ndarray | None = None, length=None):
        super().__init__(dict(X), y, length)
        self._on_device: tuple[str, dict[str, torch.Tensor], torch.Tensor | None] | None = None

    def tensors(self, device) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The inputs and the target (or None) as tensors on ``device``."""
        key = str(torch.device(device))
        if self._on_device is None or self._on_device[0] != key:
            X = {name: _to_device(value, device) for name, value in self.X.items()}
            y = None if self.y is None else _to_device(self.y, device)
            self._on_device = (key, X, y)
        return self._on_device[1], self._on_device[2]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_on_device"] = None
        return state


def _to_device(array, device) -> torch.Tensor:
    if isinstance(array, torch.Tensor):  # pinned by pinned(): the copy need not block
        return array.to(device, non_blocking=array.is_pinned())
    return torch.as_tensor(np.ascontiguousarray(array)).to(device)


def pinned(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The arrays as tensors in page-locked memory, ready for an asynchronous copy to a GPU."""
    return {
        name: torch.as_tensor(np.ascontiguousarray(value)).pin_memory()
        for name, value in arrays.items()
    }


def unwrap_subset(dataset) -> tuple[object, np.ndarray | None]:
    """The dataset under (possibly nested) ``Subset`` wrappers, and the indices they select."""
    indices = None
    while isinstance(dataset, Subset):
        selected = np.asarray(dataset.indices, dtype=np.int64)
        indices = selected if indices is None else selected[indices]
        dataset = dataset.dataset
    return dataset, indices


class BatchIterator:
    """Batches of a :class:`CellDataset` as slices of its device tensors.

    Parameters
    ----------
    dataset : CellDataset
    indices : array of int, optional
        The cells to iterate over (a ``Subset``'s indices); default: all.
    batch_size : int
    shuffle : bool, default=False
        Visit the cells in a new random order on every pass.
    drop_last : bool, default=False
        Leave out a final incomplete batch.
    device : str or torch.device, default="cpu"
        Where the batches are made (and the cache is held).
    generator : torch.Generator, optional
        CPU generator the order is drawn from; default: torch's global one.

    Every pass yields ``(inputs, target)`` with ``inputs`` a dict of tensors
    and ``target`` a tensor, or None when the dataset has no target; each
    selected cell appears exactly once (less the dropped last batch).
    """

    def __init__(
        self,
        dataset: CellDataset,
        indices: np.ndarray | None = None,
        *,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        device="cpu",
        generator: torch.Generator | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.dataset = dataset
        self.indices = None if indices is None else torch.as_tensor(indices, dtype=torch.long)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.device = device
        self.generator = generator

    def _n_cells(self) -> int:
        return len(self.dataset) if self.indices is None else len(self.indices)

    def __len__(self) -> int:
        n = self._n_cells()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor | None]]:
        X, y = self.dataset.tensors(self.device)
        n = self._n_cells()
        order = self.indices
        if self.shuffle:
            permutation = torch.randperm(n, generator=self.generator)
            order = permutation if order is None else order[permutation]
        if order is not None:
            order = order.to(_cache_device(X, y))
        stop = len(self) * self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            end = min(start + self.batch_size, n)
            if order is None:  # contiguous cells: views, no copy
                yield (
                    {name: value[start:end] for name, value in X.items()},
                    None if y is None else y[start:end],
                )
            else:
                batch = order[start:end]
                yield (
                    {name: value.index_select(0, batch) for name, value in X.items()},
                    None if y is None else y.index_select(0, batch),
                )


def _cache_device(X: Mapping[str, torch.Tensor], y: torch.Tensor | None) -> torch.device:
    """The device the cached tensors are on."""
    for tensor in (*X.values(), y):
        if tensor is not None:
            return tensor.device
    return torch.device("cpu")


# -- the dihedral group of the square (D4): 4 quarter turns, each with or without a flip --

N_D4 = 8
"""Number of transforms in D4; transform ``t`` flips left-right when ``t >= 4``, then turns
the image ``t % 4`` quarter turns counter-clockwise."""


def d4_transform(images: torch.Tensor, t: int) -> torch.Tensor:
    """Apply D4 transform ``t`` (0 = identity) to the last two (square) axes of ``images``.

    Examples
    --------
    >>> import torch
    >>> from sarcnet_sklearn._batches import d4_inverse, d4_transform
    >>> image = torch.arange(4).reshape(2, 2)
    >>> d4_transform(image, 1).tolist()
    [[1, 3], [0, 2]]
    >>> all(torch.equal(d4_inverse(d4_transform(image, t), t), image) for t in range(8))
    True
    """
    if t >= 4:
        images = images.flip(-1)
    return torch.rot90(images, t % 4, dims=(-2, -1))


def d4_inverse(images: torch.Tensor, t: int) -> torch.Tensor:
    """Undo :func:`d4_transform` ``t``."""
    images = torch.rot90(images, -(t % 4), dims=(-2, -1))
    return images.flip(-1) if t >= 4 else images


def random_d4(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of a ``(n, ..., s, s)`` batch under its own random D4 transform.

    One gather on the images' device: the pixel order of each of the 8
    transforms is precomputed (per image size and device), and every image
    picks one with ``generator`` (default: torch's global generator on the
    images' device).

    Examples
    --------
    >>> import torch
    >>> from sarcnet_sklearn._batches import random_d4
    >>> images = torch.arange(16, dtype=torch.uint8).reshape(1, 4, 4).repeat(5, 1, 1)
    >>> turned = random_d4(images)
    >>> turned.shape, bool((turned.sum(dim=(1, 2)) == images.sum(dim=(1, 2))).all())
    (torch.Size([5, 4, 4]), True)
    """
    height, width = images.shape[-2:]
    if height != width:
        raise ValueError(f"D4 augmentation needs square images, got {height} x {width}")
    n = images.shape[0]
    flat = images.reshape(n, -1, height * width)
    draw_on = images.device if generator is None else generator.device
    choice = torch.randint(N_D4, (n,), device=draw_on, generator=generator).to(images.device)
    order = _d4_pixel_orders(height, images.device)[choice].unsqueeze(1).expand_as(flat)
    return flat.gather(2, order).reshape(images.shape)


_PIXEL_ORDERS: dict[tuple[int, str], torch.Tensor] = {}


def _d4_pixel_orders(size: int, device: torch.device) -> torch.Tensor:
    key = (size, str(device))
    if key not in _PIXEL_ORDERS:
        index = torch.arange(size * size).reshape(size, size)
        orders = torch.stack([d4_transform(index, t).reshape(-1) for t in range(N_D4)])
        _PIXEL_ORDERS[key] = orders.to(device)
    return _PIXEL_ORDERS[key]


def canonical_d4(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image of a ``(n, ..., s, s)`` batch in its canonical pose among its 8 D4 transforms.

    The pose is chosen from the image itself, so that an image and any flip or quarter
    turn of it get exactly the same canonical image: one forward pass is then exactly
    invariant to the 8 transforms. Of the 8 transformed images, the one kept lies with
    its long axis along the rows (the intensity-weighted second moment along the
    columns is the larger: similar cells come in similar poses), then has the larger
    intensity-weighted first moment along the columns, then along the rows. The moments
    are computed exactly (integer sums in float64), so no rounding can tell two poses
    of one image apart; the rare images whose moments tie are decided by their pixels,
    compared in order.

    Returns
    -------
    canonical : Tensor
        The images in their canonical poses (same shape, dtype and device).
    transforms : Tensor of int64
        Per image, the :func:`d4_transform` index that made its canonical pose
        (:func:`d4_inverse` maps a heatmap of it back onto the image).

    Examples
    --------
    >>> import torch
    >>> from sarcnet_sklearn._batches import canonical_d4, d4_transform
    >>> image = torch.randint(0, 256, (1, 6, 6), dtype=torch.uint8)
    >>> poses = torch.cat([d4_transform(image, t) for t in range(8)])
    >>> canonical, _ = canonical_d4(poses)
    >>> bool((canonical == canonical[0]).all())
    True
    """
    size = images.shape[-1]
    if images.shape[-2] != size:
        raise ValueError(f"a canonical pose needs square images, got {tuple(images.shape[-2:])}")
    n = images.shape[0]
    if n == 0:
        return images, torch.zeros(0, dtype=torch.int64, device=images.device)
    intensity = images.reshape(n, -1, size * size).to(torch.float64).sum(dim=1)
    moments = intensity @ _d4_moment_weights(size, images.device)  # (n, 3 x 8), exact
    best = torch.ones((n, N_D4), dtype=torch.bool, device=images.device)
    lowest = torch.tensor(-torch.inf, dtype=torch.float64, device=images.device)
    for key in moments.split(N_D4, dim=1):  # the keys in order, each among the best so far
        key = torch.where(best, key, lowest)
        best &= key == key.max(dim=1, keepdim=True).values
    choice = best.to(torch.int8).argmax(dim=1)
    for i in torch.nonzero(best.sum(dim=1) > 1).flatten().tolist():
        choice[i] = _by_pixels(images[i], torch.nonzero(best[i]).flatten().tolist())
    flat = images.reshape(n, -1, size * size)
    order = _d4_pixel_orders(size, images.device)[choice].unsqueeze(1).expand_as(flat)
    return flat.gather(2, order).reshape(images.shape), choice.to(torch.int64)


def _by_pixels(image: torch.Tensor, candidates: list[int]) -> int:
    """Of the transforms ``candidates`` of ``image``, the one whose pixels come first in
    order (the largest at the first pixel where two differ)."""
    best, best_pixels = candidates[0], d4_transform(image, candidates[0]).reshape(-1)
    for t in candidates[1:]:
        pixels = d4_transform(image, t).reshape(-1)
        differ = torch.nonzero(pixels != best_pixels)
        if len(differ) and pixels[differ[0, 0]] > best_pixels[differ[0, 0]]:
            best, best_pixels = t, pixels
    return best


_MOMENT_WEIGHTS: dict[tuple[int, str], torch.Tensor] = {}


def _d4_moment_weights(size: int, device: torch.device) -> torch.Tensor:
    """``(s * s, 24)`` float64: a pixel's weight in three moments of each transform of the
    image (integer, centred coordinates x and y = 2 x index - (s - 1)): x^2 - y^2, x, y."""
    key = (size, str(device))
    if key not in _MOMENT_WEIGHTS:
        centred = (2 * torch.arange(size, dtype=torch.float64) - (size - 1))
        columns = centred.expand(size, size)
        rows = columns.T.contiguous()
        weights = [d4_inverse(coordinate, t).reshape(-1)
                   for coordinate in (columns**2 - rows**2, columns, rows) for t in range(N_D4)]
        _MOMENT_WEIGHTS[key] = torch.stack(weights, dim=1).to(device)
    return _MOMENT_WEIGHTS[key]
