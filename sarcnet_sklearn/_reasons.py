"""Why a cell was not scored: the reasons, their codes, colours and counts.

Every per-cell output keeps the full message in its ``error`` column (naming the file, the
label, the feature). For a summary, a legend or a map, messages are sorted into a few
reasons by :func:`reason_of`; the reasons, their order, their titles, their colours and the
numbers they get in a reason map (``0``: no cell, ``1``: scored, ``2`` onwards: the reasons
in the order of :data:`REASONS`) live here and nowhere else.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Reason:
    """One reason a cell may not be scored."""

    code: str
    """Short name (the ``reason`` column of ``cells.csv``, the JSON summaries)."""
    title: str
    """What a legend and a summary say."""
    colour: str
    """Fill of such cells in overlays and napari (hex; none is on the score colour map)."""
    pattern: str
    """Regular expression matched against the ``error`` message."""


REASONS = (
    Reason("border", "touches the field's border", "#9a9a9a",
           r"touches the field's border"),
    Reason("tiny", "a single pixel, not a cell", "#cc79a7", r"has a single pixel"),
    Reason("no_signal", "no signal in the cell", "#8c564b",
           r"holds no signal|is blank|all zero"),
    Reason("mask", "empty or missing cell mask", "#00e5ff",
           r"mask is empty|no mask|mask holds no cell|no mask file"),
    Reason("image", "image missing or unreadable", "#b2182b",
           r"no image path|no such|not found|cannot read|not a regular file|single plane|"
           r"page \d+ was requested|ambiguous|several (scenes|channels)|not an image|"
           r"cannot decode"),
    Reason("out_of_range", "features far outside the training data", "#d55e00",
           r"far outside the training data"),
    Reason("features", "features cannot be measured", "#e69f00",
           r"cannot measure Protocol 1 features|not a finite number"),
    Reason("model", "the model gave no score", "#ff00ff",
           r"non-finite score|cannot score"),
    Reason("other", "other (see 'error')", "#d62728", r"$^"),
    Reason("field", "the whole field could not be used", "#000000", r"$^"),
)
"""The reasons, most specific first; ``other`` takes any message no pattern matches, and
``field`` marks the row of a field that could not be used at all (``fields``)."""

BY_CODE = {reason.code: reason for reason in REASONS}
MAP_SCORED = 1
"""Value of a scored cell in a reason map (0: no cell)."""
MAP_CODES = {reason.code: index + 2 for index, reason in enumerate(REASONS)}
"""Value of each reason in a reason map."""

_PATTERNS = [(reason.code, re.compile(reason.pattern)) for reason in REASONS
             if reason.code not in ("other", "field")]


def reason_of(error) -> str | None:
    """The reason code of an ``error`` message; None when there is no message (scored).

    Examples
    --------
    >>> reason_of("the cell touches the field's border and may be cut off ...")
    'border'
    >>> reason_of(None), reason_of(""), reason_of("something new")
    (None, None, 'other')
    """
    if not isinstance(error, str) or not error.strip():
        return None
    for code, pattern in _PATTERNS:
        if pattern.search(error):
            return code
    return "other"


def reason_codes(errors: Iterable) -> np.ndarray:
    """:func:`reason_of` of each message, as an object array (None where scored)."""
    values = list(errors)
    out = np.empty(len(values), dtype=object)
    out[:] = [reason_of(error) for error in values]
    return out


def count_reasons(errors: Iterable) -> dict[str, int]:
    """Unscored cells per reason code, in the order of :data:`REASONS` (absent reasons left out).

    Examples
    --------
    >>> count_reasons([None, "label 3 has a single pixel; it is not a cell",
    ...                "the cell touches the field's border", "touches the field's border"])
    {'border': 2, 'tiny': 1}
    """
    counts = Counter(code for code in reason_codes(errors) if code is not None)
    return {reason.code: counts[reason.code] for reason in REASONS if counts[reason.code]}


def reason_lines(counts: dict[str, int], examples: dict[str, str] | None = None) -> list[str]:
    """One line per reason: its count, its title and, when given, an example message.

    Examples
    --------
    >>> reason_lines({"border": 17, "tiny": 1})
    ["  17 touches the field's border", '   1 a single pixel, not a cell']
    """
    width = max((len(str(n)) for n in counts.values()), default=1)
    lines = []
    for code, n in counts.items():
        line = f"  {n:>{width}} {BY_CODE[code].title}"
        if examples and examples.get(code):
            example = examples[code]
            line += f", e.g. {example if len(example) <= 160 else example[:157] + '...'}"
        lines.append(line)
    return lines


def rgba(code: str, alpha: float = 1.0) -> tuple[float, float, float, float]:
    """The colour of a reason as an RGBA tuple of floats in [0, 1].

    Examples
    --------
    >>> rgba("border", 0.5)  # doctest: +ELLIPSIS
    (0.6039..., 0.6039..., 0.6039..., 0.5)
    """
    colour = BY_CODE[code].colour.lstrip("#")
    red, green, blue = (int(colour[i:i + 2], 16) / 255 for i in (0, 2, 4))
    return (red, green, blue, alpha)
