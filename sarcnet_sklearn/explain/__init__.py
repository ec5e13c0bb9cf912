"""Explanations and the paper's figures: Grad-CAM heatmaps, example-cell grids, day histograms.

- :func:`grad_cam`: heatmaps of the image branch of a fitted SarcNet model (or
  pipeline), one per cell, at the resolution of the cell's image, from a layer
  chosen by the model's input size (:func:`grad_cam_layer`).
- :func:`plot_cell_heatmap`, :func:`plot_prediction_grid`,
  :func:`plot_day_histograms`: the paper's Fig. 2B, 2A and 3 as PNG files;
  :func:`select_across_scores` picks cells spanning the score range;
  :func:`plot_intervals` draws each cell's conformal prediction interval.
- :func:`plot_predicted_vs_expert`, :func:`plot_residuals`: the agreement with
  the experts (identity line and Spearman's rho; residuals per expert score).
- :func:`write_report`: the figures, the metrics and where they come from
  (:func:`provenance`) on one self-contained HTML page.

The command line has them as ``sarcnet-sklearn explain`` and ``sarcnet-sklearn report``.
"""

from ._cam import (
    CAM_LAYERS,
    MIN_CAM_SIDE,
    default_layer_name,
    default_target_layer,
    grad_cam,
    grad_cam_layer,
    map_sides,
)
from ._figures import (
    FLAT_RANGE,
    cell_mask,
    missing_signal,
    overlay_heatmap,
    plot_cell_heatmap,
    plot_day_histograms,
    plot_intervals,
    plot_predicted_vs_expert,
    plot_prediction_grid,
    plot_residuals,
    read_display_image,
    select_across_scores,
)
from ._report import provenance, sha256_of, write_report

__all__ = [
    "CAM_LAYERS",
    "FLAT_RANGE",
    "MIN_CAM_SIDE",
    "cell_mask",
    "default_layer_name",
    "default_target_layer",
    "grad_cam",
    "grad_cam_layer",
    "map_sides",
    "missing_signal",
    "overlay_heatmap",
    "plot_cell_heatmap",
    "plot_day_histograms",
    "plot_intervals",
    "plot_predicted_vs_expert",
    "plot_prediction_grid",
    "plot_residuals",
    "provenance",
    "read_display_image",
    "select_across_scores",
    "sha256_of",
    "write_report",
]
