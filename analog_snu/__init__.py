"""analog_snu: Spiking Neural Units and GRAPES on simulated phase-change-memory crossbars.

The public API; see the README for a tour. Names are imported on first use (PEP 562), so
that ``analog_snu.pcm``, ``analog_snu.data`` and ``analog_snu.functional`` stay
importable where aihwkit's compiled core is missing; only the names that need it import it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from analog_snu.errors import (
    AnalogSNUError,
    BackendError,
    CheckpointError,
    ConfigError,
    DataError,
    InputValueError,
    ShapeError,
)

__version__ = "0.1.0"

#: public name -> module that defines it
_LAZY: dict[str, str] = {
    "SNUState": "analog_snu.functional",
    "snu_sequence": "analog_snu.functional",
    "snu_step": "analog_snu.functional",
    "MLP": "analog_snu.models",
    "SNU": "analog_snu.layers",
    "SNUNetwork": "analog_snu.models",
    "device_count": "analog_snu.hardware",
    "drift": "analog_snu.hardware",
    "export_weight_maps": "analog_snu.reports",
    "import_weight_maps": "analog_snu.hardware",
    "program": "analog_snu.hardware",
    "ModelSpec": "analog_snu.models",
    "build_model": "analog_snu.models",
    "load_run": "analog_snu.experiments",
    "RunConfig": "analog_snu.experiments",
    "train_run": "analog_snu.experiments",
    "evaluate_run": "analog_snu.experiments",
    "GRAPES": "analog_snu.training",
    "grapes_modulation": "analog_snu.training",
}

__all__ = [
    "AnalogSNUError",
    "BackendError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "InputValueError",
    "ShapeError",
    "__version__",
    *sorted(_LAZY),
]

if TYPE_CHECKING:  # static tools see the real imports
    from analog_snu.experiments import RunConfig, evaluate_run, load_run, train_run
    from analog_snu.functional import SNUState, snu_sequence, snu_step
    from analog_snu.hardware import device_count, drift, import_weight_maps, program
    from analog_snu.layers import SNU
    from analog_snu.models import MLP, ModelSpec, SNUNetwork, build_model
    from analog_snu.reports import export_weight_maps
    from analog_snu.training import GRAPES, grapes_modulation


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'analog_snu' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
