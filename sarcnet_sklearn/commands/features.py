"""The ``sarcnet-sklearn features`` subcommand: Protocol 1 of image files into a CSV."""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from typing import TYPE_CHECKING

from .._columns import IMAGE_COLUMN, PATH_RULE, PIXEL_SIZE_UM, PROTOCOL_1, STRUCTURE_PAGE
from ._options import check_csv_output, n_jobs, pixel_size_um
from ._scale import add_scale_arguments, cluster_client

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = [IMAGE_COLUMN] + PROTOCOL_1 + ["peak_angle", "error"]


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    """Register ``features`` on the ``sarcnet-sklearn`` subparsers.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> _ = add_subcommand(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["features", "cells/", "-o", "f.csv"]).n_jobs
    1
    """
    parser = subparsers.add_parser(
        "features",
        help="measure Protocol 1 features (morphology, GLCM alignment) of cell images",
        description=(
            "Measure the five Protocol 1 features of each cell image (cell area in um^2, "
            "aspect ratio, max coefficient of variation, peak height, peak distance in um) "
            "and write one CSV row per cell. The alignment features are those of the published "
            "AICS code (analyze_orientation in AllenCellModeling/fish_morphology_code), which "
            "computed the AICS tables. A cell that cannot be measured gets NaN values and the "
            f"reason in the 'error' column. Paths: {PATH_RULE}, so 'predict MODEL OUTPUT.csv' "
            "finds the images from any working directory."
        ),
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="IMAGE_OR_FOLDER",
        help="image files, or folders whose .tif/.tiff/.png files are all measured",
    )
    parser.add_argument("-o", "--output", required=True, help="CSV file to write")
    parser.add_argument("--recursive", action="store_true",
                        help="also measure the images in sub-folders of a folder")
    parser.add_argument(
        "--structure-page", type=int, default=STRUCTURE_PAGE,
        help="page (or channel) with the structure (default: %(default)s)",
    )
    parser.add_argument(
        "--mask-page", type=int, default=None,
        help="page (or channel) with the cell mask (default: 9)",
    )
    parser.add_argument(
        "--pixel-size", type=pixel_size_um, default=PIXEL_SIZE_UM,
        help="micrometres per pixel (default: %(default)s)",
    )
    parser.add_argument(
        "--n-jobs", type=n_jobs, default=1, help="cells measured in parallel (default: 1; -1: all)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_scale_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Measure the images named by ``args`` and write the CSV; returns the exit code."""
    import pandas as pd

    from ..outputs import check_output
    from ..scale import run_in_chunks
    from ..tables import collect_images, paths_relative_to

    images = collect_images(args.inputs, recursive=args.recursive)
    output = check_output(args.output, inputs=images)
    check_csv_output(output, "-o")
    # Absolute while measuring (a resumed run may start elsewhere), relative to the CSV at the end.
    cells = pd.DataFrame({IMAGE_COLUMN: [os.path.abspath(path) for path in images]})
    options = {
        "structure_page": args.structure_page,
        "mask_page": args.mask_page,
        "pixel_size": args.pixel_size,
    }
    with cluster_client(args) as client:
        work = partial(measure_chunk, **options, n_jobs=1 if client else args.n_jobs)
        result = run_in_chunks(
            cells,
            work,
            output,
            key_column=IMAGE_COLUMN,
            settings={"command": "features", **options},
            inputs=images,
            chunk_size=args.chunk_size,
            client=client,
            progress=not args.quiet,
            finish=lambda done: done.assign(
                **{IMAGE_COLUMN: paths_relative_to(done[IMAGE_COLUMN], output)}),
        )
    table = result.table
    n_failed = int((table["error"] != "").sum())
    print(f"wrote Protocol 1 features of {len(cells)} cells to {output.resolve()}")
    if n_failed:
        print(
            f"warning: {n_failed} of {len(cells)} cells could not be measured "
            "(see the 'error' column)",
            file=sys.stderr,
        )
    return 0


def measure_chunk(
    chunk: pd.DataFrame,
    *,
    structure_page: int = STRUCTURE_PAGE,
    mask_page: int | None = None,
    pixel_size: float = PIXEL_SIZE_UM,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """The rows of the ``features`` output for a chunk of cells (same index as ``chunk``).

    Examples
    --------
    >>> import pandas as pd
    >>> measure_chunk(pd.DataFrame({"image_path": ["gone.tiff"]}))["error"].tolist()
    ['image file not found: gone.tiff']
    """
    import pandas as pd

    from ..features._extractor import measure_many

    paths = chunk[IMAGE_COLUMN].tolist()
    results = pd.DataFrame(
        list(
            measure_many(
                paths,
                structure_page=structure_page,
                mask_page=mask_page,
                pixel_size=pixel_size,
                n_jobs=n_jobs,
            )
        ),
        index=chunk.index,
    )
    results.insert(0, IMAGE_COLUMN, paths)
    return results[COLUMNS]
