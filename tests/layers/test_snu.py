"""The SNU layer: hand-computed dynamics, analog == digital for ideal tiles, bad input."""

import pytest
import torch
from aihwkit.simulator.configs import FloatingPointRPUConfig

from analog_snu import SNU
from analog_snu.errors import ConfigError, InputValueError, ShapeError
from analog_snu.functional.linear import TORCH_GEMM_ENV, is_feature_major, onednn_applies
from analog_snu.functional.snu import TORCH_LOOPS_ENV
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
    one_bad = torch.zeros(2, 1, 3)
    one_bad[1, 0, 2] = float("-inf")
    with pytest.raises(InputValueError, match="NaN or inf"):
        layer(one_bad)


def test_finite_input_whose_sum_overflows_is_accepted():
    # the check sums the input; finite values past the float range in sum are still valid input
    y, _ = SNU(3, 2)(torch.full((2, 1, 3), 3e38))
    assert y.shape == (2, 1, 2)


def test_bad_input_types():
    layer = SNU(3, 2)
    with pytest.raises(TypeError, match="floating-point"):
        layer(torch.zeros(2, 1, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        layer([[0.0, 0.0, 0.0]])
    with pytest.raises(ShapeError, match=r"state s must have shape \(1, 2\)"):
        layer(torch.zeros(2, 1, 3), (torch.zeros(2, 2), torch.zeros(2, 2)))


# --- neuron cells ---------------------------------------------------------------------------------


def reference_layer(layer, x):
    """The layer's cell written out from its equations (functional module docstrings), in float64.

    reset gate: 1 - y_{t-1} per neuron (snu, ssnu), 1 - max_j y_{t-1, j} per sample (snu_li)."""
    w = layer.weight_ih.weight.detach().double()
    h = layer.weight_hh.weight.detach().double() if layer.weight_hh is not None else None
    thr, decay = layer.threshold.detach().double(), layer.decay.detach().double()
    s = y = torch.zeros(x.shape[1], layer.hidden_size, dtype=torch.float64)
    ys = []
    for t in range(x.shape[0]):
        gate = 1 - (y.amax(1, keepdim=True) if layer.cell == "snu_li" else y)
        a = x[t].double() @ w.T + decay * s * gate
        if h is not None:
            a = a + y @ h.T
        s = torch.relu(a)
        y = torch.sigmoid(s - thr) if layer.soft else (s - thr > 0).double()
        ys.append(y)
    return torch.stack(ys)


@pytest.mark.parametrize("cell", ["snu", "ssnu", "snu_li"])
@pytest.mark.parametrize("recurrent", [False, True])
def test_every_cell_matches_its_reference(cell, recurrent):
    torch.manual_seed(0)
    layer = SNU(6, 5, cell=cell, recurrent=recurrent, threshold=0.3)
    x = torch.bernoulli(torch.full((8, 3, 6), 0.5))
    y, state = layer(x)
    assert layer.cell == cell and len(state) == 2
    expected = reference_layer(layer, x).float()
    if not layer.soft:
        assert 0 < expected.sum() < expected.numel()
    torch.testing.assert_close(y, expected)


def test_lateral_inhibition_layer_differs_from_snu_and_trains():
    torch.manual_seed(0)
    snu = SNU(6, 5, threshold=0.3)
    li = SNU(6, 5, cell="snu_li", threshold=0.3)
    li.load_state_dict(snu.state_dict())
    x = torch.bernoulli(torch.full((10, 4, 6), 0.5))
    assert not torch.equal(snu(x)[0], li(x)[0])
    li(x)[0].sum().backward()
    assert li.weight_ih.weight.grad.abs().sum() > 0 and li.threshold.grad.abs().sum() > 0


def test_ssnu_cell_equals_soft_flag():
    torch.manual_seed(0)
    legacy = SNU(4, 3, soft=True)
    named = SNU(4, 3, cell="ssnu")
    named.load_state_dict(legacy.state_dict())
    assert named.soft and named.cell == "ssnu" and legacy.soft and legacy.cell == "snu"
    x = torch.rand(5, 2, 4)
    torch.testing.assert_close(named(x)[0], legacy(x)[0])
    assert "cell='snu_li'" in repr(SNU(4, 3, cell="snu_li"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"cell": "lif"}, r"cell must be one of \['snu', 'ssnu', 'snu_li'"),
        ({"cell": "ssnu", "soft": False}, "cell 'ssnu' fixes soft=True, got soft=False"),
        ({"cell": "snu_li", "gain": 2.0}, "cell 'snu_li' takes no parameter 'gain'"),
        ({"soft": "yes"}, "soft must be a bool"),
    ],
)
def test_bad_cell_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SNU(3, 2, **kwargs)


