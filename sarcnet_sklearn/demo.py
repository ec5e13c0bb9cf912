"""The demo: two rows of the reproduction on synthetic cells, a model file and a report.

:func:`run_demo` runs the linear baseline and SarcNet (Protocol 2) rows of
:func:`~sarcnet_sklearn.reproduce.reproduce_table1` on a synthetic dataset,
keeps the fitted SarcNet as a model file and writes the HTML report of the test
split. Run again in the same folder, it reuses what is done.
"""

from __future__ import annotations

import time
from os import PathLike
from pathlib import Path

from .reproduce import CALIBRATED, ReproduceSettings, reproduce_table1, split_key

DEMO_ROWS = ("linear", "sarcnet_p2")
"""The rows of :data:`~sarcnet_sklearn.reproduce.ROWS` the demo runs."""

MODEL_ROW = "sarcnet_p2"
"""The row whose fitted model the demo keeps and reports on."""


def run_demo(
    out: str | PathLike = "sarcnet_demo_output",
    *,
    settings: ReproduceSettings | None = None,
    device: str | None = None,
    random_state: int = 0,
    split: str | tuple[str, ...] = "cell",
    verbose: bool = True,
    command: str | None = None,
) -> dict[str, object]:
    """Generate synthetic cells, fit the baseline and SarcNet, compare, save the model.

    Parameters
    ----------
    out : str or path-like, default="sarcnet_demo_output"
        Folder for the synthetic dataset, the tables, the model files and the report.
    settings : ReproduceSettings, optional
        Default: the paper's settings on a GPU, a reduced run on a CPU (see
        :class:`~sarcnet_sklearn.reproduce.ReproduceSettings`).
    device : str, optional
        "cuda" or "cpu"; default: the GPU when present.
    random_state : int, default=0
    split : str or tuple of str, default="cell"
        How the cells are split (see :func:`~sarcnet_sklearn.reproduce.reproduce_table1`):
        the paper's split by cell only, to keep the demo fast; ``("cell", "field")``
        also fits both rows on a split by field of view (twice the time). The model
        file and the report are of the first split's SarcNet.
        Print progress, the table and where the outputs went.
    command : str, optional
        The command line that runs the demo, for the report's header.

    Returns
    -------
    result : dict
        ``report`` (metrics per model label; SarcNet also as ``"<label>, calibrated"``,
        the scores its model file gives), ``table`` (Markdown), ``table_path``,
        ``model_path`` (SarcNet, calibrated for prediction intervals),
        ``data_root``, ``report_path`` (the HTML report of the test split:
        example cells, Grad-CAM, scores per day).

    Examples
    --------
    >>> from sarcnet_sklearn.demo import run_demo
    >>> result = run_demo("demo_out")  # doctest: +SKIP
    """
    from .deploy import load_model
    from .explain import write_report

    say = print if verbose else (lambda *args, **kwargs: None)
    start = time.perf_counter()
    result = reproduce_table1(None, out, settings=settings, device=device,
                              random_state=random_state, rows=DEMO_ROWS, save_models=True,
                              split=split, verbose=verbose)
    first = split if isinstance(split, str) else split[0]
    model_path = result["models"][split_key(MODEL_ROW, first)]
    report_path = write_report(
        load_model(model_path), result["test"], Path(out) / "report", model_path=model_path,
        data_source=f"synthetic cells in {Path(result['data_root']).resolve()}, test split",
        command=command,
    )["html"]
    say(f"Finished in {time.perf_counter() - start:.0f} s.")
    say(f"Fitted SarcNet:   {model_path.resolve()}  (load with sarcnet_sklearn.load_model)")
    say(f"Report:           {report_path.resolve()}  (figures, Grad-CAM, metrics)")
    return {
        "report": _reports(result["rows"]),
        "table": result["table_md"].read_text(),
        "table_path": result["table_md"],
        "model_path": model_path,
        "data_root": result["data_root"],
        "report_path": report_path,
    }


def _reports(rows: dict[str, dict]) -> dict[str, dict]:
    """Metrics per row label, and per ``"<label>, calibrated"`` for a calibrated network row."""
    reports = {}
    for row in rows.values():
        reports[row["label"]] = row["metrics"]
        if row.get("calibrated"):
            reports[row["label"] + CALIBRATED] = row["calibrated"]["metrics"]
    return reports
