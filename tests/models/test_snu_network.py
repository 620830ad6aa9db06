"""SNUNetwork: output modes, aihwkit container calls, state_dict round trip, pulsed training."""

import pytest
import torch
from aihwkit.simulator.configs import InferenceRPUConfig, SingleRPUConfig
from aihwkit.simulator.configs.devices import ConstantStepDevice

from analog_snu import SNUNetwork
from analog_snu.errors import ConfigError
from analog_snu.functional import neuron_cell_names
from analog_snu.functional.linear import TORCH_GEMM_ENV, is_feature_major, onednn_applies
from analog_snu.functional.spike_linear import DENSE_SPIKES_ENV
from analog_snu.training import make_optimizer


def spikes(steps=6, batch=4, features=5, p=0.4):
    return torch.bernoulli(torch.full((steps, batch, features), p))


def test_output_modes_shapes():
    x = spikes()
    assert SNUNetwork([5, 8, 7, 3], output="mean")(x).shape == (4, 3)
    assert SNUNetwork([5, 8, 3], output="sequence")(x).shape == (6, 4, 3)
    net = SNUNetwork([5, 8, 3], output="sequence", batch_first=True)
    assert net(x.transpose(0, 1)).shape == (4, 6, 3)


def test_mean_readout_equals_time_average_of_sequence_readout():
    torch.manual_seed(0)
    seq = SNUNetwork([5, 8, 3], output="sequence", threshold=0.2)
    mean = SNUNetwork([5, 8, 3], output="mean", threshold=0.2)
    mean.load_state_dict(seq.state_dict())
    x = spikes()
    torch.testing.assert_close(mean(x), seq(x).mean(0))


def test_container_calls_reach_every_tile():
    net = SNUNetwork([5, 8, 6, 3], rpu_config=InferenceRPUConfig(), recurrent=True)
    # 2 layers x (W, H) + readout = 5 tiles
    assert len(list(net.analog_tiles())) == 5
    assert len(net.get_weights()) == 5
    net.eval()
    before = net(spikes())
    net.program_analog_weights()
    net.drift_analog_weights(3600.0)
    after = net(spikes())
    assert before.shape == after.shape


def test_digital_readout_on_analog_network():
    net = SNUNetwork([5, 8, 3], rpu_config=InferenceRPUConfig(), readout_rpu_config=None)
    assert isinstance(net.readout, torch.nn.Linear)
    assert len(list(net.analog_tiles())) == 1


def perfect_inference_config():
    """InferenceRPUConfig without forward noise or quantisation: outputs are deterministic."""
    rpu = InferenceRPUConfig()
    rpu.forward.is_perfect = True
    return rpu


@pytest.mark.parametrize("rpu_config", [None, perfect_inference_config()])
def test_state_dict_round_trip(rpu_config):
    torch.manual_seed(0)
    source = SNUNetwork([5, 8, 3], output="sequence", rpu_config=rpu_config, threshold=0.3)
    target = SNUNetwork([5, 8, 3], output="sequence", rpu_config=rpu_config, threshold=0.3)
    with torch.no_grad():
        source.layers[0].threshold.add_(0.1)
    target.load_state_dict(source.state_dict())
    source.eval(), target.eval()
    x = spikes()
    torch.testing.assert_close(target(x), source(x))
    torch.testing.assert_close(target.layers[0].threshold, source.layers[0].threshold)


def test_pulsed_analog_training_lowers_loss():
    """Toy sequence task on pulsed tiles (C++ update from x and d): report the current input."""
    torch.manual_seed(0)
    rpu = SingleRPUConfig(device=ConstantStepDevice(dw_min=0.001))
    net = SNUNetwork([4, 16, 4], output="sequence", rpu_config=rpu, soft=True, threshold=0.5)
    optimizer = make_optimizer(net, "sgd", lr=5.0)
    x = torch.bernoulli(torch.full((10, 16, 4), 0.5))
    target = x
    loss_fn = torch.nn.BCEWithLogitsLoss()
    losses = []
    for _ in range(100):
        optimizer.zero_grad()
        loss = loss_fn(net(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # chance level is ln 2 = 0.693; the pulsed updates must move well below it
    assert losses[0] > 0.69
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[:5]) / 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sizes": [5, 3]}, "at least one hidden layer"),
        ({"sizes": [5, 0, 3]}, r"sizes\[1\] must be a positive int"),
        ({"sizes": [5, 8, 3], "output": "last"}, "output must be one of"),
    ],
)
def test_bad_network_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SNUNetwork(**kwargs)


