"""Export a programmed network's weight maps: the data files of :mod:`analog_snu.hardware.weight_maps`
plus one PNG per layer (heatmaps of G+ and G- now, per pair; :mod:`analog_snu.reports.map_plots`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from analog_snu.errors import ConfigError
from analog_snu.files import replace_files
from analog_snu.hardware.weight_maps import npz_path_for, weight_map_data
from analog_snu.reports.map_plots import conductance_maps_png

__all__ = ["export_weight_maps", "weight_map_files"]


def export_weight_maps(model: nn.Module, path: str | os.PathLike, csv: bool = False, png: bool = True, *,
                       time: float | None = None,
                       wear: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> dict[str, Any]:
    """Write the weight maps of a programmed ``model`` (the files: :mod:`analog_snu.hardware.weight_maps`).

    ``time`` (seconds after programming, finite, >= 0): first drift every tile that is not at
    that time to it (:func:`analog_snu.hardware.drift`, seed derived from the programming seed);
    ``None`` exports the tiles as they are. ``wear``: per-device wear counters of a
    hardware-in-the-loop run, tile name -> {``programming_events`` | ``set_pulses`` |
    ``refreshes``: array}, stored as ``<tile>/<counter>`` next to the conductances.

    Returns ``{"npz": Path, "json": Path, "csv": [Path...], "png": [Path...]}``.
    """
    if not npz_path_for(path).parent.is_dir():
        raise ConfigError(f"output folder {str(npz_path_for(path).parent)!r} does not exist")
    files, written = weight_map_files(model, path, csv, png, time=time, wear=wear)
    replace_files(files)
    return written


def weight_map_files(model: nn.Module, path: str | os.PathLike, csv: bool = False, png: bool = True, *,
                     time: float | None = None, wear: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                     ) -> tuple[dict[Path, bytes], dict[str, Any]]:
    """What :func:`export_weight_maps` writes, not written yet: ``(path -> content, which is which)``."""
    files, written, figures = weight_map_data(model, path, csv, layer_maps=png, time=time, wear=wear)
    for target, maps in figures.items():
        files[target] = conductance_maps_png(maps)
        written["png"].append(target)
    return files, written
