"""The ``sarcnet-sklearn train`` and ``sarcnet-sklearn predict`` subcommands."""

from __future__ import annotations

import argparse
import sys
import warnings
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

from .._columns import ERROR_COLUMN, IMAGE_COLUMN, PROTOCOL_2, SCORE_RANGE, TARGET_COLUMN
from .._model_formats import FORMATS
from .._recipe import (
    BATCH_SIZE,
    FINETUNE_LR_FACTOR,
    IMAGE_SIZE_PX,
    LEARNING_RATE,
    MAX_EPOCHS,
)
from ._exit import EXIT_STATUS_HELP
from ._finetune import add_finetune_arguments, finetune_options, print_agreement
from ._options import (
    DATA_HELP,
    add_overwrite_option,
    add_pixel_size_option,
    add_test_time_augment_option,
    check_csv_output,
    model_format,
    non_negative,
    positive,
)
from ._scale import add_scale_arguments, cluster_client
from ._summary import add_json_option


def add_subcommand(subparsers) -> None:
    """Register ``train`` and ``predict`` on the ``sarcnet-sklearn`` subparsers.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_subcommand(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["predict", "m.joblib", "cells.csv", "--out", "p.csv"]).batch_size
    200
    """
    train = subparsers.add_parser(
        "train",
        help="train SarcNet on scored cells and save the model file",
        description=(
            "Train a SarcNet pipeline on scored cells and save it with its metadata (versions, "
            "protocol, features, training data, validation metrics). Cells whose image or "
            "features cannot be used are left out with a warning."
        ),
    )
    train.add_argument("data", metavar="DATA", help=DATA_HELP)
    train.add_argument("--out", required=True, metavar="MODEL",
                       help="model file (.joblib), or .zip / folder for the safe format")
    add_overwrite_option(train)
    train.add_argument("--format", choices=FORMATS,
                       help="model file format (default: safe for a .zip, else joblib)")
    train.add_argument(
        "--protocol", type=int, choices=[1, 2],
        help="feature protocol (default: 2 when DATA has the 11 Protocol 2 columns, else 1, "
             "measured from the images where absent)",
    )
    train.add_argument("--target", default=TARGET_COLUMN,
                       help="column with the scores (default: %(default)s)")
    train.add_argument("--image-size", type=positive, default=IMAGE_SIZE_PX,
                       help="model input size in pixels (default: %(default)s)")
    train.add_argument("--epochs", type=positive, default=MAX_EPOCHS,
                       help="default: %(default)s")
    train.add_argument("--lr", type=float,
                       help=f"learning rate (default: {LEARNING_RATE:g}; with --init-from "
                            f"{LEARNING_RATE * FINETUNE_LR_FACTOR:g}: learnt weights want "
                            "small steps)")
    train.add_argument("--batch-size", type=positive, default=BATCH_SIZE,
                       help="default: %(default)s")
    train.add_argument("--score-range", type=float, nargs=2, default=SCORE_RANGE,
                       metavar=("LOW", "HIGH"),
                       help="scale of the scores; scores outside it are an error and "
                            "predictions are clipped to it (default: %(default)s)")
    train.add_argument("--recursive", action="store_true",
                       help="read the images in sub-folders of a DATA folder too")
    train.add_argument(
        "--validation-fraction", type=float,
        help="fraction of cells held out for validation, 0 for none; whole fields when a "
             "'field' column names 5 or more (default: the paper's split for an AICS root, "
             "else 0.2)",
    )
    train.add_argument("--no-test-time-augment", dest="test_time_augment",
                       action="store_false",
                       help="score each cell with one forward pass instead of the mean over its "
                            "image's 8 flips and quarter turns (8x faster, orientation-dependent)")
    train.add_argument("--consistency", type=non_negative, default=0.0, metavar="WEIGHT",
                       help="weight of a training-loss term that pulls the scores of two random "
                            "flips or quarter turns of a cell together, so that one forward pass "
                            "depends less on orientation (default: 0, off)")
    train.add_argument("--canonical-orientation", action="store_true",
                       help="train and score every cell in its canonical pose among its 8 flips "
                            "and quarter turns (chosen from the image): one forward pass per "
                            "cell, exactly the same score however the cell lies")
    train.add_argument("--random-state", type=int, default=0, help="default: %(default)s")
    train.add_argument("--device", choices=["cpu", "cuda"], help="default: the GPU if present")
    train.add_argument("--mask-page", type=int,
                       help="page with the cell mask, when features are measured (default: 9)")
    add_pixel_size_option(train)
    add_finetune_arguments(train)
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.set_defaults(func=run_train)

    predict = subparsers.add_parser(
        "predict",
        epilog=EXIT_STATUS_HELP,
        help="score cells with a saved model into a CSV",
        description=(
            "Score every cell with a saved model. The CSV keeps the input's identifying "
            "columns and adds score_pred (clipped to the model's score range, 1-5), score_raw, "
            "error and out_of_range: a cell that cannot be scored gets the reason in error, "
            "and every other cell is still scored. A cell with a feature far outside the "
            "training data is not scored (score_pred empty, out_of_range names the features; "
            "score_raw keeps the extrapolated output)."
        ),
    )
    predict.add_argument("model", metavar="MODEL", help="model file or safe-format folder/.zip")
    predict.add_argument("data", metavar="DATA", help=DATA_HELP)
    predict.add_argument("--out", required=True, metavar="PREDICTIONS.csv",
                         help="CSV to write (never one of the inputs)")
    predict.add_argument("--device", choices=["cpu", "cuda"],
                         help="default: the model's device if available, else the CPU")
    predict.add_argument("--batch-size", type=positive, default=200,
                         help="cells per forward pass of the network (default: %(default)s)")
    predict.add_argument(
        "--interval", type=float, metavar="CONFIDENCE",
        help="add score_low and score_high, a prediction interval holding the true score "
             "with this probability (e.g. 0.9; the model must be calibrated, as train does)",
    )
    add_test_time_augment_option(predict)
    add_pixel_size_option(predict)
    predict.add_argument("--recursive", action="store_true",
                         help="read the images in sub-folders of a DATA folder too")
    predict.add_argument(
        "--masks", metavar="FOLDER",
        help="DATA holds plain single-cell images (any TIFF/PNG, not the AICS 10-page layout) "
             "and FOLDER their masks, each named after its image (cell7.tif: cell7.tif, "
             "cell7_mask.tif, cell7_cp_masks.png, cell7_seg.npy...); each cell is cut by the "
             "AICS recipe and scored as a cell of a field. A CSV may instead name each mask "
             "in a 'mask_path' column")
    predict.add_argument("--quiet", action="store_true", help="no progress bars")
    add_json_option(predict)
    add_scale_arguments(predict)
    predict.set_defaults(func=run_predict)


