"""Single nn.Module layers: a neuron cell of :mod:`analog_snu.functional` over digital weights or aihwkit tiles.

The networks built from them (:class:`~analog_snu.models.SNUNetwork`, ...) are in :mod:`analog_snu.models`.
"""

from analog_snu.layers.conv_snu import ConvSNU
from analog_snu.layers.snu import SNU

__all__ = ["ConvSNU", "SNU"]
