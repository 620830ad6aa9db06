"""The learning-rule protocol of the training loop, and plain backprop as a rule.

Every learning rule (BP, GRAPES, FA, DFA and their combinations) is one object that the loop
(:func:`~analog_snu.training.loop.train_epoch`) drives the same way per mini-batch::

    rule.begin_batch()          # before the forward: per-batch factors from the weights now
    loss = loss_fn(model(x), y)
    loss.backward()             # the rule's hooks shape the error signals
    rule.before_step()          # before optimizer.step(): scale the pending updates
    optimizer.step()

and whose state (FA/DFA's fixed feedback matrices; nothing for BP and GRAPES) goes to and
comes from a checkpoint as named tensors, ``state_dict()`` / ``load_state_dict()``.
:func:`~analog_snu.training.feedback_alignment.make_learning_rule` builds any of them by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from torch import Tensor

from analog_snu.errors import CheckpointError

__all__ = ["LearningRule", "Backprop", "expect_no_state"]


@runtime_checkable
class LearningRule(Protocol):
    """What the training loop asks of a learning rule (module docstring)."""

    def begin_batch(self) -> None:
        """Before the forward pass of a mini-batch."""

    def before_step(self) -> None:
        """After ``loss.backward()``, before ``optimizer.step()``; ends the batch."""

    def state_dict(self) -> dict[str, Tensor]:
        """The rule's state as named tensors (``{}`` for a rule without state)."""

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore what :meth:`state_dict` returned (same model, same rule)."""


class Backprop:
    """Plain backpropagation: the gradients autograd computes, untouched; no state."""

    name = "BP"

    def begin_batch(self) -> None:
        """Nothing to prepare."""

    def before_step(self) -> None:
        """Nothing to scale."""

    def state_dict(self) -> dict[str, Tensor]:
        """``{}``: backprop has no state."""
        return {}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Accepts only the empty state."""
        expect_no_state("BP", state)

    def remove(self) -> None:
        """Nothing attached to the model."""

    def __repr__(self) -> str:
        return "Backprop()"


def expect_no_state(name: str, state: Mapping[str, Tensor]) -> None:
    """Refuse a non-empty state for a rule (or part) ``name`` that keeps none."""
    if not isinstance(state, Mapping) or state:
        got = sorted(state) if isinstance(state, Mapping) else type(state).__name__
        raise CheckpointError(f"rule {name} has no state to restore, got {got}")
