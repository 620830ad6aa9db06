"""nn.Module shells over the functional SNU math and the aihwkit tiles."""

from analog_snu.layers.cnn import CNN
from analog_snu.layers.conv_snu import ConvSNU, ConvSNUNetwork
from analog_snu.layers.mlp import MLP, MLP_ACTIVATIONS
from analog_snu.layers.network import OUTPUT_MODES, SNUNetwork
from analog_snu.layers.snu import SNU

__all__ = ["CNN", "ConvSNU", "ConvSNUNetwork", "MLP", "MLP_ACTIVATIONS", "OUTPUT_MODES", "SNU", "SNUNetwork"]
