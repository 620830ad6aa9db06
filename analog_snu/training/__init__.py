"""Training: BPTT loops, optimizers (and GRAPES)."""

from analog_snu.training.loop import accuracy, evaluate, train_epoch
from analog_snu.training.optimizers import OPTIMIZERS, has_analog_layers, make_optimizer

__all__ = ["OPTIMIZERS", "accuracy", "evaluate", "has_analog_layers", "make_optimizer", "train_epoch"]