def test_toy_cell_with_its_own_parameter_through_the_layer(monkeypatch):
    """A new neuron is one functional definition plus one registration, cell options included."""
    import dataclasses
    from typing import NamedTuple

    from analog_snu.functional import CellDef, register_cell
    from analog_snu.functional import cells as cells_module

    @dataclasses.dataclass(frozen=True)
    class GainParameters:
        gain: float = 1.0

    class GainState(NamedTuple):
        y: torch.Tensor

    def gain_step(current, state, threshold, decay, gain=1.0):
        y = gain * current + decay * state.y - threshold
        return y, GainState(y)

    monkeypatch.setattr(cells_module, "NEURON_CELLS", dict(cells_module.NEURON_CELLS))
    register_cell(CellDef("gain", GainParameters, GainState, gain_step))
    layer = SNU(1, 1, cell="gain", gain=3.0, decay=0.5, threshold=0.0)
    set_weight(layer.weight_ih, [[1.0]])
    y, (y_last,) = layer(torch.tensor([1.0, 0.0, 0.0]).reshape(3, 1, 1))
    assert y.flatten().tolist() == [3.0, 1.5, 0.75] and y_last.item() == 0.75
    assert layer.soft is None and "gain=3.0" in repr(layer)
    with pytest.raises(ConfigError, match="cell 'gain' takes no parameter 'g'"):
        SNU(1, 1, cell="gain", g="relu")


# --- input errors (one line, naming the argument, expected and received) ---------------------------


@pytest.mark.parametrize(
    "x, error, match",
    [
        (torch.ones(5, 0, 4), ShapeError, r"input \(T, N, F\) must have at least one sample .*got shape \(5, 0, 4\) "
                                          r"\(batch size N is 0\)"),
        (torch.ones(0, 2, 4), ShapeError, r"got shape \(0, 2, 4\) \(number of time steps T is 0\)"),
        (torch.ones(5, 2, 4, dtype=torch.float64), ShapeError,
         r"input dtype must be torch.float32, the dtype of the layer's parameters, got torch.float64"),
        (torch.ones(5, 2, 3), ShapeError, r"input feature size must be 4, got shape \(5, 2, 3\)"),
    ],
)
def test_bad_input_tensors(x, error, match):
    with pytest.raises(error, match=match):
        SNU(4, 3)(x)


def test_empty_batch_first_input_names_the_layout():
    with pytest.raises(ShapeError, match=r"input \(N, T, F\) .* \(batch size N is 0\)"):
        SNU(4, 3, batch_first=True)(torch.ones(0, 5, 4))


def test_float64_layer_takes_float64_input_only():
    layer = SNU(4, 3).double()
    y, _ = layer(torch.ones(5, 2, 4, dtype=torch.float64))
    assert y.dtype == torch.float64
    with pytest.raises(ShapeError, match="input dtype must be torch.float64.*got torch.float32"):
        layer(torch.ones(5, 2, 4))


@pytest.mark.parametrize(
    "state, error, match",
    [
        ((torch.zeros(2, 3), torch.full((2, 3), float("nan"))), InputValueError, "state y contains NaN or inf"),
        ((torch.full((2, 3), float("-inf")), torch.zeros(2, 3)), InputValueError, "state s contains NaN or inf"),
        ((torch.zeros(2, 3),), ShapeError, r"state must be a tuple \(s, y\) of 2 tensors of shape \(2, 3\), got 1 item"),
        ((torch.zeros(2, 3), torch.zeros(3, 2)), ShapeError, r"state y must have shape \(2, 3\), got \(3, 2\)"),
        ((torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3)), ShapeError,
         "state s must have dtype torch.float32 .*got torch.float64"),
        (torch.zeros(2, 3), TypeError, r"state must be a tuple \(s, y\) .*got Tensor"),
        ((torch.zeros(2, 3), [0.0]), TypeError, "state y must be a torch.Tensor .*got list"),
    ],
)
def test_bad_initial_states(state, error, match):
    with pytest.raises(error, match=match):
        SNU(4, 3)(torch.ones(5, 2, 4), state)


def test_layer_deep_copies_and_pickles_with_its_cell():
    import copy
    import io

    layer = SNU(4, 3, cell="ssnu", g="identity")
    x = torch.rand(5, 2, 4)
    twin = copy.deepcopy(layer)
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    for other in (twin, loaded):
        assert other.cell == "ssnu" and other.g == "identity"
        torch.testing.assert_close(other(x)[0], layer(x)[0])


