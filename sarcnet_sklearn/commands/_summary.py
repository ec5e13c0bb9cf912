"""The closing summary of ``predict`` and ``fields``: cells scored, and the others per reason.

Printed for people (one line per reason, with an example message), or with ``--json`` as
one JSON object on standard output for a pipeline, the other lines then going to standard
error. The same object goes into the run's ``run.json``.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_json_option(parser: argparse.ArgumentParser, what: str = "the closing summary") -> None:
    """Add ``--json``: print ``what`` as one JSON object on standard output."""
    parser.add_argument("--json", action="store_true",
                        help=f"print {what} as one JSON object on standard output (the other "
                             "messages go to standard error)")


def human_stream(args: argparse.Namespace):
    """Where the lines for people go: standard output, or standard error with ``--json``."""
    return sys.stderr if getattr(args, "json", False) else sys.stdout


def cell_summary(errors, *, n_failed_inputs: int = 0, failed_inputs=()) -> dict:
    """Counts of a run's cells: scored, not scored, per reason (with one example each).

    Parameters
    ----------
    errors : sequence
        The ``error`` of every cell (empty or None where it was scored).
    n_failed_inputs : int
        Inputs (fields) that could not be used at all.
    failed_inputs : sequence of str
        Their names.

    Examples
    --------
    >>> summary = cell_summary(["", "label 2 has a single pixel; it is not a cell", ""])
    >>> summary["n_cells"], summary["n_scored"], summary["unscored_by_reason"]
    (3, 2, {'tiny': 1})
    """
    from .._reasons import count_reasons, reason_of

    errors = ["" if not isinstance(error, str) else error for error in errors]
    examples: dict[str, str] = {}
    for error in errors:
        code = reason_of(error)
        if code is not None and code not in examples:
            examples[code] = error
    counts = count_reasons(errors)
    n_unscored = sum(counts.values())
    return {
        "n_cells": len(errors),
        "n_scored": len(errors) - n_unscored,
        "n_unscored": n_unscored,
        "unscored_by_reason": counts,
        "examples": {code: examples[code] for code in counts},
        "n_failed_inputs": n_failed_inputs,
        "failed_inputs": list(failed_inputs),
    }


def print_summary(summary: dict, args: argparse.Namespace, *, status: int) -> None:
    """Print ``summary`` for people (per reason, on standard error when some cells failed),
    or as JSON with ``--json``; ``status`` is the exit status the command returns."""
    from .._reasons import reason_lines

    if getattr(args, "json", False):
        print(json.dumps({**summary, "exit_status": status}, indent=1))
        return
    if not summary["n_unscored"]:
        return
    print(f"{summary['n_unscored']} of {summary['n_cells']} cells were not scored (reason of "
          "each in the 'error' column):", file=sys.stderr)
    for line in reason_lines(summary["unscored_by_reason"], summary["examples"]):
        print(line, file=sys.stderr)
