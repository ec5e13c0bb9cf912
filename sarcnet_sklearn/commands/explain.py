"""The ``sarcnet-sklearn explain`` and ``sarcnet-sklearn report`` subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .._columns import (
    DAY_COLUMN,
    ERROR_COLUMN,
    OUT_OF_RANGE_COLUMN,
    SCORE_PRED_COLUMN,
    TARGET_COLUMN,
)
from ._options import add_pixel_size_option, add_test_time_augment_option, command_line

if TYPE_CHECKING:
    import pandas as pd


def add_subcommand(subparsers) -> None:
    """Register ``explain`` and ``report`` on the ``sarcnet-sklearn`` subparsers.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_subcommand(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["report", "model.joblib", "cells.csv", "--out", "r"]).max_cells
    12
    """
    explain = subparsers.add_parser(
        "explain",
        help="Grad-CAM heatmap of each cell and a CSV of the predictions",
        description=(
            "Predict the score of the first --max-cells cells of DATA with a fitted model and "
            "save, per cell, its image beside the Grad-CAM heatmap of the model's image branch "
            "(titled with the expert score when DATA has a 'score' column, and the predicted "
            "score), plus predictions.csv."
        ),
    )
    report = subparsers.add_parser(
        "report",
        help="the paper's figures (example cells, Grad-CAM, day 18 vs 32) and metrics as HTML",
        description=(
            "Predict every cell of DATA with a fitted model and write index.html, one "
            "self-contained page (figures embedded; opens offline, prints on A4): where the "
            "numbers come from (model file and its SHA-256, data, versions, device, date, this "
            "command), Spearman/MAE/MSE/R^2 with predicted-versus-expert and residual plots "
            "when DATA has a 'score' column, prediction intervals of a calibrated model, and "
            "the paper's figures (Fig. 2A example cells across the score range, Fig. 2B their "
            "Grad-CAM heatmaps, Fig. 3 histograms of the scores per day); the figures as PNG "
            "files and predictions.csv beside it."
        ),
    )
    for parser, func, what in ((explain, run_explain, "cells explained"),
                               (report, run_report, "cells in the example grids")):
        parser.add_argument("model", metavar="MODEL",
                            help="model file from 'train', 'tune --out' or 'demo' (.joblib), "
                                 "or a safe-format .zip/folder")
        parser.add_argument(
            "data", metavar="DATA", nargs="+",
            help="AICS dataset root, CSV with an image_path column, or image files/folders",
        )
        parser.add_argument("--out", required=True, help="output folder")
        parser.add_argument("--max-cells", type=int, default=12,
                            help=f"number of {what} (default: %(default)s)")
        parser.add_argument("--layer", default=None,
                            help="Grad-CAM layer of the image branch, e.g. layer3 "
                                 "(default: the deepest block whose map has at least 7x7 "
                                 "cells at the model's image size)")
        parser.add_argument("--direction", choices=["raise", "lower"], default="raise",
                            help="map the evidence for a higher or a lower score "
                                 "(default: %(default)s)")
        parser.add_argument("--batch-size", type=int, default=16,
                            help="cells per Grad-CAM pass (default: %(default)s)")
        add_test_time_augment_option(parser)
        add_pixel_size_option(parser)
        parser.set_defaults(func=func)


def _load(path: str, test_time_augment: bool | None) -> tuple[object, int | None]:
    """The fitted SarcNet model in ``path`` (with ``test_time_augment`` unless None) and the
    mask page it was trained with."""
    from ..deploy import load_model
    from ..pipeline import SarcNetPipeline

    model, metadata = load_model(path, return_metadata=True)
    try:
        model = SarcNetPipeline.of(model).with_test_time_augment(test_time_augment)
    except (TypeError, ValueError) as exc:  # NotFittedError is a ValueError
        raise ValueError(f"{path}: {exc}") from exc
    return model, (metadata.get("training") or {}).get("mask_page")


def _with_features(model, cells: pd.DataFrame, mask_page: int | None,
                   sarcomere: bool = False, pixel_size: float | None = None) -> pd.DataFrame:
    """``cells`` with the model's features, measured from the images where the table lacks
    them (a Protocol 1 model), as ``predict`` and ``train`` do; with ``sarcomere`` the
    sarcomere measures too."""
    from .._pixel_size import pixel_size_of_model
    from ..deploy import check_cells
    from ..pipeline import SarcNetPipeline

    inputs = SarcNetPipeline.of(model).inputs
    given = set(inputs.features) <= set(cells.columns)
    if (not given and not inputs.measurable) or (given and not sarcomere):
        return cells
    model_size = pixel_size_of_model(model)
    table, errors, *_ = check_cells(cells, inputs, mask_page=mask_page, sarcomere=sarcomere,
                                    pixel_size=pixel_size, model_pixel_size=model_size)
    failed = errors.dropna()
    if len(failed):
        raise ValueError(f"{len(failed)} cell(s) cannot be explained, e.g. {failed.iloc[0]}")
    return table.set_axis(cells.index)


def _say_seen(model, cells) -> None:
    """Print how many of ``cells`` the model was fitted or calibrated on (if any)."""
    from .._fingerprint import seen_note

    note = seen_note(model, cells)
    if note:
        print(f"note: {note}")


def _check_counts(args: argparse.Namespace) -> None:
    if args.max_cells < 1:
        raise ValueError(f"--max-cells must be at least 1, got {args.max_cells}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")


def run_explain(args: argparse.Namespace) -> int:
    """Write one heatmap PNG per cell and predictions.csv; returns the exit code."""
    import pandas as pd

    from ..explain import grad_cam, plot_cell_heatmap, read_display_image
    from ..images import read_planes
    from ..outputs import check_output, refuse_inputs, write_csv_atomically
    from ..pipeline import SarcNetPipeline
    from ..score_table import score_table
    from ..tables import load_cells

    _check_counts(args)
    check_output(args.out, inputs=[*args.data, args.model], folder=True)
    model, mask_page = _load(args.model, args.test_time_augment)
    pipeline = SarcNetPipeline.of(model)
    net = pipeline.fitted_regressor
    cells = load_cells(args.data).iloc[: args.max_cells]
    out = Path(args.out)
    paths = cells[net.image_column].astype(str).tolist()
    names = [f"{i:03d}_{Path(path).stem}_gradcam.png" for i, path in enumerate(paths)]
    refuse_inputs([out / name for name in names], args.data + paths + [args.model])
    cells = _with_features(model, cells, mask_page, pixel_size=args.pixel_size)
    _say_seen(model, cells)
    planes = read_planes(cells[net.image_column], net.structure_page)  # each file read once
    in_memory = cells.assign(**{net.image_column: planes})
    scores = score_table(pipeline, in_memory)  # the score and error predict gives each cell
    predicted = scores[SCORE_PRED_COLUMN].to_numpy()
    heatmaps = grad_cam(model, in_memory, layer=args.layer, direction=args.direction,
                        batch_size=args.batch_size)
    expert = cells[TARGET_COLUMN].tolist() if TARGET_COLUMN in cells.columns else None
    for i, (path, name, heatmap) in enumerate(zip(paths, names, heatmaps, strict=True)):
        plot_cell_heatmap(
            read_display_image(planes[i], net.structure_page), heatmap, out / name,
            expert=None if expert is None else float(expert[i]),
            predicted=float(predicted[i]), label=Path(path).name,
        )
    table = pd.DataFrame({net.image_column: paths, SCORE_PRED_COLUMN: predicted})
    for column in (TARGET_COLUMN, DAY_COLUMN):
        if column in cells.columns:
            table[column] = cells[column].to_numpy()
    table["heatmap"] = names
    for column in (ERROR_COLUMN, OUT_OF_RANGE_COLUMN):
        table[column] = scores[column].to_numpy()
    csv = write_csv_atomically(table, out / "predictions.csv",
                               inputs=args.data + paths + [args.model])
    print(f"wrote {len(names)} Grad-CAM heatmaps to {out.resolve()}")
    print(f"wrote the predictions to {csv.resolve()}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    """Write the report's figures, CSV and index.html; returns the exit code."""
    from ..explain._report import REPORT_FILES, write_report
    from ..outputs import check_output, refuse_inputs
    from ..tables import load_cells

    _check_counts(args)
    check_output(args.out, inputs=[*args.data, args.model], folder=True)
    model, mask_page = _load(args.model, args.test_time_augment)
    cells = load_cells(args.data)
    out = Path(args.out)
    refuse_inputs([out / name for name in REPORT_FILES.values()], args.data + [args.model])
    cells = _with_features(model, cells, mask_page, sarcomere=True, pixel_size=args.pixel_size)
    _say_seen(model, cells)
    paths = write_report(model, cells, out, max_cells=args.max_cells, layer=args.layer,
                         direction=args.direction, batch_size=args.batch_size,
                         model_path=args.model,
                         data_source=" ".join(str(Path(item).resolve()) for item in args.data),
                         command=command_line(args))
    for key, path in paths.items():
        if key != "html":
            print(f"wrote {path.resolve()}")
    print(f"report: {paths['html'].resolve()}")
    return 0