def test_wrong_number_of_states():
    net = SNUNetwork([5, 8, 3])
    with pytest.raises(ConfigError, match="one \\(s, y\\) per SNU layer"):
        net(spikes(), state=[])


@pytest.mark.parametrize("cell", neuron_cell_names())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_registered_cell_builds_runs_and_trains(cell, dtype):
    """Contract over the registry: shapes, dtype, state, gradients reach the first layer."""
    torch.manual_seed(0)
    net = SNUNetwork([5, 8, 7, 3], cell=cell, output="sequence", threshold=0.2, recurrent=True).to(dtype)
    assert net.cell == cell and all(layer.cell == cell for layer in net.layers)
    x = spikes().to(dtype)
    out, states = net(x, return_state=True)
    assert out.shape == (6, 4, 3) and out.dtype == dtype
    assert [[tuple(t.shape) for t in state] for state in states] == [[(4, 8), (4, 8)], [(4, 7), (4, 7)]]
    assert all(t.dtype == dtype for state in states for t in state)
    out.sum().backward()
    assert net.layers[0].weight_ih.weight.grad.abs().sum() > 0


def test_network_cell_kwarg_and_legacy_soft():
    torch.manual_seed(0)
    legacy = SNUNetwork([5, 8, 3], soft=True)
    named = SNUNetwork([5, 8, 3], cell="ssnu")
    named.load_state_dict(legacy.state_dict())
    x = spikes()
    torch.testing.assert_close(named(x), legacy(x))
    with pytest.raises(ConfigError, match="cell must be one of"):
        SNUNetwork([5, 8, 3], cell="lstm")


def test_network_state_must_be_a_sequence():
    with pytest.raises(ConfigError, match=r"one \(s, y\) per SNU layer \(1\), got Tensor"):
        SNUNetwork([5, 8, 3])(spikes(), state=torch.zeros(4, 8))


def _reference_logits(net, x):
    """The digital network as plain torch autograd: ``F.linear`` products, ``snu_step`` per step and layer."""
    from torch.nn import functional as F

    from analog_snu.functional import SNUState, snu_step

    total = 0.0
    states = [SNUState(x.new_zeros(x.shape[1], layer.hidden_size), x.new_zeros(x.shape[1], layer.hidden_size))
              for layer in net.layers]
    for t in range(x.shape[0]):
        y = x[t]
        for i, layer in enumerate(net.layers):
            y, states[i] = snu_step(F.linear(y, layer.weight_ih.weight), states[i], layer.threshold, layer.decay,
                                    layer.g, layer.soft, layer.surrogate)
        total = total + y
    return F.linear(total / x.shape[0], net.readout.weight, net.readout.bias)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("soft", [False, True])
def test_digital_training_step_matches_plain_torch_reference(dtype, soft):
    # T * N = 256 rows of 96 -> 96 -> 96: the layer products are large enough for oneDNN in float32
    # (analog_snu.functional.linear), so this compares the fast path (batched products, fused
    # recurrence) with the per-step autograd formulas. Tolerance: float32 sums over <= 96 terms in
    # another order (measured differences <= 6e-9 on gradients of size ~1e-2, 6e-8 on logits ~0.3):
    # rtol 1e-5 with atol 1e-7; float64 1e-12.
    torch.manual_seed(3)
    net = SNUNetwork([96, 96, 96, 10], soft=soft, threshold=0.5).to(dtype)
    x = torch.bernoulli(torch.full((8, 32, 96), 0.3)).to(dtype)
    labels = torch.randint(0, 10, (32,))
    if dtype == torch.float32 and torch.backends.mkldnn.is_available():
        assert onednn_applies(x.reshape(-1, 96), net.layers[1].weight_ih.weight)
    tolerance = {"rtol": 1e-5, "atol": 1e-7} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    results = []
    for forward in (net, lambda inp: _reference_logits(net, inp)):
        net.zero_grad()
        logits = forward(x)
        torch.nn.functional.cross_entropy(logits, labels).backward()
        results.append((logits.detach(), {name: p.grad.clone() for name, p in net.named_parameters()}))
    (logits, grads), (want_logits, want_grads) = results
    if not soft:  # both layers fire, neither saturates
        for layer_rate in _rates(net, x):
            assert 0.01 < layer_rate < 0.9
    torch.testing.assert_close(logits, want_logits, **tolerance)
    assert grads.keys() == want_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], want_grads[name], **tolerance, msg=name)


