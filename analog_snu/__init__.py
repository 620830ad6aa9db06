"""analog_snu: Spiking Neural Units and GRAPES on simulated phase-change-memory crossbars.

The public API; see the README for a tour.
"""

from analog_snu.errors import (
    AnalogSNUError,
    BackendError,
    CheckpointError,
    ConfigError,
    DataError,
    InputValueError,
    ShapeError,
)
from analog_snu.functional import SNUState, snu_sequence, snu_step
from analog_snu.hardware import device_count, drift, export_weight_maps, import_weight_maps, program
from analog_snu.layers import MLP, SNU, SNUNetwork
from analog_snu.models import ModelSpec, build_model
from analog_snu.checkpoint import load_run
from analog_snu.training import GRAPES, grapes_modulation

__version__ = "0.1.0"

__all__ = [
    "AnalogSNUError",
    "BackendError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "GRAPES",
    "InputValueError",
    "MLP",
    "ModelSpec",
    "SNU",
    "SNUNetwork",
    "SNUState",
    "ShapeError",
    "__version__",
    "build_model",
    "device_count",
    "drift",
    "export_weight_maps",
    "grapes_modulation",
    "import_weight_maps",
    "load_run",
    "program",
    "snu_sequence",
    "snu_step",
]
