"""Pieces of the package's self-contained HTML pages (the model report, the screen comparison).

One style sheet, tables, figures embedded as PNG data URIs, the provenance
list at the top of a page and file hashes. Light: the standard library only
(figures are saved with matplotlib, imported when one is saved), so a page
about a screen does not import torch.
"""

from __future__ import annotations

import base64
import hashlib
import html
from os import PathLike
from pathlib import Path

DPI = 110
"""Resolution of the PNG figures of a page."""


def sha256_of(path: str | PathLike) -> str:
    """SHA-256 of a file, or of a folder's files (their relative paths and contents, sorted).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "m.bin"
    >>> _ = file.write_bytes(b"abc")
    >>> sha256_of(file)[:16]
    'ba7816bf8f01cfea'
    """
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda handle=handle: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def html_table(frame, table_id: str | None = None, digits: int = 3) -> str:
    """A DataFrame as an HTML table, floats with ``digits`` decimals (NaN as an empty cell).

    Examples
    --------
    >>> import pandas as pd
    >>> html_table(pd.DataFrame({"a": [1.5]}))
    '<table><thead><tr><th>a</th></tr></thead><tbody><tr><td>1.500</td></tr></tbody></table>'
    """
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = "".join(
            ("<td></td>" if value != value else f"<td>{value:.{digits}f}</td>")
            if isinstance(value, float) else f"<td>{html.escape(str(value))}</td>"
            for value in record
        )
        rows.append(f"<tr>{cells}</tr>")
    attribute = f' id="{table_id}"' if table_id else ""
    return (f"<table{attribute}><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def embedded_figure(path: Path, caption: str, css_class: str = "") -> str:
    """A <figure> with the PNG embedded as a data URI and its caption."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    attribute = f' class="{css_class}"' if css_class else ""
    return (f'<figure{attribute}><img src="data:image/png;base64,{data}" '
            f'alt="{html.escape(caption)}"><figcaption>{html.escape(caption)} '
            f"<span class=\"file\">({html.escape(Path(path).name)})</span></figcaption></figure>")


def provenance_list(header: dict[str, str]) -> str:
    """The provenance box at the top of a page: one label and value per line.

    Examples
    --------
    >>> provenance_list({"Data": "screen.csv"})
    '<dl class="provenance"><dt>Data</dt><dd>screen.csv</dd></dl>'
    """
    items = "".join(f"<dt>{html.escape(label)}</dt><dd>{html.escape(value)}</dd>"
                    for label, value in header.items())
    return f'<dl class="provenance">{items}</dl>'


def html_document(title: str, body: str) -> str:
    """The whole page: ``body`` under ``title``, with the shared style sheet."""
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def save_png(figure, path: str | PathLike) -> Path:
    """Save a matplotlib :class:`~matplotlib.figure.Figure` as a PNG file, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from .outputs import write_atomically

    FigureCanvasAgg(figure)
    return write_atomically(path, lambda tmp: figure.savefig(tmp, dpi=DPI, format="png"))


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 1.5em auto;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; }
h2 { margin-top: 1.4em; border-bottom: 1px solid #ddd; }
dl.provenance { display: grid; grid-template-columns: max-content 1fr; gap: 0.15em 1em;
                background: #f7f7f7; border: 1px solid #ddd; padding: 0.6em 1em;
                font-size: 0.9em; }
dl.provenance dt { font-weight: 600; }
dl.provenance dd { margin: 0; overflow-wrap: anywhere; font-family: ui-monospace, monospace; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: right; }
th { background: #f3f3f3; }
figure { margin: 0.8em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; }
figcaption .file { color: #888; }
.pair { display: flex; flex-wrap: wrap; gap: 1em; }
.pair figure { flex: 1 1 360px; }
p.note { color: #555; }
div.warning { border: 2px solid #b00; padding: 0 1em; margin: 1em 0; color: #600; }
@page { size: A4; margin: 12mm; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 10pt; }
  h2 { break-after: avoid; page-break-after: avoid; }
  figure, table, dl.provenance { break-inside: avoid; page-break-inside: avoid; }
  figure img { max-height: 120mm; width: auto; }
  .pair { display: block; }
  a { color: inherit; }
}
"""
"""The style sheet of every page: readable on screen, A4 in print."""