def run_train(args: argparse.Namespace) -> int:
    """Train and save as ``args`` say; returns the exit code (130 when interrupted)."""
    from ..deploy import ModelInputs, save_model, train_model
    from ..deploy._finetune import is_torchvision_weights
    from ..deploy._model_file import check_model_output
    from ..metrics import metrics_with_intervals
    from ..outputs import check_output
    from ..soundness import UnsoundModelWarning
    from ..tables import is_aics_root, load_cells

    data, out = Path(args.data), Path(args.out)
    low, high = args.score_range
    if not low < high:
        raise ValueError(f"--score-range: LOW must be below HIGH, got {low:g} {high:g}")
    file_format = model_format(out, args.format)
    check_output(out, inputs=[data], folder=file_format == "safe" and out.suffix != ".zip")
    if args.validation_fraction is None:
        validation = "paper" if data.is_dir() and is_aics_root(data) else 0.2
    else:
        validation = args.validation_fraction
    cells = load_cells(data, recursive=args.recursive)
    images = cells[IMAGE_COLUMN].dropna().tolist() if IMAGE_COLUMN in cells else []
    check_output(out, inputs=images, folder=file_format == "safe" and out.suffix != ".zip")
    check_model_output(out, overwrite=args.overwrite)  # an input is named as one first
    protocol = args.protocol or (2 if set(PROTOCOL_2) <= set(cells.columns) else 1)
    if args.init_from and not is_torchvision_weights(args.init_from):
        protocol = args.protocol or 2  # the default: the model's
    kept = "the previous model file is unchanged" if out.exists() else "no model was saved"
    try:
        with warnings.catch_warnings():  # printed below, beside the metrics
            warnings.simplefilter("ignore", UnsoundModelWarning)
            pipeline, metadata = train_model(
                cells,
                protocol=protocol,
                target=args.target,
                validation=validation,
                image_size=args.image_size,
                max_epochs=args.epochs,
                lr=args.lr,
                batch_size=args.batch_size,
                random_state=args.random_state,
                device=args.device,
                mask_page=args.mask_page,
                progress=not args.quiet,
                source=data.resolve(),
                score_range=(low, high),
                test_time_augment=args.test_time_augment,
                consistency=args.consistency,
                canonical_orientation=args.canonical_orientation,
                pixel_size=args.pixel_size,
                **finetune_options(args),
            )
    except KeyboardInterrupt as exc:
        print(f"sarcnet-sklearn train: {exc or 'interrupted'} (Ctrl-C); {kept}: {out}",
              file=sys.stderr)
        return 130
    save_model(pipeline, out, metadata=metadata, format=file_format)
    protocol = ModelInputs.of(pipeline).protocol
    training = metadata["training"]
    measured = ", features measured from the images" if training["features_measured"] else ""
    print(
        f"trained SarcNet (Protocol {protocol}{measured}) on {training['n_cells']} cells, "
        f"{training['n_validation']} for validation ({training['split']}), "
        f"{training['n_excluded']} left out"
    )
    if metadata["metrics"]:
        resampling = metadata.get("metrics_ci95_resampling") or {}
        how = "; ".join(f"{part}: {note}" for part, note in resampling.items())
        print("metrics, each with its bootstrap 95 % interval" + (f" ({how})" if how else "")
              + ":")
        print(metrics_with_intervals(metadata["metrics"], metadata["metrics_ci95"],
                                     index="cells").to_markdown())
    calibration = metadata.get("calibration")
    if calibration and calibration.get("half_width_90") is not None:
        print(f"90 % prediction intervals: score +- {calibration['half_width_90']:.2f} "
              f"(calibrated on the {calibration['n_cells']} validation cells)")
    print_agreement(metadata)
    for problem in metadata["soundness"]:
        print(f"warning: the model is not sound: {problem}", file=sys.stderr)
    print(f"model saved to {out.resolve()} ({file_format} format)")
    print(pixel_size_sentence(training))
    return 0


