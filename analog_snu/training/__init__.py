"""Training: one epoch loop, learning rules behind one protocol (BP, GRAPES, FA/DFA), hardware in the loop
as a hook, optimizers and schedules."""

from analog_snu.training.feedback_alignment import (
    LEARNING_RULES,
    ComposedRule,
    FeedbackAlignment,
    learning_rule_name,
    make_learning_rule,
)
from analog_snu.training.grapes import GRAPES, GRAPES_VARIANTS, grapes_modulation
from analog_snu.training.hil import HIL_SCHEMES, HILHook
from analog_snu.training.hil_config import HILConfig
from analog_snu.training.init import WEIGHT_INITS, init_weights
from analog_snu.training.loop import HardwareHook, accuracy, evaluate, train_epoch
from analog_snu.training.optimizers import OPTIMIZERS, has_analog_layers, make_optimizer
from analog_snu.training.rules import Backprop, LearningRule
from analog_snu.training.schedules import SCHEDULES, make_scheduler, scheduler_step

__all__ = [
    "Backprop",
    "ComposedRule",
    "FeedbackAlignment",
    "GRAPES",
    "GRAPES_VARIANTS",
    "HIL_SCHEMES",
    "HILConfig",
    "HILHook",
    "HardwareHook",
    "LEARNING_RULES",
    "LearningRule",
    "OPTIMIZERS",
    "SCHEDULES",
    "WEIGHT_INITS",
    "accuracy",
    "evaluate",
    "grapes_modulation",
    "has_analog_layers",
    "init_weights",
    "learning_rule_name",
    "make_learning_rule",
    "make_optimizer",
    "make_scheduler",
    "scheduler_step",
    "train_epoch",
]
