"""PCM device configs and presets: strict pydantic models, importable without aihwkit."""

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
from analog_snu.device_models.presets import PRESETS, list_presets, preset, preset_info, resolve_device
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
