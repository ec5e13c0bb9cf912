"""What the command line shows of the library's ``logging``: INFO by default, ``-q``/``-v``.

The library reports through the ``sarcnet_sklearn`` logger and never configures logging
itself (a Python user's own configuration decides). The command line adds one handler on
standard error for the run: INFO and above by default, warnings and errors only with
``-q``/``--quiet``, DEBUG with ``-v``/``--verbose``. Info lines are printed as they are,
warnings and errors prefixed ``warning:`` / ``error:``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

LOGGER = "sarcnet_sklearn"


def add_verbosity_options(parser: argparse.ArgumentParser) -> None:
    """Give a subcommand ``-v``/``--verbose`` and ``-q`` (beside its ``--quiet``, if any).

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_verbosity_options(parser)
    >>> args = parser.parse_args(["-q", "-vv"])
    >>> args.quiet, args.verbose
    (True, 2)
    """
    has_quiet = any("--quiet" in action.option_strings for action in parser._actions)
    if has_quiet:
        parser.add_argument("-q", dest="quiet", action="store_true",
                            help="same as --quiet; also only warnings and errors are logged")
    else:
        parser.add_argument("-q", "--quiet", action="store_true",
                            help="log only warnings and errors")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (debug messages)")


def log_level(args: argparse.Namespace) -> int:
    """INFO, WARNING with ``quiet``, DEBUG with ``verbose`` (verbose wins).

    Examples
    --------
    >>> log_level(argparse.Namespace(quiet=True, verbose=0)) == logging.WARNING
    True
    """
    if getattr(args, "verbose", 0):
        return logging.DEBUG
    return logging.WARNING if getattr(args, "quiet", False) else logging.INFO


class _Prefixed(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.ERROR:
            return f"error: {message}"
        if record.levelno >= logging.WARNING:
            return f"warning: {message}"
        return message


@contextmanager
def logging_to_stderr(args: argparse.Namespace) -> Iterator[logging.Logger]:
    """Show the package's log on standard error during the block, at :func:`log_level`.

    Python warnings printed during the block read ``warning: MESSAGE``, like the log's,
    instead of Python's ``FILE:LINE: Category: MESSAGE`` and the source line (``-v`` keeps
    Python's format). Recorded warnings (``warnings.catch_warnings(record=True)``) are
    untouched.

    Examples
    --------
    >>> import warnings
    >>> with logging_to_stderr(argparse.Namespace(quiet=False, verbose=0)):
    ...     warnings.formatwarning(UserWarning("the model is not sound"), UserWarning, "x.py", 1)
    'warning: the model is not sound\\n'
    """
    logger = logging.getLogger(LOGGER)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Prefixed("%(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(log_level(args))
    logger.propagate = False
    saved_format = warnings.formatwarning
    if not getattr(args, "verbose", 0):
        warnings.formatwarning = _warning_line
    try:
        yield logger
    finally:
        warnings.formatwarning = saved_format
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _warning_line(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"
