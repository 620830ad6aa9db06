"""The SNU layer: hand-computed dynamics, analog == digital for ideal tiles, bad input."""

import pytest
import torch
from aihwkit.simulator.configs import FloatingPointRPUConfig

from analog_snu import SNU
from analog_snu.errors import ConfigError, InputValueError, ShapeError
from analog_snu.tiles import read_weight


def set_weight(linear, value):
    weight = torch.as_tensor(value, dtype=torch.float32)
    if hasattr(linear, "set_weights"):
        linear.set_weights(weight)
    else:
        with torch.no_grad():
            linear.weight.copy_(weight)


def one_neuron(**kwargs):
    layer = SNU(1, 1, **kwargs)
    set_weight(layer.weight_ih, [[1.0]])
    return layer


def test_single_neuron_trajectory_by_hand():
    # W = 1, inputs 0.6 per step: s = 0.6, 1.08 (spike), 0.6 (reset), 1.08 (spike)
    layer = one_neuron()
    x = torch.full((4, 1, 1), 0.6)
    y, (s_last, y_last) = layer(x)
    assert y.flatten().tolist() == [0.0, 1.0, 0.0, 1.0]
    assert s_last.item() == pytest.approx(1.08)
    assert y_last.item() == 1.0


def test_threshold_is_per_neuron_parameter_and_used():
    layer = SNU(1, 2)
    set_weight(layer.weight_ih, [[1.0], [1.0]])
    assert isinstance(layer.threshold, torch.nn.Parameter) and layer.threshold.shape == (2,)
    with torch.no_grad():
        layer.threshold.copy_(torch.tensor([0.5, 2.0]))
    y, _ = layer(torch.full((1, 1, 1), 0.7))
    assert y.flatten().tolist() == [1.0, 0.0]


def test_recurrent_weights_feed_previous_output():
    # H = 0.5: step 1 s = 1.2 (spike); step 2 s = 0 + 0.5 * 1 + 0.8 * 1.2 * (1 - 1) = 0.5
    layer = one_neuron(recurrent=True, threshold=1.0)
    set_weight(layer.weight_hh, [[0.5]])
    x = torch.tensor([1.2, 0.0, 0.0]).reshape(3, 1, 1)
    y, (s_last, _) = layer(x)
    assert y.flatten().tolist() == [1.0, 0.0, 0.0]
    # step 3: s = 0 + 0.5 * 0 + 0.8 * 0.5 * (1 - 0) = 0.4
    assert s_last.item() == pytest.approx(0.4)


def test_soft_layer_outputs_sigmoid():
    layer = one_neuron(soft=True)
    y, _ = layer(torch.full((1, 1, 1), 1.5))
    assert y.item() == pytest.approx(torch.sigmoid(torch.tensor(0.5)).item())


def test_state_continues_a_sequence_and_batch_first():
    torch.manual_seed(0)
    for recurrent in (False, True):
        layer = SNU(5, 7, recurrent=recurrent, threshold=0.3)
        x = torch.bernoulli(torch.full((10, 3, 5), 0.5))
        y_full, state_full = layer(x)
        y_a, state_a = layer(x[:4])
        y_b, state_b = layer(x[4:], state_a)
        torch.testing.assert_close(torch.cat([y_a, y_b]), y_full)
        torch.testing.assert_close(state_b[0], state_full[0])
        layer.batch_first = True
        y_bf, _ = layer(x.transpose(0, 1))
        torch.testing.assert_close(y_bf.transpose(0, 1), y_full)


def test_threshold_and_learnable_decay_receive_gradients():
    torch.manual_seed(0)
    layer = SNU(4, 3, soft=True, learn_decay=True)
    y, _ = layer(torch.rand(6, 2, 4))
    y.sum().backward()
    assert layer.threshold.grad.abs().sum() > 0
    assert layer.decay.grad.shape == (3,) and layer.decay.grad.abs().sum() > 0


@pytest.mark.parametrize("recurrent", [False, True])
def test_ideal_analog_tile_equals_digital(recurrent):
    torch.manual_seed(0)
    digital = SNU(6, 5, recurrent=recurrent, threshold=0.4)
    analog = SNU(6, 5, recurrent=recurrent, threshold=0.4, rpu_config=FloatingPointRPUConfig())
    set_weight(analog.weight_ih, digital.weight_ih.weight.detach())
    if recurrent:
        set_weight(analog.weight_hh, digital.weight_hh.weight.detach())
    torch.testing.assert_close(read_weight(analog.weight_ih), read_weight(digital.weight_ih))
    x = torch.bernoulli(torch.full((8, 4, 6), 0.5))
    y_d, (s_d, _) = digital(x)
    y_a, (s_a, _) = analog(x)
    assert y_d.sum() > 0  # the comparison is not between two silent layers
    torch.testing.assert_close(y_a, y_d)
    torch.testing.assert_close(s_a, s_d, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_size": 0}, "input_size must be a positive int"),
        ({"hidden_size": -3}, "hidden_size must be a positive int"),
        ({"hidden_size": 2.5}, "hidden_size must be a positive int"),
        ({"decay": 1.5}, r"decay must be a float in \[0, 1\]"),
        ({"decay": -0.1}, r"decay must be a float in \[0, 1\]"),
        ({"g": "tanh"}, "g must be one of"),
        ({"surrogate": "nope"}, "surrogate must be one of"),
        ({"threshold": float("nan")}, "threshold must be a finite float"),
        ({"rpu_config": "pcm"}, "rpu_config must be an aihwkit RPU config"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    args = {"input_size": 3, "hidden_size": 2} | kwargs
    with pytest.raises(ConfigError, match=match):
        SNU(args.pop("input_size"), args.pop("hidden_size"), **args)


def test_bad_inputs():
    layer = SNU(3, 2)
    with pytest.raises(ShapeError, match="must have 3 dimensions"):
        layer(torch.zeros(4, 3))
    with pytest.raises(ShapeError, match="feature size must be 3"):
        layer(torch.zeros(4, 1, 5))
    with pytest.raises(InputValueError, match="NaN or inf"):
        layer(torch.full((2, 1, 3), float("nan")))
    with pytest.raises(InputValueError, match="NaN or inf"):
        layer(torch.full((2, 1, 3), float("inf")))
    with pytest.raises(TypeError, match="floating-point"):
        layer(torch.zeros(2, 1, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        layer([[0.0, 0.0, 0.0]])
    with pytest.raises(ShapeError, match=r"state s must have shape \(1, 2\)"):
        layer(torch.zeros(2, 1, 3), (torch.zeros(2, 2), torch.zeros(2, 2)))
