"""Where a study lives: in memory, in a database, or in a journal file."""

from __future__ import annotations

import warnings
from os import PathLike, fspath
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

HEARTBEAT_INTERVAL_S = 60
"""A running trial's heartbeat is written to a database this often (seconds)..."""
GRACE_PERIOD_S = 180
"""...and a trial without a heartbeat for this long is marked FAIL (its worker died)."""


def resolve_storage(storage: str | PathLike | BaseStorage | None) -> BaseStorage:
    """Turn a storage URL or file into an Optuna storage.

    Parameters
    ----------
    storage : str, path, optuna storage or None
        - None: in memory (the study ends with the process);
        - a database URL (``sqlite:///tune.db``, ``postgresql://user:pass@host/db``,
          ``mysql+pymysql://user:pass@host/db``, ...): an ``RDBStorage`` with a
          heartbeat, so that a trial whose worker died is marked FAIL after
          :data:`GRACE_PERIOD_S` seconds and replaced;
        - ``redis://...``: a journal in Redis;
        - any other string or path: a journal file (``optuna.storages.JournalStorage``
          with a ``JournalFileBackend``), created if missing; suited to workers on
          one machine or on a shared file system, no database server needed;
        - an Optuna storage object: used as it is.

    Returns
    -------
    storage : optuna.storages.BaseStorage

    Examples
    --------
    >>> from sarcnet_sklearn.tuning import resolve_storage
    >>> type(resolve_storage(None)).__name__
    'InMemoryStorage'
    >>> type(resolve_storage("sqlite:///:memory:")).__name__
    'RDBStorage'
    """
    if storage is None:
        return optuna.storages.InMemoryStorage()
    if isinstance(storage, BaseStorage):
        return storage
    url = fspath(storage)
    try:
        if url.startswith("redis"):
            return JournalStorage(JournalRedisBackend(url))
        if "://" in url:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)  # the heartbeat's
                return RDBStorage(
                    url, heartbeat_interval=HEARTBEAT_INTERVAL_S, grace_period=GRACE_PERIOD_S
                )
    except Exception as exc:  # SQLAlchemy/redis/driver errors of every kind
        raise ValueError(f"cannot open the study storage {url!r}: "
                         f"{type(exc).__name__}: {exc}") from exc
    path = Path(url)
    if path.is_dir():
        raise ValueError(f"storage {path} is a folder; give a journal file name or a database URL")
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))
