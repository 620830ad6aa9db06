"""Figures and report files: everything the package draws, from the data of the layers below.

Nothing under :mod:`analog_snu.hardware` draws: it returns data (weight maps, layer maps, drift
studies), and this package turns them into PNGs and the files that carry them. Imported by the
experiments' report code and the CLI only.
"""

from analog_snu.reports.drift_plots import (
    drift_study_files,
    metric_axis_label,
    plot_drift_study,
    save_drift_study,
    time_ticks,
)
from analog_snu.reports.figures import MAX_DPI, MAX_FIGURE_PIXELS, PLOT_DPI, figure_png, new_figure
from analog_snu.reports.map_plots import layer_figures
from analog_snu.reports.weight_maps import export_weight_maps, weight_map_files

__all__ = [
    "MAX_DPI",
    "MAX_FIGURE_PIXELS",
    "PLOT_DPI",
    "drift_study_files",
    "export_weight_maps",
    "figure_png",
    "layer_figures",
    "metric_axis_label",
    "new_figure",
    "plot_drift_study",
    "save_drift_study",
    "time_ticks",
    "weight_map_files",
]
