"""The ``sarcnet-sklearn`` command line tool (also ``python -m sarcnet_sklearn``).

All command-line code lives here: one module per group of subcommands, named
after the library subpackage it drives (``deploy``: train and predict,
``explain``: explain and report, ``features``, ``fields``, ``tuning``: tune,
``demo``, ``reproduce``), the options they share (``_options``, ``_scale``) and
:func:`main`, which parses the arguments and turns a bad file or setting into a
one-line error. Library modules never import this subpackage.

Building the parser is light: at their top these modules import only the standard library
and the package's light modules (``_columns``, ``_backbones``, ``_model_formats``,
``_table1``); each command imports the library it drives (torch, pandas...) inside its run
function, so ``--help`` and usage errors answer at once.
"""

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
