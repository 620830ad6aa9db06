"""``fit-device``: measurements in, a device file out, with a goodness-of-fit report (one call for the CLI).

:func:`run_fit_device` reads the measurement CSV files, fits the device
(:func:`analog_snu.fitting.fit_device`), writes the device TOML (its leading comment lines say
what was fitted, with intervals, and what was inherited; it loads with
``PCMDevice.from_file`` and ``--device FILE``) and, with ``report``, a folder with the figures
and ``index.html`` (:mod:`analog_snu.reports.fit_report`) plus ``fit.json``. The simulated side
of the report reads :data:`COMPARISON_REPLICAS` replicas of the measured devices, simulated from
the fitted device at the measured targets and times (:mod:`analog_snu.pcm.measurements`).

Outputs follow :mod:`~analog_snu.experiments.outputs`: the TOML is written when absent or when
an earlier ``fit-device`` wrote it (``--force`` for any other file), the report folder when new,
empty or written by analog_snu; nothing is written inside a run or sweep directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tomli_w

from analog_snu.errors import ConfigError
from analog_snu.experiments.outputs import output_file, standalone_folder
from analog_snu.files import atomic_write_text, to_json
from analog_snu.fitting import DEFAULT_BASE, DEFAULT_BOOTSTRAP, DeviceFit, fit_device, read_measurements
from analog_snu.pcm import PCMDevice
from analog_snu.pcm.measurements import Measurements, read_targets_over_time
from analog_snu.reports.figures import PLOT_DPI
from analog_snu.reports.fit_report import FitComparison, fit_report_files

__all__ = ["FitDeviceResult", "run_fit_device", "TOML_HEADER", "simulate_comparison", "comparison_reads",
           "COMPARISON_REPLICAS"]

#: first line of every device file fit-device writes (how a later run knows the file is its own)
TOML_HEADER = "# PCM device fitted by analog-snu fit-device"

#: replicas of the measured devices simulated for the report's comparison
COMPARISON_REPLICAS = 200
#: fewest replicas, and the most device reads simulated (devices x distinct read times; replicas are cut
#: to stay below it, for large data)
MIN_REPLICAS, MAX_SIMULATED_READS = 20, 2_000_000


@dataclass
class FitDeviceResult:
    """What :func:`run_fit_device` did."""

    fit: DeviceFit
    device_file: Path
    report: dict[str, Path] = field(default_factory=dict)
    """Report file name -> path (``html`` for the page); empty without a report."""


def device_toml(fit: DeviceFit) -> str:
    """The device file's text: the fit's comment header, then every field of the device."""
    header = fit.toml_header()
    if not header.startswith(TOML_HEADER):
        raise ConfigError("internal: the fit's TOML header changed; update TOML_HEADER")
    return header + "\n" + tomli_w.dumps(fit.device.to_dict())


def simulate_comparison(fit: DeviceFit, seed: int = 0, replicas: int = COMPARISON_REPLICAS) -> FitComparison:
    """Reads of the fitted device simulated like its measurements (:func:`comparison_reads`)."""
    return comparison_reads(fit.device, fit.measurements, seed, replicas)


def comparison_reads(device: PCMDevice, measurements: Measurements, seed: int = 0,
                     replicas: int = COMPARISON_REPLICAS) -> FitComparison:
    """Reads of ``device`` simulated like ``measurements``: each replica programs one
    device per measured device (same targets) and reads it at that device's measured times.

    Many replicas make the simulated side of the report an expectation with a band (where the
    measured statistic of a bin falls if the fitted device is right), not one draw as noisy as the
    measurement. Fewer replicas for large data (at least :data:`MIN_REPLICAS`).

    Shape: programming (R, N), drift (R, D, T)."""
    prog, drift = measurements.programming, measurements.drift
    programming = drifted = None
    if prog is not None:
        count = _replicas(replicas, prog.devices * np.unique(prog.t).size)
        reads = read_targets_over_time(device, _replicated(prog.g_target, count), _replicated(prog.t, count)[:, None],
                                       seed=seed)
        programming = reads.reshape(count, prog.devices)
    if drift is not None:
        count = _replicas(replicas, drift.devices * np.unique(drift.t[np.isfinite(drift.t)]).size)
        reads = read_targets_over_time(device, _replicated(drift.g_target, count), _replicated(drift.t, count),
                                       seed=seed + 1)
        drifted = reads.reshape(count, *drift.g.shape)
    return FitComparison(programming=programming, drift=drifted)


def _replicated(values: np.ndarray, count: int) -> np.ndarray:
    """``count`` copies of ``values`` one after the other. Shape: (D, ...) -> (count D, ...)."""
    return np.repeat(values[None], count, 0).reshape(-1, *values.shape[1:])


def _replicas(wanted: int, reads_per_replica: int) -> int:
    if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1:
        raise ConfigError(f"replicas must be an integer >= 1, got {wanted!r}")
    return min(wanted, max(MIN_REPLICAS, MAX_SIMULATED_READS // max(reads_per_replica, 1)))


def run_fit_device(measurements: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                   base: str | PCMDevice = DEFAULT_BASE, report: str | os.PathLike[str] | None = None,
                   bootstrap: int = DEFAULT_BOOTSTRAP, confidence: float = 0.99, seed: int = 0,
                   g_max: float | None = None, name: str | None = None, force: bool = False,
                   dpi: int = PLOT_DPI) -> FitDeviceResult:
    """Fit the device to the CSV files ``measurements`` and write it to ``out`` (``.toml``); with
    ``report``, the goodness-of-fit report into that folder. Outputs are checked before the fit runs."""
    out = Path(out)
    if out.suffix.lower() != ".toml":
        raise ConfigError(f"--out must be a .toml device file, got {str(out)!r}")
    output_file(out, TOML_HEADER, force=force)
    folder = standalone_folder(report, force=force) if report is not None else None
    data = read_measurements(list(measurements))
    fit = fit_device(data, base, bootstrap=bootstrap, confidence=confidence, seed=seed, g_max=g_max, name=name)
    text = device_toml(fit)
    atomic_write_text(out, text)
    PCMDevice.from_file(out)  # what was written loads as a device file
    result = FitDeviceResult(fit, out)
    if folder is not None:
        files, paths = fit_report_files(fit, simulate_comparison(fit, seed), folder.path, text, dpi)
        paths["json"] = folder.path / "fit.json"
        files[paths["json"]] = (to_json(fit.to_dict()) + "\n").encode()
        folder.write(files)
        result.report = paths
    return result
