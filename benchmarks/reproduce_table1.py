"""Reproduce Table 1 of the SarcNet paper: the same as ``sarcnet-sklearn reproduce``.

Run: ``python benchmarks/reproduce_table1.py --aics-root DIR [--out DIR] [--weights imagenet]``
(without ``--aics-root``: synthetic cells, reduced on a CPU). See
:func:`sarcnet_sklearn.reproduce.reproduce_table1`.
"""

from __future__ import annotations

import sys

from sarcnet_sklearn.commands import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", *sys.argv[1:]]))
