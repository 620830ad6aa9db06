"""Task models (digit classifier, music predictor, language model, LSTM/GRU baselines) built from a spec."""

from analog_snu.models.build import build_model, rpu_config_for
from analog_snu.models.networks import LanguageModel, RecurrentNetwork
from analog_snu.models.spec import BASELINE_CELLS, CELLS, HEADS, TILE_MODES, TRAINING_MODES, ModelConfig, ModelSpec
from analog_snu.models.stack import HiddenStack

__all__ = [
    "BASELINE_CELLS",
    "CELLS",
    "HEADS",
    "HiddenStack",
    "LanguageModel",
    "ModelConfig",
    "ModelSpec",
    "RecurrentNetwork",
    "TILE_MODES",
    "TRAINING_MODES",
    "build_model",
    "rpu_config_for",
]
