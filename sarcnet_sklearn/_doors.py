"""Which door a call came through (Python, the command line, napari), so that messages name
the option as the user can set it there.

A message that tells a command-line user to give ``pixel_size=``, or a napari user to pass
``--pixel-size``, leaves them guessing. The library words such hints with
:func:`option`, which spells an option for the door of the current call: the command line
enters through :func:`entered_through` ``("cli")`` (in :func:`sarcnet_sklearn.commands.main`),
the napari widget through ``("napari")`` (in its worker threads), and anything else is
Python. The door is a :class:`contextvars.ContextVar`, so threads that do not copy the
context (a thread pool, a Dask worker) word their messages for Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

DOORS = ("python", "cli", "napari")

OPTIONS = {
    "pixel_size": {
        "python": "pixel_size=",
        "cli": "--pixel-size",
        "napari": "the image layer's scale (micrometres per pixel, in the layer's properties)",
    },
    "score_border_cells": {
        "python": "score_border_cells=True",
        "cli": "--score-border-cells",
        "napari": "the 'score cells touching the border' box",
    },
    "channel": {"python": "channel=", "cli": "--channel",
                "napari": "the image layer of the alpha-actinin-2 channel"},
    "scene": {"python": "scene=", "cli": "--scene", "napari": "the scene's image layer"},
    "z": {"python": "z=", "cli": "--z", "napari": "the Z slider"},
    "z_max": {"python": "z='max'", "cli": "--z max", "napari": "a maximum projection layer"},
    "labels": {"python": "labels=", "cli": "--labels", "napari": "the 'cells' labels layer"},
    "score_range": {"python": "score_range=(low, high)", "cli": "--score-range LOW HIGH",
                    "napari": "score_range=(low, high) when training"},
    "protocol_1": {"python": "train_model(..., protocol=1)", "cli": "train --protocol 1",
                   "napari": "a model trained with Protocol 1 (train --protocol 1)"},
    "control": {"python": "control=", "cli": "--control NAME", "napari": "control="},
    "direction_lower": {"python": "direction='lower'", "cli": "--direction lower",
                        "napari": "direction='lower'"},
    "segment_classical": {"python": "method='classical'", "cli": "--segment classical",
                          "napari": "method='classical'"},
    "random_share": {"python": "random_share=", "cli": "--random-share",
                     "napari": "random_share="},
    "groups": {"python": "groups=", "cli": "--groups", "napari": "groups="},
    "order": {"python": "order=", "cli": "--order", "napari": "order="},
    "density": {"python": "density=", "cli": "--density", "napari": "density="},
}
"""How each option the library's messages mention is set, door by door."""

_DOOR: ContextVar[str] = ContextVar("sarcnet_sklearn_door", default="python")


def current_door() -> str:
    """The door of the current call: ``"python"``, ``"cli"`` or ``"napari"``."""
    return _DOOR.get()


@contextmanager
def entered_through(door: str) -> Iterator[None]:
    """Word the messages of the calls made inside the block for ``door``.

    Examples
    --------
    >>> from sarcnet_sklearn._doors import entered_through, option
    >>> option("pixel_size")
    'pixel_size='
    >>> with entered_through("cli"):
    ...     option("pixel_size")
    '--pixel-size'
    """
    if door not in DOORS:
        raise ValueError(f"door must be one of {DOORS}, got {door!r}")
    token = _DOOR.set(door)
    try:
        yield
    finally:
        _DOOR.reset(token)


def option(name: str) -> str:
    """``name`` (a key of :data:`OPTIONS`) spelled for the current door.

    Examples
    --------
    >>> from sarcnet_sklearn._doors import entered_through, option
    >>> with entered_through("napari"):
    ...     option("score_border_cells")
    "the 'score cells touching the border' box"
    """
    return OPTIONS[name][_DOOR.get()]
