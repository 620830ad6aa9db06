"""``fit-device``: measurements in, a device file out, with a goodness-of-fit report (one call for the CLI).

:func:`run_fit_device` reads the measurement CSV files, fits the device
(:func:`analog_snu.fitting.fit_device`), writes the device TOML (its leading comment lines say
what was fitted, with intervals, and what was inherited; it loads with
``PCMDevice.from_file`` and ``--device FILE``) and, with ``report``, a folder with the figures
and ``index.html`` (:mod:`analog_snu.reports.fit_report`) plus ``fit.json``. The simulated side
of the report reads the fitted device at the measured targets and times
(:mod:`analog_snu.pcm.measurements`).

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
from analog_snu.pcm.measurements import program_targets, read_targets_over_time
from analog_snu.reports.figures import PLOT_DPI
from analog_snu.reports.fit_report import FitComparison, fit_report_files

__all__ = ["FitDeviceResult", "run_fit_device", "TOML_HEADER", "simulate_comparison"]

#: first line of every device file fit-device writes (how a later run knows the file is its own)
TOML_HEADER = "# PCM device fitted by analog-snu fit-device"


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


def simulate_comparison(fit: DeviceFit, seed: int = 0) -> FitComparison:
    """Reads of the fitted device at the measured targets and times."""
    prog, drift = fit.measurements.programming, fit.measurements.drift
    programming = None
    if prog is not None:
        programming = program_targets(fit.device, prog.g_target, seed=seed, t=float(np.median(prog.t)))
    drifted = None if drift is None else read_targets_over_time(fit.device, drift.g_target, drift.t, seed=seed + 1)
    return FitComparison(programming=programming, drift=drifted)


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
