"""Every network: the SNU network, the spiking CNN, the MLP/CNN and LSTM/GRU baselines, the language model,
and the task models built from a spec."""

from analog_snu.models.build import build_model, rpu_config_for
from analog_snu.models.cnn import CNN
from analog_snu.models.conv_snu_network import ConvSNUNetwork
from analog_snu.models.mlp import MLP, MLP_ACTIVATIONS
from analog_snu.models.networks import LanguageModel, RecurrentNetwork
from analog_snu.models.snu_network import OUTPUT_MODES, SNUNetwork
from analog_snu.models.spec import (
    BASELINE_CELLS,
    CELLS,
    HEADS,
    TILE_KINDS,
    TRAINING_MODES,
    TRAINING_TILE_KINDS,
    ModelConfig,
    ModelSpec,
    cell_options_of,
    upgrade_stored_spec,
)
from analog_snu.models.stack import HiddenStack

__all__ = [
    "BASELINE_CELLS",
    "CELLS",
    "CNN",
    "ConvSNUNetwork",
    "HEADS",
    "HiddenStack",
    "LanguageModel",
    "MLP",
    "MLP_ACTIVATIONS",
    "ModelConfig",
    "ModelSpec",
    "OUTPUT_MODES",
    "RecurrentNetwork",
    "SNUNetwork",
    "TILE_KINDS",
    "TRAINING_MODES",
    "TRAINING_TILE_KINDS",
    "build_model",
    "cell_options_of",
    "rpu_config_for",
    "upgrade_stored_spec",
]
