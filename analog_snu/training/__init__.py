"""Training: BPTT loops, optimizers (and GRAPES)."""

from analog_snu.training.grapes import GRAPES, GRAPES_VARIANTS, grapes_modulation
from analog_snu.training.loop import accuracy, evaluate, train_epoch
from analog_snu.training.optimizers import OPTIMIZERS, has_analog_layers, make_optimizer

__all__ = [
    "GRAPES",
    "GRAPES_VARIANTS",
    "OPTIMIZERS",
    "accuracy",
    "evaluate",
    "grapes_modulation",
    "has_analog_layers",
    "make_optimizer",
    "train_epoch",
]