def pixel_size_sentence(training: dict) -> str:
    """What train says of the model's pixel size and of its cells' own, when they differ.

    >>> print(pixel_size_sentence({"pixel_size_um": 0.12, "cells_pixel_size_um": [0.48, 0.48],
    ...                            "cells_pixel_size_assumed": 0}))
    its features are measured at 0.12 um/px, the pixel size the model file records; its \
training cells were imaged at 0.48 um/px and resampled to it for the texture features, as \
every cell it scores will be
    """
    from .._resample import same_pixel_size

    model = training["pixel_size_um"]
    sentence = (f"its features are measured at {model:g} um/px, the pixel size the model file "
                "records")
    cells = training.get("cells_pixel_size_um")
    if cells and not all(same_pixel_size(size, model) for size in cells):
        imaged = f"{cells[0]:g}" if cells[0] == cells[1] else f"{cells[0]:g}-{cells[1]:g}"
        sentence += (f"; its training cells were imaged at {imaged} um/px and resampled to it "
                     "for the texture features, as every cell it scores will be")
    if training.get("cells_pixel_size_assumed"):
        sentence += (f" ({training['cells_pixel_size_assumed']} cell(s) had no pixel size: "
                     f"assumed {model:g})")
    return sentence


def run_predict(args: argparse.Namespace) -> int:
    """Score the cells named by ``args`` and write the CSV; returns the exit code."""
    from .._pixel_size import PIXEL_SIZE_ASSUMED_COLUMN, assumed_rows, model_pixel_size
    from ..datasets._kind import data_kind
    from ..deploy import load_model, predict_cells
    from ..deploy._card import warn_if_synthetic_model
    from ..outputs import check_output
    from ..scale import run_in_chunks
    from ..tables import load_cells
    from ._exit import NONE_SCORED, exit_status
    from ._run_record import run_record_path, write_run_record
    from ._summary import cell_summary, human_stream, print_summary

    started = datetime.now(timezone.utc)
    check_output(args.out, inputs=[args.data, args.model])
    check_output(run_record_path(args.out), inputs=[args.data, args.model])
    model, metadata = load_model(args.model, device=args.device, return_metadata=True)
    cells = load_cells(args.data, recursive=args.recursive)
    from .._fingerprint import seen_note

    note = seen_note(model, cells)
    if note:
        print(f"note: {note}", file=human_stream(args))
    mask_page = (metadata.get("training") or {}).get("mask_page")
    model_file = Path(args.model).resolve()
    if args.interval is not None:
        from ..intervals import interval_half_width

        interval_half_width(model, args.interval)  # not calibrated: say so before any work
    images = cells[IMAGE_COLUMN].dropna().tolist() if IMAGE_COLUMN in cells else []
    check_output(args.out, inputs=images)
    check_csv_output(args.out)  # after: an input named as the output is named as such
    if data_kind(cells, args.data) != "synthetic":
        warn_if_synthetic_model(getattr(model, "model_card_", None), [args.data], "inputs")
    score = partial(predict_cells, mask_page=mask_page)
    if args.masks is not None:  # plain single-cell images, each with its mask file
        from ..fields._plain_cells import MASK_PATH_COLUMN, pair_masks, predict_masked_cells

        cells[MASK_PATH_COLUMN] = pair_masks(cells[IMAGE_COLUMN], args.masks)
        score = predict_masked_cells
    elif "mask_path" in cells.columns:
        from ..fields._plain_cells import MASK_PATH_COLUMN, predict_masked_cells

        if Path(args.data).suffix.lower() == ".csv":  # relative to the CSV, as images are
            folder = Path(args.data).resolve().parent
            cells[MASK_PATH_COLUMN] = [
                path if not isinstance(path, str) or not path.strip() or Path(path).is_absolute()
                else str(folder / path) for path in cells[MASK_PATH_COLUMN]]
        score = predict_masked_cells
    with cluster_client(args) as client:
        result = run_in_chunks(
            cells,
            partial(score, batch_size=args.batch_size,
                    interval=args.interval, test_time_augment=args.test_time_augment,
                    pixel_size=args.pixel_size),
            args.out,
            key_column=IMAGE_COLUMN,
            settings={"command": "predict", "model": str(model_file),
                      "model_modified_ns": model_file.stat().st_mtime_ns, "mask_page": mask_page,
                      "interval": args.interval, "test_time_augment": args.test_time_augment,
                      "masks": None if args.masks is None else str(Path(args.masks).resolve()),
                      "pixel_size": args.pixel_size},
            inputs=[args.data, args.model, *images],
            chunk_size=args.chunk_size,
            model=model_file if client else model,
            load=partial(load_model, device=args.device),
            client=client,
            progress=not args.quiet,
        )
    summary = cell_summary(result.table[ERROR_COLUMN])
    status = exit_status(summary["n_cells"], summary["n_scored"])
    human = human_stream(args)
    print(f"wrote {len(result.table)} predictions to {result.output.resolve()} (model trained "
          f"at {model_pixel_size(metadata):g} um/px); {summary['n_scored']} of "
          f"{summary['n_cells']} cells scored", file=human)
    assumed = assumed_rows(result.table)
    if assumed.any():
        print(f"warning: {int(assumed.sum())} of {len(result.table)} cells had no pixel size "
              f"and were measured at the model's (see '{PIXEL_SIZE_ASSUMED_COLUMN}')",
              file=sys.stderr)
    record = write_run_record(result.output, args, started=started, model_file=args.model,
                              model=model, summary=summary, table=result.table,
                              exit_status=status, inputs=[args.data, args.model, *images])
    print(f"run record: {record.resolve()}", file=human)
    print_summary(summary, args, status=status)
    if status == NONE_SCORED:
        print(f"error: not one cell could be scored (exit status {status})", file=sys.stderr)
    return status
