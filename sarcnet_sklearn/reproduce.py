"""Reproduce Table 1 of the SarcNet paper (and its Fig. 3 histogram) in one command.

``sarcnet-sklearn reproduce --aics-root DIR`` splits the AICS cells as the paper
does, fits the six models of Table 1 with the paper's recipe (and two rows beyond it:
SarcNet with D4 augmentation and test-time averaging, ConvNeXt-Tiny), and writes the
test-split metrics beside the paper's numbers. Each finished row is stored in
the output folder (metrics and predictions) and skipped when the command is run
again; a row interrupted midway continues from its last finished epoch (skorch
checkpoints in ``OUT/checkpoints/<row>/``). Without ``--aics-root`` the same
experiment runs on a synthetic dataset, reduced on a CPU. The demo
(:func:`~sarcnet_sklearn.demo.run_demo`) is two of these rows.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from skorch.callbacks import Checkpoint, LoadInitState, ProgressBar

from ._columns import DAY_COLUMN, ERROR_COLUMN, IMAGE_COLUMN, SCORE_PRED_COLUMN, TARGET_COLUMN
from ._console import show_progress
from ._recipe import BATCH_SIZE, IMAGE_SIZE_PX, LEARNING_RATE, MAX_EPOCHS
from ._table1 import ROW_KEYS, ROWS, Row
from .datasets import load_aics, make_synthetic_aics, paper_split
from .metrics import METRIC_NAMES, metrics_table, regression_report
from .outputs import write_atomically, write_csv_atomically
from .pipeline import make_linear_baseline, make_sarcnet_pipeline
from .regressor import DEFAULT_DEVICE

METRICS = tuple(METRIC_NAMES)

PAPER_TABLE1 = {
    "linear": (0.756, 0.373, 0.234, 0.514),
    "resnet18": (0.829, 0.453, 0.300, 0.379),
    "densenet": (0.813, 0.340, 0.194, 0.599),
    "alexnet": (0.788, 0.346, 0.195, 0.596),
    "sarcnet_p1": (0.825, 0.310, 0.159, 0.671),
    "sarcnet_p2": (0.831, 0.310, 0.161, 0.668),
}
"""Table 1 of Le et al. (test split): Spearman, MAE, MSE, R^2 per row (the paper's rows only)."""

PAPER_RECIPE = {"augment": None, "test_time_augment": False}
"""The paper trains and predicts without augmentation; rows use it unless they say otherwise."""

HISTOGRAM_ROW = "sarcnet_p2"


@dataclass(frozen=True)
class ReproduceSettings:
    """Size of the run: the paper's recipe on a GPU, a reduced one on a CPU.

    ``n_cells`` and ``synthetic_size`` only apply to the synthetic dataset.
    """

    image_size: int = IMAGE_SIZE_PX
    max_epochs: int = MAX_EPOCHS
    batch_size: int = BATCH_SIZE
    lr: float = LEARNING_RATE
    n_cells: int = 3000
    synthetic_size: int = 256

    @classmethod
    def for_device(cls, device: str, synthetic: bool) -> ReproduceSettings:
        if device.startswith("cuda") or not synthetic:
            return cls()
        return cls(image_size=64, max_epochs=15, n_cells=1200, synthetic_size=112)


def reproduce_table1(
    aics_root: str | PathLike | None = None,
    out: str | PathLike = "sarcnet_table1",
    *,
    settings: ReproduceSettings | None = None,
    weights: str | PathLike | None = None,
    device: str | None = None,
    precision: str = "auto",
    random_state: int = 0,
    rows: Sequence[str] | None = None,
    callbacks: Sequence | None = None,
    save_models: bool = False,
    verbose: bool = True,
) -> dict[str, object]:
    """Fit the models of Table 1 on the paper's split and write the table and Fig. 3.

    Parameters
    ----------
    aics_root : str or path-like, optional
        The AICS dataset (see :func:`~sarcnet_sklearn.datasets.load_aics`).
        None: a synthetic dataset is written to ``OUT/synthetic_aics``.
    out : str or path-like, default="sarcnet_table1"
        Output folder: ``table1.csv``, ``table1.md``, ``fig3_day_histogram.png``,
        ``rows/<row>.json`` (metrics), ``predictions/<row>.csv`` (test split).
    settings : ReproduceSettings, optional
        Default: the paper's recipe (224 px, 100 epochs, batch 40, lr 5e-4), except
        for synthetic data on a CPU (64 px, 15 epochs, 1,200 cells).
    weights : None, "imagenet" or folder, optional
        Initial CNN weights: random, torchvision's ImageNet weights, or a folder
        holding torchvision's weight files (``resnet18-*.pth``, ``densenet121-*.pth``,
        ``alexnet-*.pth``).
    device : str, optional
        Default: "cuda" when a GPU is present.
    precision : str, default="auto"
        See :class:`~sarcnet_sklearn.SarcNetRegressor`.
    random_state : int, default=0
        Seeds the networks and the synthetic data, so reruns are comparable.
    rows : sequence of str, optional
        Subset of ``ROW_KEYS`` to run (default: all: the paper's six rows with its recipe,
        no augmentation, then ``sarcnet_d4`` and ``convnext_tiny``).
    callbacks : sequence, optional
        Extra skorch callbacks for the network rows.
    save_models : bool, default=False
        Also save each row's fitted model, calibrated on the validation split
        (prediction intervals), as ``models/<row>.joblib`` with its metadata
        (load with :func:`~sarcnet_sklearn.load_model`); a finished row without
        its model file is then run again.
    verbose : bool, default=True
        Print progress and where the outputs went.

    Returns
    -------
    result : dict
        ``table`` (DataFrame), ``table_csv``, ``table_md``, ``histogram`` (path or
        None), ``rows`` (metrics per row key), ``skipped`` (row keys found done),
        ``models`` (row key to model file, with ``save_models``), ``data_root`` and
        ``test`` (the test split's cells).

    Examples
    --------
    The paper's stratified split needs a few hundred cells, and training on them takes
    minutes: ``tests/test_reproduce.py`` runs it on 200 synthetic cells.

    >>> from sarcnet_sklearn.reproduce import reproduce_table1
    >>> result = reproduce_table1("aics", "table1_out", weights="imagenet")  # doctest: +SKIP
    >>> result["table"][["model", "spearman", "paper_spearman"]]  # doctest: +SKIP
    """
    say = print if verbose else (lambda *args, **kwargs: None)
    device = device or DEFAULT_DEVICE
    settings = settings or ReproduceSettings.for_device(device, synthetic=aics_root is None)
    selected = _selected_rows(rows)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    if aics_root is None:
        data_root = _synthetic_dataset(out, settings, random_state, say)
        data = f"synthetic: {settings.n_cells} cells, {settings.synthetic_size} px"
    else:
        data_root = Path(aics_root)
        data = str(data_root.resolve())
    cells = load_aics(data_root)
    train, valid, test = paper_split(cells)
    say(f"{len(cells)} cells: {len(train)} train / {len(valid)} validation / {len(test)} test")

    run = {
        "data": data,
        **asdict(settings),
        "weights": None if weights is None else str(weights),
        "precision": precision,
        "random_state": random_state,
        "split": [len(train), len(valid), len(test)],
    }
    if aics_root is not None:
        del run["n_cells"], run["synthetic_size"]

    results, skipped, models = {}, [], {}
    for row in selected:
        model_path = out / "models" / f"{row.key}.joblib"
        stored = _load_row(out, row, run)
        if stored is not None and (model_path.is_file() or not save_models):
            if save_models:
                models[row.key] = model_path
            say(f"{row.label}: already done, skipped (delete {out / 'rows' / row.key}.json "
                "to redo it)")
            results[row.key] = stored
            skipped.append(row.key)
            continue
        say(f"{row.label}: training on {device} ...")
        start = time.perf_counter()
        if row.linear:
            model = make_linear_baseline(row.protocol).fit(train, train[TARGET_COLUMN])
            extra = {}
        else:
            model, extra = _fit_network(
                row, train, valid, out, run, settings, weights, device, precision,
                random_state, callbacks, verbose, say,
            )
        prediction, errors = _predict(model, test, row.linear)
        scored = np.isfinite(prediction)
        record = {
            "row": row.key,
            "label": row.label,
            "params": {} if row.linear else _network_params(row),
            "metrics": regression_report(test[TARGET_COLUMN][scored], prediction[scored]),
            "n_not_scored": int((~scored).sum()),
            "seconds": round(time.perf_counter() - start, 1),
            "device": device,
            **extra,
            "settings": run,
        }
        if save_models:
            models[row.key] = _save_model(model, model_path, record, train, valid)
        _save_row(out, row, record, test, prediction, errors)
        shutil.rmtree(out / "checkpoints" / row.key, ignore_errors=True)
        results[row.key] = record
        metrics = record["metrics"]
        shown = ", ".join(f"{METRIC_NAMES[key]} {metrics[key]:.3f}" for key in METRICS)
        say(f"{row.label}: {shown} ({record['seconds']:.0f} s)")

    table = format_table1(results)
    table_csv = write_csv_atomically(table, out / "table1.csv")
    table_md = out / "table1.md"
    markdown = _markdown(table, run, len(test))
    _write_text(table_md, markdown)
    histogram = None
    if HISTOGRAM_ROW in results:
        histogram = _histogram(out)
    say("")
    say(markdown)
    say(f"Table (CSV):      {table_csv.resolve()}")
    say(f"Table (Markdown): {table_md.resolve()}")
    if histogram is not None:
        say(f"Fig. 3 histogram: {histogram.resolve()}")
    say(f"Per-row metrics and test predictions: {(out / 'rows').resolve()}, "
        f"{(out / 'predictions').resolve()}")
    if models:
        say(f"Fitted models:    {(out / 'models').resolve()}  (load with "
            "sarcnet_sklearn.load_model)")
    return {
        "table": table,
        "table_csv": table_csv,
        "table_md": table_md,
        "histogram": histogram,
        "rows": results,
        "skipped": skipped,
        "models": models,
        "data_root": data_root,
        "test": test,
    }


def format_table1(results: dict[str, dict]) -> pd.DataFrame:
    """Measured metrics beside the paper's, one row per model, in Table 1's order."""
    records = []
    for row in ROWS:
        if row.key not in results:
            continue
        metrics = results[row.key]["metrics"]
        record = {"model": row.label}
        record.update({name: metrics[name] for name in METRICS})
        paper = PAPER_TABLE1.get(row.key, (np.nan,) * len(METRICS))
        record.update({f"paper_{name}": value
                       for name, value in zip(METRICS, paper, strict=True)})
        record["best_epoch"] = results[row.key].get("best_epoch")
        record["seconds"] = results[row.key]["seconds"]
        records.append(record)
    return pd.DataFrame.from_records(records)


def _selected_rows(rows: Sequence[str] | None) -> list[Row]:
    if rows is None:
        return list(ROWS)
    unknown = sorted(set(rows) - set(ROW_KEYS))
    if unknown:
        raise ValueError(f"unknown row(s) {unknown}; choose from {list(ROW_KEYS)}")
    return [row for row in ROWS if row.key in set(rows)]


def _synthetic_dataset(out: Path, settings: ReproduceSettings, random_state: int, say) -> Path:
    root = out / "synthetic_aics"
    marker = out / "synthetic_aics.json"
    wanted = {"n_cells": settings.n_cells, "image_size": settings.synthetic_size,
              "random_state": random_state}
    if marker.is_file() and json.loads(marker.read_text()) == wanted and root.is_dir():
        say(f"Reusing the synthetic dataset in {root}")
        return root
    say(f"Generating {settings.n_cells} synthetic cells in {root} ...")
    make_synthetic_aics(root, n_cells=settings.n_cells, image_size=settings.synthetic_size,
                        random_state=random_state, n_jobs=-1)
    _write_text(marker, json.dumps(wanted))
    return root


def _backbone_weights(weights, backbone: str):
    if weights is None or weights == "imagenet":
        return weights
    folder = Path(weights)
    if not folder.is_dir():
        raise ValueError(f"weights must be None, 'imagenet' or a folder of weight files; "
                         f"{folder} is not a folder")
    found = sorted(folder.glob(f"{backbone}-*.pt*")) or sorted(folder.glob(f"{backbone}*.pt*"))
    if not found:
        raise ValueError(f"no {backbone} weight file ({backbone}-*.pth) in {folder}")
    return found[0]


def _network_params(row: Row) -> dict:
    """The row's regressor settings: the paper's recipe unless the row says otherwise."""
    return {**PAPER_RECIPE, **row.params}


def _is_best_epoch(net) -> bool:
    """Whether the last epoch has the best validation Spearman so far (resumed epochs included)."""
    scores = [-np.inf if s is None or np.isnan(s) else s for s in net.history[:, "valid_spearman"]]
    return scores[-1] >= max(scores[:-1], default=-np.inf)


def _fit_network(row, train, valid, out, run, settings, weights, device, precision,
                 random_state, callbacks, verbose, say):
    folder = out / "checkpoints" / row.key
    signature = folder / "settings.json"
    if folder.is_dir() and (not signature.is_file()
                            or json.loads(signature.read_text()) != run):
        shutil.rmtree(folder)  # checkpoints of a run with other settings
    folder.mkdir(parents=True, exist_ok=True)
    _write_text(signature, json.dumps(run))
    history = folder / "history.json"
    done = len(json.loads(history.read_text())) if history.is_file() else 0
    remaining = max(settings.max_epochs - done, 0)
    if done:
        say(f"{row.label}: resuming from the checkpoint of epoch {done} of "
            f"{settings.max_epochs} in {folder}")
    last = Checkpoint(monitor=None, dirname=str(folder), f_params="last_params.pt",
                      f_optimizer="last_optimizer.pt", f_criterion=None,
                      f_history="history.json", event_name=None)
    best = Checkpoint(monitor=_is_best_epoch, dirname=str(folder), f_params="best_params.pt",
                      f_optimizer=None, f_criterion=None, f_history=None, event_name=None)
    row_callbacks = [("checkpoint_last", last), ("checkpoint_best", best),
                     ("resume", LoadInitState(last))]
    if show_progress(verbose):
        row_callbacks.append(("progress", ProgressBar()))
    row_callbacks += [(f"extra_{i}", cb) for i, cb in enumerate(callbacks or ())]
    model = make_sarcnet_pipeline(
        protocol=row.protocol,
        **_network_params(row),
        image_size=settings.image_size,
        max_epochs=remaining,
        batch_size=settings.batch_size,
        lr=settings.lr,
        weights=_backbone_weights(weights, row.params.get("backbone", "resnet18")),
        device=device,
        precision=precision,
        random_state=random_state,
        verbose=int(verbose),
        callbacks=row_callbacks,
    )
    model.fit(train, train[TARGET_COLUMN], validation_data=(valid, valid[TARGET_COLUMN]))
    net = model.regressor
    finished = len(net.history)
    if finished < settings.max_epochs:  # skorch swallows Ctrl-C and returns early
        raise KeyboardInterrupt(
            f"{row.label} stopped after epoch {finished} of {settings.max_epochs}; "
            f"run the same command again to continue from {folder}"
        )
    if (folder / "best_params.pt").is_file():
        net.load_params(f_params=str(folder / "best_params.pt"))
    scores = [np.nan if s is None else s for s in net.history[:, "valid_spearman"]]
    return model, {
        "best_epoch": int(np.nanargmax(scores)) + 1,
        "best_valid_spearman": float(np.nanmax(scores)),
        "resumed_from_epoch": done,
    }


def _load_row(out: Path, row: Row, run: dict) -> dict | None:
    path = out / "rows" / f"{row.key}.json"
    predictions = out / "predictions" / f"{row.key}.csv"
    if not (path.is_file() and predictions.is_file()):
        return None
    record = json.loads(path.read_text())
    return record if record.get("settings") == run else None


def _predict(model, test: pd.DataFrame, linear: bool) -> tuple[np.ndarray, list]:
    """The test cells' scores and errors: a SarcNet row's by the package's score policy
    (:func:`~sarcnet_sklearn.score_table.score_table`, as ``predict`` writes them); the
    linear baseline's as it predicts them."""
    if linear:
        prediction = np.asarray(model.predict(test), dtype=np.float64).reshape(-1)
        return prediction, [None] * len(prediction)
    from .score_table import score_table

    scores = score_table(model, test)
    return (scores[SCORE_PRED_COLUMN].to_numpy(dtype=np.float64),
            scores[ERROR_COLUMN].tolist())


def _save_row(out: Path, row: Row, record: dict, test: pd.DataFrame, prediction,
              errors) -> None:
    table = pd.DataFrame({
        IMAGE_COLUMN: test[IMAGE_COLUMN].to_numpy(),
        DAY_COLUMN: test[DAY_COLUMN].to_numpy(),
        TARGET_COLUMN: test[TARGET_COLUMN].to_numpy(),
        SCORE_PRED_COLUMN: prediction,
        ERROR_COLUMN: errors,
    })
    write_csv_atomically(table, out / "predictions" / f"{row.key}.csv")
    _write_text(out / "rows" / f"{row.key}.json", json.dumps(record, indent=2))


def _save_model(model, path: Path, record: dict, train: pd.DataFrame,
                valid: pd.DataFrame) -> Path:
    from .deploy import save_model
    from .intervals import calibrate

    calibrate(model, valid, valid[TARGET_COLUMN])
    training = {"source": record["settings"]["data"], "row": record["row"],
                "n_train": len(train), "n_validation": len(valid)}
    return save_model(model, path, metadata={"training": training,
                                             "metrics": {"test": record["metrics"]}})


def _write_text(path: Path, text: str) -> None:
    write_atomically(path, lambda temporary: Path(temporary).write_text(text))


def _markdown(table: pd.DataFrame, run: dict, n_test: int) -> str:
    rows = table.set_index("model")
    measured = metrics_table({model: row[list(METRICS)] for model, row in rows.iterrows()})
    paper = metrics_table({
        model: {name: row[f"paper_{name}"] for name in METRICS} for model, row in rows.iterrows()
    }).dropna(how="all")
    settings = ", ".join(f"{key} {value}" for key, value in run.items())
    return (
        f"# Table 1, reproduced (test split, {n_test} cells)\n\n{settings}\n\n"
        f"## Measured\n\n{measured.to_markdown(floatfmt='.3f')}\n\n"
        f"## Paper (Le et al., Table 1)\n\n{paper.to_markdown(floatfmt='.3f')}\n"
    )


def _histogram(out: Path) -> Path:
    from .explain import plot_day_histograms

    predictions = pd.read_csv(out / "predictions" / f"{HISTOGRAM_ROW}.csv")
    # Runs before the column was named score_pred wrote "prediction".
    column = SCORE_PRED_COLUMN if SCORE_PRED_COLUMN in predictions.columns else "prediction"
    path = out / "fig3_day_histogram.png"
    return Path(plot_day_histograms(predictions[column], predictions[DAY_COLUMN], path,
                                    expert=predictions[TARGET_COLUMN]))
