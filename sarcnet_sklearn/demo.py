"""The demo: synthetic cells -> baseline and SarcNet -> metrics table -> model file."""

from __future__ import annotations

import time
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import pandas as pd
from skorch.callbacks import ProgressBar

from ._columns import TARGET_COLUMN
from .datasets import load_aics, make_synthetic_aics, paper_split
from .deploy import save_model
from .explain import write_report
from .intervals import calibrate
from .metrics import regression_report
from .pipeline import make_linear_baseline, make_sarcnet_pipeline
from .regressor import DEFAULT_DEVICE


@dataclass(frozen=True)
class DemoSettings:
    """Size of the demo run: reduced on a CPU so that it takes a few minutes."""

    n_cells: int
    synthetic_size: int
    image_size: int
    max_epochs: int

    @classmethod
    def for_device(cls, device: str) -> DemoSettings:
        if device.startswith("cuda"):
            return cls(n_cells=3000, synthetic_size=256, image_size=224, max_epochs=100)
        return cls(n_cells=1200, synthetic_size=112, image_size=64, max_epochs=15)


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """A Markdown table of :func:`regression_report` results, one row per model."""
    table = pd.DataFrame(rows).T[["spearman", "mae", "mse", "r2"]]
    table.columns = ["Spearman", "MAE", "MSE", "R^2"]
    table.index.name = "model"
    return table.to_markdown(floatfmt=".3f")  # tabulate comes with skorch


def run_demo(
    out: str | PathLike = "sarcnet_demo_output",
    *,
    settings: DemoSettings | None = None,
    device: str | None = None,
    random_state: int = 0,
    verbose: bool = True,
) -> dict[str, object]:
    """Generate synthetic cells, fit the baseline and SarcNet, compare, save the model.

    Parameters
    ----------
    out : str or path-like, default="sarcnet_demo_output"
        Folder for the synthetic dataset, the table and the model file.
    settings : DemoSettings, optional
        Default: the paper's settings on a GPU, a reduced run on a CPU.
    device : str, optional
        "cuda" or "cpu"; default: the GPU when present.
    random_state : int, default=0
    verbose : bool, default=True
        Print progress, the table and where the outputs went.

    Returns
    -------
    result : dict
        ``report`` (metrics per model), ``table`` (Markdown), ``model_path``,
        ``table_path``, ``data_root``, ``report_path`` (the HTML report of the
        test split: example cells, Grad-CAM, scores per day).

    Examples
    --------
    >>> from sarcnet_sklearn.demo import run_demo
    >>> result = run_demo("demo_out")  # doctest: +SKIP
    """
    say = print if verbose else (lambda *args, **kwargs: None)
    device = device or DEFAULT_DEVICE
    settings = settings or DemoSettings.for_device(device)
    out = Path(out)
    data_root = out / "synthetic_aics"
    start = time.perf_counter()

    say(f"Generating {settings.n_cells} synthetic cells in {data_root} ...")
    make_synthetic_aics(
        data_root,
        n_cells=settings.n_cells,
        image_size=settings.synthetic_size,
        random_state=random_state,
        n_jobs=-1,
        progress=verbose,
    )
    cells = load_aics(data_root)
    train, valid, test = paper_split(cells)
    say(f"{len(cells)} scored cells: {len(train)} train / {len(valid)} validation / "
        f"{len(test)} test")

    report = {}
    baseline = make_linear_baseline(protocol=2).fit(train, train[TARGET_COLUMN])
    report["Linear regression (Protocol 2)"] = regression_report(
        test[TARGET_COLUMN], baseline.predict(test)
    )

    say(
        f"Training SarcNet (Protocol 2) on {device}: image size {settings.image_size}, "
        f"{settings.max_epochs} epochs ..."
    )
    sarcnet = make_sarcnet_pipeline(
        protocol=2,
        image_size=settings.image_size,
        max_epochs=settings.max_epochs,
        device=device,
        random_state=random_state,
        verbose=int(verbose),
        callbacks=[ProgressBar()] if verbose else None,
    )
    sarcnet.fit(train, train[TARGET_COLUMN], validation_data=(valid, valid[TARGET_COLUMN]))
    report["SarcNet (Protocol 2)"] = regression_report(test[TARGET_COLUMN], sarcnet.predict(test))
    calibrate(sarcnet, valid, valid[TARGET_COLUMN])  # prediction intervals, shown in the report

    table = format_table(report)
    out.mkdir(parents=True, exist_ok=True)
    table_path = out / "demo_results.md"
    table_path.write_text(
        f"Test split of {len(test)} synthetic cells ({device}, image size "
        f"{settings.image_size}, {settings.max_epochs} epochs)\n\n{table}\n"
    )
    model_path = save_model(
        sarcnet,
        out / "sarcnet_protocol2.joblib",
        metadata={
            "training": {"source": "synthetic demo", "n_train": len(train),
                         "n_validation": len(valid)},
            "metrics": {"test": report["SarcNet (Protocol 2)"]},
        },
    )
    report_path = write_report(sarcnet, test, out / "report")["html"]

    say("")
    say(table)
    say("")
    say(f"Finished in {time.perf_counter() - start:.0f} s.")
    say(f"Synthetic dataset: {data_root.resolve()}")
    say(f"Results table:     {table_path.resolve()}")
    say(f"Fitted model:      {model_path.resolve()}  (load with sarcnet_sklearn.load_model)")
    say(f"Report:            {report_path.resolve()}  (figures, Grad-CAM, metrics)")
    return {
        "report": report,
        "table": table,
        "model_path": model_path,
        "table_path": table_path,
        "data_root": data_root,
        "report_path": report_path,
    }
