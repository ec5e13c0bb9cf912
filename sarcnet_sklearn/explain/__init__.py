"""Explanations and the paper's figures: Grad-CAM heatmaps, example-cell grids, day histograms.

- :func:`grad_cam`: heatmaps of the image branch of a fitted SarcNet model (or
  pipeline), one per cell, at the resolution of the cell's image, from a layer
  chosen by the model's input size (:func:`grad_cam_layer`).
- :func:`plot_cell_heatmap`, :func:`plot_prediction_grid`,
  :func:`plot_day_histograms`: the paper's Fig. 2B, 2A and 3 as PNG files;
  :func:`select_across_scores` picks cells spanning the score range;
  :func:`plot_intervals` draws each cell's conformal prediction interval.
- :func:`write_report`: all three figures and the metrics on one HTML page.

The command line has them as ``sarcnet-sklearn explain`` and ``sarcnet-sklearn report``.
"""

from ._cam import (
    CAM_LAYERS,
    MIN_CAM_SIDE,
    default_layer_name,
    default_target_layer,
    grad_cam,
    grad_cam_layer,
)
from ._figures import (
    overlay_heatmap,
    plot_cell_heatmap,
    plot_day_histograms,
    plot_intervals,
    plot_prediction_grid,
    read_display_image,
    select_across_scores,
)
from ._report import write_report

__all__ = [
    "CAM_LAYERS",
    "MIN_CAM_SIDE",
    "default_layer_name",
    "default_target_layer",
    "grad_cam",
    "grad_cam_layer",
    "overlay_heatmap",
    "plot_cell_heatmap",
    "plot_day_histograms",
    "plot_intervals",
    "plot_prediction_grid",
    "read_display_image",
    "select_across_scores",
    "write_report",
]
