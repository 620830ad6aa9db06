"""Pure neuron math (torch only): the cell registry, per-cell steps and fused sequences, surrogate spikes."""

from analog_snu.functional.activations import ACTIVATIONS, check_activation
from analog_snu.functional.cells import (
    NEURON_CELLS,
    CellDef,
    cell_sequence,
    neuron_cell,
    neuron_cell_names,
    register_cell,
)
from analog_snu.functional.dropout import check_dropout, dropout_mask, variational_dropout
from analog_snu.functional.snu import SNUParameters, SNUState, snu_sequence, snu_step, time_mean
from analog_snu.functional.snu_li import snu_li_step
from analog_snu.functional.snu_pool import snu_pool_compiled, snu_pool_sequence
from analog_snu.functional.surrogates import SURROGATES, check_surrogate, heaviside_spike, surrogate_derivative

__all__ = [
    "ACTIVATIONS",
    "NEURON_CELLS",
    "SURROGATES",
    "CellDef",
    "SNUParameters",
    "SNUState",
    "cell_sequence",
    "check_activation",
    "check_dropout",
    "check_surrogate",
    "dropout_mask",
    "heaviside_spike",
    "neuron_cell",
    "neuron_cell_names",
    "register_cell",
    "snu_li_step",
    "snu_pool_compiled",
    "snu_pool_sequence",
    "snu_sequence",
    "snu_step",
    "surrogate_derivative",
    "time_mean",
    "variational_dropout",
]