def test_float64_layer_holds_decay_and_threshold_exactly():
    """.double() widened the float32 rounding: 0.8 became 0.800000011920929."""
    from analog_snu.layers import ConvSNU

    for layer in (SNU(4, 3, decay=0.8, threshold=0.3).double(), SNU(4, 3, decay=0.8, learn_decay=True).double(),
                  ConvSNU(1, 2, 3, decay=0.7, threshold=0.9).to(torch.float64)):
        decay, threshold = layer._exact_initial["decay"], layer._exact_initial["threshold"]
        assert layer.decay.dtype == torch.float64
        assert torch.all(layer.decay == decay) and torch.all(layer.threshold == threshold)
    assert SNU(4, 3, decay=0.8).decay.item() == float(torch.tensor(0.8))  # float32 layers: float32 values
    trained = SNU(4, 3, threshold=0.3)
    with torch.no_grad():
        trained.threshold[0] = 0.25
    assert trained.double().threshold[0].item() == 0.25 and trained.threshold[1].item() == float(torch.tensor(0.3))


def test_input_check_leaves_no_trace_in_the_graph(recwarn):
    # the spikes of a lower layer carry a graph; checking them warns of nothing and adds no node
    x = torch.bernoulli(torch.full((3, 2, 4), 0.5)).requires_grad_()
    y, _ = SNU(4, 3, threshold=0.2)(x)
    y.sum().backward()
    assert x.grad is not None and not recwarn.list


# -- layouts: the digital spiking layer's output is stored feature-major -----------------------------

def feature_major(t):
    """``t`` (T, N, F) stored feature-major: the same values over (F, T, N) memory."""
    return t.movedim(-1, 0).contiguous().movedim(0, -1)


def _quantised_layer(**kwargs):
    """A 128 -> 120 layer (144 rows: the products run on oneDNN) with weights on a 1/256 grid: its
    currents from 0/1 spikes are exact sums, the same bits in any summation order or layout."""
    torch.manual_seed(20)
    layer = SNU(128, 120, threshold=0.4, **kwargs)
    if not layer.recurrent and kwargs.get("rpu_config") is None:
        with torch.no_grad():
            layer.weight_ih.weight.copy_(torch.round(layer.weight_ih.weight * 256) / 256)
    return layer


def _input(batch_first=False):
    x = torch.bernoulli(torch.full((6, 24, 128), 0.3), generator=torch.Generator().manual_seed(21))
    return x.transpose(0, 1).contiguous() if batch_first else x


needs_onednn = pytest.mark.skipif(not onednn_applies(torch.zeros(144, 128), torch.zeros(120, 128)),
                                  reason="products not on oneDNN here (torch without it, or ANALOG_SNU_TORCH_GEMM=1)")


@needs_onednn
@pytest.mark.parametrize("input_layout", ["row_major", "feature_major"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_digital_spiking_layer_output_is_feature_major_with_the_time_major_values(input_layout, batch_first,
                                                                                 monkeypatch):
    layer = _quantised_layer(batch_first=batch_first)
    base = _input(batch_first)
    grad = torch.randn(*base.shape[:2], 120, generator=torch.Generator().manual_seed(22))
    results = []
    for torch_gemm in (False, True):  # products through F.linear: today's row-major path
        if torch_gemm:
            monkeypatch.setenv(TORCH_GEMM_ENV, "1")
        leaf = base.clone().requires_grad_()
        x = feature_major(leaf) if input_layout == "feature_major" else leaf
        layer.zero_grad()
        y, (s_last, y_last) = layer(x)
        assert y.shape == base.shape[:2] + (120,)
        assert is_feature_major(y.transpose(0, 1) if batch_first else y) == (not torch_gemm)
        (y * grad).sum().backward()
        results.append((y.detach(), s_last, y_last, leaf.grad, layer.weight_ih.weight.grad, layer.threshold.grad))
    fm, tm = results
    assert 0.02 < float(fm[0].mean()) < 0.8  # the layer fires
    for name, a, b in zip(("y", "s_last", "y_last"), fm, tm):
        assert torch.equal(a, b), name
    assert torch.equal(fm[0].contiguous(), tm[0])
    for name, a, b in zip(("input", "weight", "threshold"), fm[3:], tm[3:]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=f"gradient of the {name}")


@pytest.mark.parametrize("kwargs", [{"soft": True}, {"recurrent": True}, {"cell": "snu_li"},
                                    {"rpu_config": FloatingPointRPUConfig()}, {"torch_loops": True}])
def test_other_layers_keep_the_row_major_output_and_take_a_feature_major_input(kwargs, monkeypatch):
    kwargs = dict(kwargs)
    if kwargs.pop("torch_loops", False):
        monkeypatch.setenv(TORCH_LOOPS_ENV, "1")
    layer = _quantised_layer(**kwargs)
    x = _input()
    y, _ = layer(x)
    assert y.is_contiguous()
    y_fm_input, _ = layer(feature_major(x))
    assert torch.equal(y_fm_input, y)
