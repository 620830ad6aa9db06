"""Pure SNU math (torch only): step functions and surrogate spikes."""

from analog_snu.functional.snu import ACTIVATIONS, SNUState, check_activation, snu_sequence, snu_step
from analog_snu.functional.surrogates import SURROGATES, check_surrogate, heaviside_spike, surrogate_derivative

__all__ = [
    "ACTIVATIONS",
    "SURROGATES",
    "SNUState",
    "check_activation",
    "check_surrogate",
    "heaviside_spike",
    "snu_sequence",
    "snu_step",
    "surrogate_derivative",
]
