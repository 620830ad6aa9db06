"""PCM device configs and presets: plain dataclasses, importable without aihwkit."""

from analog_snu.device_models.pcm import (
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
from analog_snu.device_models.presets import PRESETS, list_presets, preset, preset_info

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
    "list_presets",
    "preset",
    "preset_info",
]
