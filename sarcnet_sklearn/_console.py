"""What the package writes to a terminal: progress bars and skorch's epoch table.

Both stay out of logs: a progress bar redraws itself with carriage returns and
the epoch table marks its best values with ANSI colour codes, which turn a log
file (CI, cluster jobs) into noise. So bars are drawn only when standard error
is a terminal or a notebook, and the table (:class:`~sarcnet_sklearn._epoch_table.EpochTable`)
is coloured only on a terminal.
The environment variable ``SARCNET_PROGRESS`` overrides the choice for bars:
``1`` draws them anywhere, ``0`` nowhere.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from tqdm.auto import tqdm

PROGRESS_VARIABLE = "SARCNET_PROGRESS"


def _in_notebook() -> bool:
    return any(base.__module__ == "tqdm.notebook" for base in tqdm.__mro__)


def on_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def show_progress(requested: bool = True) -> bool:
    """Whether a progress bar that the caller asks for (``requested``) is drawn.

    Yes on a terminal or in a notebook, no in a log; ``SARCNET_PROGRESS=1``
    draws requested bars anywhere and ``SARCNET_PROGRESS=0`` none at all.

    Examples
    --------
    >>> show_progress(False)
    False
    """
    if not requested:
        return False
    setting = os.environ.get(PROGRESS_VARIABLE, "").strip().lower()
    if setting in {"1", "true", "yes", "always"}:
        return True
    if setting in {"0", "false", "no", "never"}:
        return False
    return _in_notebook() or on_terminal(sys.stderr)


def progress_bar(iterable: Iterable | None = None, *, show: bool = True, **kwargs) -> tqdm:
    """A tqdm bar (``tqdm.auto``) drawn only where :func:`show_progress` says so.

    ``show`` is the caller's request (e.g. ``progress`` and not ``--quiet``);
    the other arguments go to tqdm.

    Examples
    --------
    >>> sum(progress_bar(range(4), desc="counting"))
    6
    """
    return tqdm(iterable, disable=not show_progress(show), **kwargs)
