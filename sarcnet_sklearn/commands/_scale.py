"""The options every chunked command shares: chunk size and a Dask scheduler."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager


def add_scale_arguments(
    parser: argparse.ArgumentParser, *, chunk_size: int = 1000, what: str = "cells"
) -> None:
    """Add ``--chunk-size`` and ``--scheduler`` to a command's parser.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_scale_arguments(parser)
    >>> parser.parse_args(["--scheduler", "tcp://head:8786"]).chunk_size
    1000
    """
    parser.add_argument(
        "--chunk-size", type=int, default=chunk_size, metavar="N",
        help=f"{what} per chunk; each finished chunk is saved in OUTPUT.partial/, so that the "
             "same command started again after a stop resumes there (default: %(default)s)",
    )
    parser.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="run the chunks on the workers of this Dask scheduler (e.g. tcp://head:8786); "
             "images and model files must be readable there. Needs the 'cluster' extra",
    )


@contextmanager
def cluster_client(args: argparse.Namespace) -> Iterator[object | None]:
    """A client of ``args.scheduler`` for the command's duration, or None to run here."""
    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be at least 1, got {args.chunk_size}")
    if not args.scheduler:
        yield None
        return
    from ..scale import connect

    client = connect(args.scheduler)
    try:
        yield client
    finally:
        client.close()
