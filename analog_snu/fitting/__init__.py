"""Fit the package's PCM device model to measured data (programming error, drift, read noise, stuck devices).

Pure numpy/scipy over :mod:`analog_snu.pcm`: reads the measurement CSV formats
(:mod:`~analog_snu.fitting.measurements`), fits each quantity by maximum likelihood under the
model's own noise assumptions, gives bootstrap intervals and identifiability warnings
(:func:`fit_device`), and returns a :class:`~analog_snu.pcm.PCMDevice` whose unfitted
fields come from a base device.

Example:
    >>> from analog_snu.fitting import fit_device                        # doctest: +SKIP
    >>> fit = fit_device(["programming.csv", "drift.csv"], base="pcm_joshi2020")  # doctest: +SKIP
    >>> fit.device.save("my_pcm.toml")                                   # doctest: +SKIP
"""

from analog_snu.fitting.fit import DEFAULT_BASE, DEFAULT_BOOTSTRAP, DeviceFit, FittedParameter, fit_device
from analog_snu.fitting.measurements import (
    COLUMNS,
    KINDS,
    DriftData,
    Measurements,
    ProgrammingData,
    ReadNoiseData,
    measurement_csv,
    read_measurement_file,
    read_measurements,
)
from analog_snu.fitting.model import EffectiveModel, effective_parameters

__all__ = [
    "COLUMNS",
    "DEFAULT_BASE",
    "DEFAULT_BOOTSTRAP",
    "DeviceFit",
    "DriftData",
    "EffectiveModel",
    "FittedParameter",
    "KINDS",
    "Measurements",
    "ProgrammingData",
    "ReadNoiseData",
    "effective_parameters",
    "fit_device",
    "measurement_csv",
    "read_measurement_file",
    "read_measurements",
]