def _rates(net, x):
    with torch.no_grad():
        rates, y = [], x
        for layer in net.layers:
            y, _ = layer(y)
            rates.append(float(y.mean()))
    return rates


@pytest.mark.skipif(not onednn_applies(torch.zeros(144, 128), torch.zeros(120, 128)),
                    reason="products not on oneDNN here (torch without it, or ANALOG_SNU_TORCH_GEMM=1)")
@pytest.mark.parametrize("output", ["mean", "sequence"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("batch_first", [False, True])
def test_feature_major_digital_network_matches_the_row_major_one(output, dropout, batch_first, monkeypatch):
    """The digital spiking layers store their outputs feature-major (products without copies); the
    network's outputs keep their layout, and outputs, spikes and every gradient match the row-major
    path (products through F.linear). Weights on a 1/256 grid and 0/1 inputs make every current an
    exact sum, so the spikes agree bit for bit whatever order the products sum in. Sparse spikes
    would take gather-sums (row-major outputs; tested in tests/functional/test_spike_linear.py): off here."""
    monkeypatch.setenv(DENSE_SPIKES_ENV, "1")
    torch.manual_seed(23)
    net = SNUNetwork([128, 128, 128, 10], output=output, dropout=dropout, threshold=0.4, batch_first=batch_first)
    with torch.no_grad():
        for layer in net.layers:
            layer.weight_ih.weight.copy_(torch.round(layer.weight_ih.weight * 256) / 256)
    x = torch.bernoulli(torch.full((6, 24, 128), 0.3), generator=torch.Generator().manual_seed(24))
    if batch_first:
        x = x.transpose(0, 1).contiguous()
    labels = torch.randint(0, 10, (24,), generator=torch.Generator().manual_seed(25))
    results = []
    for torch_gemm in (False, True):
        if torch_gemm:
            monkeypatch.setenv(TORCH_GEMM_ENV, "1")
        torch.manual_seed(26)  # the same dropout masks
        net.zero_grad()
        logits = net(x)
        flat, target = logits.reshape(-1, 10), labels if output == "mean" else labels.repeat(6)
        torch.nn.functional.cross_entropy(flat, target).backward()
        with torch.no_grad():
            net.eval()
            spikes, hidden = (x.transpose(0, 1) if batch_first else x), []
            for layer in net.layers:
                spikes, _ = layer(spikes)
                hidden.append(spikes)
            net.train()
        assert [is_feature_major(h) for h in hidden] == [not torch_gemm] * 2
        results.append((logits.detach(), hidden, {name: p.grad.clone() for name, p in net.named_parameters()}))
    (logits, hidden, grads), (want_logits, want_hidden, want_grads) = results
    assert logits.stride() == want_logits.stride()  # the network's output keeps its layout
    assert logits.shape == ((24, 10) if output == "mean" else ((24, 6, 10) if batch_first else (6, 24, 10)))
    for h, w in zip(hidden, want_hidden):
        assert torch.equal(h, w) and 0.02 < float(h.mean()) < 0.8
    torch.testing.assert_close(logits, want_logits, rtol=1e-5, atol=1e-6)
    for name in grads:
        torch.testing.assert_close(grads[name], want_grads[name], rtol=1e-5, atol=1e-6, msg=name)
