"""Running chunks of a table here, one after another, or on the workers of a Dask cluster.

A chunk's work is a picklable callable ``work(chunk)``, or ``work(model, chunk)``
when a model is given. On a cluster the model reaches each worker once, through
a worker plugin: the plugin carries a model file's path and how to load it
(each worker loads the file the first time it needs it) or the fitted model
itself, and workers that join later or restart after a crash get it too. Tasks
that ran on a lost worker are run again by Dask on another one. This module
knows nothing of models: the caller says how a model file is loaded.
:func:`map_table` is the one "split a table into chunks, map them, put the
results back in order" that the package's chunked runs use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from os import PathLike
from pathlib import Path

import pandas as pd

from .._chunks import chunk_slices
from .._doors import current_door, entered_through

CLUSTER_EXTRA = (
    "running on a Dask cluster needs dask.distributed: pip install 'sarcnet-sklearn[cluster]'"
)


def connect(address: str):
    """A ``distributed.Client`` connected to the scheduler at ``address``.

    Raises
    ------
    ImportError
        When dask.distributed is not installed (the ``cluster`` extra).
    OSError
        When no scheduler answers at ``address``.

    Examples
    --------
    >>> from distributed import LocalCluster
    >>> from sarcnet_sklearn.scale import connect
    >>> cluster = LocalCluster(n_workers=1, processes=False, dashboard_address=None)
    >>> client = connect(cluster.scheduler_address)  # e.g. "tcp://head:8786"
    >>> client.submit(sum, [1, 2]).result()
    3
    >>> client.close(); cluster.close()
    """
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise ImportError(CLUSTER_EXTRA) from exc
    check_speaks_dask(address)
    try:
        return Client(address, timeout="30s")
    except (OSError, TimeoutError) as exc:
        raise OSError(f"cannot reach a Dask scheduler at {address}: {exc}") from exc


def check_speaks_dask(address: str, timeout: float = 5.0) -> None:
    """Raise OSError unless a TCP ``address`` answers as a Dask scheduler does, within ``timeout``.

    A scheduler greets a new connection at once with a length-prefixed frame;
    a web server (Dask's dashboard, a proxy) waits in silence and an SSH or
    mail server greets with text, which Dask's client would read as a frame
    length of exabytes. Other schemes (``tls://``, ``inproc://``) are left to
    Dask.
    """
    import socket
    import struct

    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp"):
        return
    host, _, port = rest.rpartition(":")
    try:
        port_number = int(port)
    except ValueError:
        raise OSError(f"--scheduler {address}: give host:port, e.g. tcp://head:8786") from None
    hint = ("it does not speak Dask's protocol; give the scheduler's address (usually port "
            "8786), not its dashboard's or another service's")
    try:
        with socket.create_connection((host.strip("[]"), port_number), timeout=timeout) as sock:
            sock.settimeout(timeout)
            greeting = b""
            while len(greeting) < 8:
                data = sock.recv(8 - len(greeting))
                if not data:
                    break
                greeting += data
    except TimeoutError:
        raise OSError(f"the server at {address} said nothing within {timeout:g} s, as a Dask "
                      f"scheduler would: {hint}") from None
    except OSError as exc:
        raise OSError(f"cannot reach a Dask scheduler at {address}: {exc}") from exc
    length = struct.unpack("<Q", greeting)[0] if len(greeting) == 8 else 0
    if not 0 < length < 1 << 20:
        shown = greeting.decode("ascii", "replace").encode("unicode_escape").decode()
        raise OSError(f"the server at {address} answered {shown!r}: {hint}")


def _run_on_worker(work: Callable, plugin_name: str | None, chunk: pd.DataFrame,
                   door: str = "python") -> pd.DataFrame:
    with entered_through(door):  # the caller's words in the worker's messages
        if plugin_name is None:
            return work(chunk)
        from distributed import get_worker

        return work(get_worker().plugins[plugin_name].get(), chunk)


def map_chunks(
    work: Callable,
    chunks: Sequence[pd.DataFrame],
    *,
    model=None,
    load: Callable | None = None,
    client=None,
) -> Iterator[tuple[int, pd.DataFrame]]:
    """Yield ``(i, work([model, ]chunks[i]))`` as each chunk finishes.

    Parameters
    ----------
    work : callable
        ``work(chunk)`` or, with ``model``, ``work(model, chunk)``; picklable
        (a module-level function or a ``functools.partial`` of one) for a cluster.
    chunks : sequence of DataFrame
    model : path or fitted model, optional
        Handed to ``work``; a path is loaded with ``load``, here or once per
        cluster worker.
    load : callable, optional
        ``load(path)`` gives the model in a model file, e.g.
        ``functools.partial(sarcnet_sklearn.deploy.load_model, device="cpu")``
        (picklable, for a cluster); needed when ``model`` is a path.
    client : distributed.Client, optional
        Run the chunks on its workers; default: here, in order.

    Examples
    --------
    >>> import pandas as pd
    >>> from sarcnet_sklearn.scale import map_chunks
    >>> chunks = [pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [3]})]
    >>> [(i, part["x"].tolist()) for i, part in map_chunks(lambda c: c * 2, chunks)]
    [(0, [2, 4]), (1, [6])]
    """
    if isinstance(model, (str, PathLike)) and load is None:
        raise ValueError(f"model is a file ({model}): say how to load it with load=")
    if client is None:
        if isinstance(model, (str, PathLike)):
            model = load(model)
        for index, chunk in enumerate(chunks):
            yield index, (work(chunk) if model is None else work(model, chunk))
        return
    from distributed import as_completed

    from ._plugin import ModelPlugin

    plugin = None
    if model is not None:
        if isinstance(model, (str, PathLike)):
            model = Path(model).resolve()
        plugin = ModelPlugin(model, load)
        client.register_plugin(plugin, name=plugin.name)
    name = None if plugin is None else plugin.name
    futures = {
        client.submit(_run_on_worker, work, name, chunk, current_door(), pure=False): index
        for index, chunk in enumerate(chunks)
    }
    try:
        # on this client's loop: distributed's default is the process's default client,
        # another cluster when the caller holds two clients
        for future in as_completed(futures, loop=client.loop):
            yield futures[future], future.result()
    finally:
        client.cancel(list(futures))
        if plugin is not None:
            client.unregister_worker_plugin(plugin.name)


def map_table(
    work: Callable,
    table: pd.DataFrame,
    chunk_size: int,
    *,
    model=None,
    load: Callable | None = None,
    client=None,
    on_chunk: Callable[[int], object] | None = None,
    ignore_index: bool = False,
) -> pd.DataFrame:
    """Split ``table`` into chunks of ``chunk_size`` rows, map ``work`` over them, reassemble.

    The chunks run as in :func:`map_chunks` (here, or on the workers of
    ``client``); the results are put back together in the order of the
    chunks, whichever finished first.

    Parameters
    ----------
    work, model, load, client
        See :func:`map_chunks`.
    table : DataFrame
    chunk_size : int
        Rows per chunk (per cluster task).
    on_chunk : callable, optional
        Called with the number of rows of each chunk as it finishes (a progress bar's
        ``update``).
    ignore_index : bool, default=False
        Number the rows of the result 0..n-1 (else each result keeps its index).

    Returns
    -------
    result : DataFrame

    Examples
    --------
    >>> import pandas as pd
    >>> from sarcnet_sklearn.scale import map_table
    >>> map_table(lambda c: c * 2, pd.DataFrame({"x": [1, 2, 3]}), 2)["x"].tolist()
    [2, 4, 6]
    """
    chunks = [table.iloc[part] for part in chunk_slices(len(table), chunk_size)]
    done = {}
    for index, result in map_chunks(work, chunks, model=model, load=load, client=client):
        done[index] = result
        if on_chunk is not None:
            on_chunk(len(chunks[index]))
    if not chunks:
        return work(table) if model is None else work(model, table)
    return pd.concat([done[index] for index in range(len(chunks))], ignore_index=ignore_index)
