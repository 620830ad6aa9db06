"""Training: BPTT loops, optimizers (and GRAPES)."""

from analog_snu.training.feedback_alignment import LEARNING_RULES, FeedbackAlignment, make_learning_rule
from analog_snu.training.grapes import GRAPES, GRAPES_VARIANTS, grapes_modulation
from analog_snu.training.hil import HIL_SCHEMES, HILTrainer
from analog_snu.training.hil_config import HILConfig
from analog_snu.training.init import WEIGHT_INITS, init_weights
from analog_snu.training.loop import accuracy, evaluate, train_epoch
from analog_snu.training.optimizers import OPTIMIZERS, has_analog_layers, make_optimizer
from analog_snu.training.schedules import SCHEDULES, make_scheduler, scheduler_step

__all__ = [
    "FeedbackAlignment",
    "GRAPES",
    "GRAPES_VARIANTS",
    "HIL_SCHEMES",
    "HILConfig",
    "HILTrainer",
    "LEARNING_RULES",
    "OPTIMIZERS",
    "SCHEDULES",
    "WEIGHT_INITS",
    "accuracy",
    "evaluate",
    "grapes_modulation",
    "has_analog_layers",
    "init_weights",
    "make_learning_rule",
    "make_optimizer",
    "make_scheduler",
    "scheduler_step",
    "train_epoch",
]
