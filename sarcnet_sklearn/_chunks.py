"""Working through a long table a chunk at a time, preparing the next chunk meanwhile.

Every loop over cells that holds decoded images (the estimator's ``predict``,
``grad_cam``, the commands) goes through :func:`chunk_slices`, so memory depends
on the chunk size and not on the number of cells; :func:`prefetched` decodes
the next chunk in a background thread while the model works on the current one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

CHUNK_CELLS = 1024
"""Cells decoded at once by ``predict`` and ``grad_cam`` (51 MB of uint8 images at 224 px)."""

Item = TypeVar("Item")
Prepared = TypeVar("Prepared")


def chunk_slices(n_items: int, chunk_size: int) -> list[slice]:
    """Consecutive slices of at most ``chunk_size`` items covering ``range(n_items)``.

    Examples
    --------
    >>> from sarcnet_sklearn._chunks import chunk_slices
    >>> chunk_slices(5, 2)
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    if chunk_size < 1:
        raise ValueError(f"chunk size must be at least 1, got {chunk_size}")
    starts = range(0, n_items, chunk_size)
    return [slice(start, min(start + chunk_size, n_items)) for start in starts]


def aligned_chunk_size(batch_size: int, target: int | None = None) -> int:
    """The multiple of ``batch_size`` closest to ``target`` from above (at least one batch).

    ``target`` defaults to :data:`CHUNK_CELLS`.

    Chunks that are whole batches give the model exactly the batches of an
    unchunked run.

    Examples
    --------
    >>> from sarcnet_sklearn._chunks import aligned_chunk_size
    >>> aligned_chunk_size(40), aligned_chunk_size(4096)
    (1040, 4096)
    """
    batch_size = max(1, int(batch_size))
    target = CHUNK_CELLS if target is None else target
    return batch_size * max(1, -(-target // batch_size))


def prefetched(prepare: Callable[[Item], Prepared], items: Iterable[Item]) -> Iterator[Prepared]:
    """Yield ``prepare(item)`` for each item in order, preparing the next one in a thread.

    While the caller works on one prepared item, the next is being prepared
    (image decoding releases the GIL), so at most two are held at once. An
    exception raised by ``prepare`` reaches the caller when it asks for that item.

    Examples
    --------
    >>> from sarcnet_sklearn._chunks import prefetched
    >>> list(prefetched(lambda x: x * 10, [1, 2, 3]))
    [10, 20, 30]
    """
    iterator = iter(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sarcnet-prefetch") as pool:
        pending = None
        try:
            for item in iterator:
                upcoming = pool.submit(prepare, item)
                if pending is not None:
                    yield pending.result()
                pending = upcoming
            if pending is not None:
                yield pending.result()
        finally:
            if pending is not None:
                pending.cancel()
