"""skorch's epoch table without colour codes in logs."""

from __future__ import annotations

import re
import sys

from skorch.callbacks import PrintLog

from ._console import on_terminal

_ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")


class EpochTable(PrintLog):
    """skorch's per-epoch table (:class:`skorch.callbacks.PrintLog`), coloured only on a terminal.

    PrintLog marks each column's best value with an ANSI colour; here the
    colour codes are kept only when the table is printed to a standard output
    that is a terminal, checked when each row is printed.
    """

    def format_row(self, row, key, color):
        formatted = super().format_row(row, key, color)
        if isinstance(formatted, str) and not (self.sink is print
                                               and on_terminal(sys.stdout)):
            return _ANSI_CODE.sub("", formatted)
        return formatted
