"""The learning-rule protocol: every rule the package builds follows it; plain backprop is a rule too."""

import pytest
import torch
from torch import nn

from analog_snu import MLP
from analog_snu.errors import CheckpointError
from analog_snu.training import GRAPES, LEARNING_RULES, Backprop, LearningRule, make_learning_rule, train_epoch
from analog_snu.training.feedback_alignment import DFAGrapes, FeedbackAlignment


@pytest.mark.parametrize("name", LEARNING_RULES)
def test_every_learning_rule_follows_the_protocol(name):
    rule = make_learning_rule(MLP([3, 4, 5, 2]), name, seed=0)
    assert isinstance(rule, LearningRule)
    assert rule.name == name
    state = rule.state_dict()
    assert all(isinstance(value, torch.Tensor) for value in state.values())
    assert bool(state) == name.startswith(("FA", "DFA"))  # only feedback alignment keeps state
    rule.load_state_dict(state)  # its own state loads back


@pytest.mark.parametrize("part", [GRAPES, DFAGrapes, lambda m: FeedbackAlignment(m, "fa")])
def test_every_part_follows_the_protocol(part):
    assert isinstance(part(MLP([3, 4, 5, 2])), LearningRule)


def test_backprop_leaves_the_gradients_of_autograd():
    torch.manual_seed(0)
    model = MLP([3, 4, 2])
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])
    nn.functional.cross_entropy(model(x), y).backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    rule = Backprop()
    rule.begin_batch()
    nn.functional.cross_entropy(model(x), y).backward()
    rule.before_step()
    for got, want in zip((p.grad for p in model.parameters()), expected):
        assert torch.equal(got, want)


def test_train_epoch_defaults_to_backprop():
    def run(**rule):
        torch.manual_seed(1)
        model = MLP([3, 4, 2])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.3)
        batches = [(torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])) for _ in range(3)]
        train_epoch(model, batches, optimizer, nn.functional.cross_entropy, progress=False, **rule)
        return [p.detach() for p in model.parameters()]

    for got, want in zip(run(), run(rule=Backprop())):
        assert torch.equal(got, want)


@pytest.mark.parametrize(("rule", "name"), [(lambda m: Backprop(), "BP"), (GRAPES, "GRAPES"),
                                            (DFAGrapes, "DFAgrapes"),
                                            (lambda m: make_learning_rule(m, "BPgrapes"), "BPgrapes")])
def test_a_rule_without_state_refuses_one(rule, name):
    stateless = rule(MLP([3, 4, 5, 2]))
    stateless.load_state_dict({})
    with pytest.raises(CheckpointError, match=rf"rule {name} has no state to restore, got \['hidden.1'\]"):
        stateless.load_state_dict({"hidden.1": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=rf"rule {name} has no state to restore, got list"):
        stateless.load_state_dict([])
