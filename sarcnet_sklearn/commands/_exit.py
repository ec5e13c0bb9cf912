"""The exit status of the commands that score cells (``predict``, ``fields``), in one place.

A pipeline (a shell script, Snakemake, Nextflow) checks the exit status, not the log: a
run in which not one cell could be scored must not look like a success.
"""

from __future__ import annotations

OK = 0
"""Every cell scored."""
FIELD_FAILED = 1
"""A field (or an input) could not be used at all; the others were scored."""
USAGE = 2
"""Bad arguments, or an input or setting refused before any work."""
SOME_UNSCORED = 3
"""Some cells were not scored (the reasons are counted in the summary and ``error``)."""
NONE_SCORED = 4
"""Not one cell could be scored."""
INTERRUPTED = 130
"""Stopped with Ctrl-C; the same command started again goes on from there."""

EXIT_STATUS_HELP = (
    f"exit status: {OK} every cell scored; {SOME_UNSCORED} some cells not scored (each has "
    f"its reason in 'error', and the closing summary counts them by reason: border cells are "
    f"such cells); {NONE_SCORED} not one cell could be scored; {FIELD_FAILED} an input (a "
    f"field) could not be used at all while others were scored; {USAGE} bad arguments or "
    f"inputs refused before any work; {INTERRUPTED} interrupted (Ctrl-C)."
)


def exit_status(n_cells: int, n_scored: int, n_failed_inputs: int = 0) -> int:
    """The exit status of a run that scored ``n_scored`` of ``n_cells`` cells.

    Examples
    --------
    >>> exit_status(49, 49), exit_status(49, 32), exit_status(49, 0), exit_status(0, 0)
    (0, 3, 4, 4)
    >>> exit_status(6, 3, n_failed_inputs=1)
    1
    """
    if n_scored == 0:
        return NONE_SCORED
    if n_failed_inputs:
        return FIELD_FAILED
    return SOME_UNSCORED if n_scored < n_cells else OK
