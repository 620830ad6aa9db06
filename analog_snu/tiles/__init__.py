"""The bridge to aihwkit: the only package that imports it; it adapts :mod:`analog_snu.pcm` to aihwkit."""

from analog_snu.tiles.backend import aihwkit_module, aihwkit_version
from analog_snu.tiles.crossbar import Crossbar, crossbars
from analog_snu.tiles.device_rpu import device_rpu_config
from analog_snu.tiles.linear import (
    AnalogContainerBase,
    DigitalLinear,
    is_analog,
    is_conv2d_map,
    is_linear_map,
    make_conv2d,
    make_linear,
    read_weight,
)
from analog_snu.tiles.optim import analog_optimizer
from analog_snu.tiles.rnn import ANALOG_RNN_CELLS, analog_rnn
from analog_snu.tiles.units import remap_tile, update_in_network_units
from analog_snu.tiles.updates import scale_weight_update, tile_rows

__all__ = [
    "Crossbar",
    "crossbars",
    "ANALOG_RNN_CELLS",
    "analog_rnn",
    "AnalogContainerBase",
    "DigitalLinear",
    "aihwkit_module",
    "aihwkit_version",
    "analog_optimizer",
    "device_rpu_config",
    "is_analog",
    "is_conv2d_map",
    "is_linear_map",
    "make_conv2d",
    "make_linear",
    "read_weight",
    "remap_tile",
    "scale_weight_update",
    "tile_rows",
    "update_in_network_units",
]
