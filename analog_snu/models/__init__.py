"""Task models (digit classifier, music predictor, language model, LSTM/GRU baselines) built from a spec."""

from analog_snu.models.build import build_model, rpu_config_for
from analog_snu.models.devices import list_devices, resolve_rpu_config
from analog_snu.models.networks import LanguageModel, RecurrentNetwork
from analog_snu.models.spec import CELLS, HEADS, TRAINING_MODES, ModelSpec
from analog_snu.models.stack import HiddenStack

__all__ = [
    "CELLS",
    "HEADS",
    "HiddenStack",
    "LanguageModel",
    "ModelSpec",
    "RecurrentNetwork",
    "TRAINING_MODES",
    "build_model",
    "list_devices",
    "resolve_rpu_config",
    "rpu_config_for",
]
