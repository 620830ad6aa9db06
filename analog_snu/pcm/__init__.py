"""The PCM device in pure torch, never importing aihwkit or :mod:`analog_snu.tiles`.

This package exports the device config and its presets (strict pydantic models, importable without
torch). The physics live in submodules: :mod:`analog_snu.pcm.physics` (mapping, programming, drift
and read noise of a tile), :mod:`analog_snu.pcm.mixed_precision` (the mixed-precision update rule and
SET pulses), :mod:`analog_snu.pcm.chip` (the simulated chip of hardware-in-the-loop training) and
:mod:`analog_snu.pcm.measurements` (measurement data of devices, and the same simulated from a device).
"""

from analog_snu.pcm.device import (
    DRIFT_COMPENSATIONS,
    MODES,
    SIMULATORS,
    ConductanceConfig,
    DriftConfig,
    HWAConfig,
    PCMDevice,
    PeripheryConfig,
    ProgrammingNoiseConfig,
    PulsedConfig,
    ReadNoiseConfig,
    StuckConfig,
)
from analog_snu.pcm.presets import PRESETS, list_presets, preset, preset_info, resolve_device
from analog_snu.schema import format_validation_error

__all__ = [
    "DRIFT_COMPENSATIONS",
    "MODES",
    "PRESETS",
    "SIMULATORS",
    "ConductanceConfig",
    "DriftConfig",
    "HWAConfig",
    "PCMDevice",
    "PeripheryConfig",
    "ProgrammingNoiseConfig",
    "PulsedConfig",
    "ReadNoiseConfig",
    "StuckConfig",
    "format_validation_error",
    "list_presets",
    "preset",
    "preset_info",
    "resolve_device",
]
