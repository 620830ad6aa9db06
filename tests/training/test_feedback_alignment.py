"""FA / DFA (with and without GRAPES) against references written from the rules, on an MLP, a CNN and an SNU."""

import copy
import math

import numpy as np
import pytest
import torch
from aihwkit.simulator.configs import FloatingPointRPUConfig
from torch import nn

from analog_snu import MLP, SNUNetwork
from analog_snu.errors import CheckpointError, ConfigError, ShapeError
from analog_snu.training import Backprop, train_epoch
from analog_snu.training.feedback_alignment import FeedbackAlignment, fanout_modulation, make_learning_rule

# ---------------------------------------------------------------- numpy reference (column-vector form as IBM's code)


def np_forward(weights, x):
    """ReLU MLP without biases; returns pre-activations a_l and inputs x_l of each layer, per sample rows."""
    inputs, pre = [], []
    h = x
    for k, w in enumerate(weights):
        inputs.append(h)
        a = h @ w.T
        pre.append(a)
        h = np.maximum(a, 0) if k < len(weights) - 1 else a
    return inputs, pre


def np_error(z, labels):
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(z.shape[1])[labels]
    return (p - onehot) / z.shape[0]  # dL/dz of the mean cross-entropy


def np_factors(w, clip):
    importance = np.abs(w).sum(1)
    m = 2 * importance / importance.max()
    return np.clip(m, 1, 2) if clip else m


def np_rule(weights, feedback, x, labels, rule, clip=False):
    """dL/dW_l under BP/FA/DFA (+grapes) for a bias-free ReLU MLP, following the reference's delta rules.

    ``feedback[k]`` is B_k (shape of W_k) for FA, D_k (C, F_in) for DFA, for k = 1 … L-1.
    """
    inputs, pre = np_forward(weights, x)
    e = np_error(pre[-1], labels)
    L = len(weights)
    deltas = [None] * L
    deltas[-1] = e
    for l in range(L - 2, -1, -1):
        fprime = (pre[l] > 0).astype(float)
        if rule.startswith("BP"):
            back = deltas[l + 1] @ weights[l + 1]
        elif rule.startswith("FA"):
            back = deltas[l + 1] @ feedback[l + 1]
        else:
            back = e @ feedback[l + 1]
        if rule in ("BPgrapes", "FAgrapes"):
            back = back * np_factors(weights[l], clip)
        deltas[l] = back * fprime
    grads = [deltas[l].T @ inputs[l] for l in range(L)]
    if rule == "DFAgrapes":
        # the reference, literally: delta_a = (w_pre_sum[l+1].T * B_{l+1} @ e) * d_act(a_l) * w_pre_sum[l]
        # (a (F_out, F_in) matrix by broadcasting), per sample; dW = delta_a * x^T; layer 0 plain DFA.
        def pre_sum(w):
            s = np.abs(w).sum(0)
            return 2 * s / s.max()

        for l in range(1, L - 1):
            row = pre_sum(weights[l + 1]) if l + 1 < L - 1 else np.ones(weights[l].shape[0])
            total = np.zeros_like(weights[l])
            for n in range(x.shape[0]):
                b_e = feedback[l + 1].T @ e[n][:, None]  # (F_out_l, 1)
                delta_a = (row[:, None] * b_e) * (pre[l][n][:, None] > 0) * pre_sum(weights[l])[None, :]
                total += delta_a * inputs[l][n][None, :]
            grads[l] = total
    return grads


def mlp_case(sizes=(4, 5, 6, 3), seed=3):
    torch.manual_seed(seed)
    model = MLP(list(sizes), bias=False).double()
    x = torch.randn(7, sizes[0], dtype=torch.float64)
    labels = torch.randint(0, sizes[-1], (7,))
    return model, x, labels


def run_rule(model, x, labels, rule):
    model.zero_grad()
    rule.begin_batch()
    nn.functional.cross_entropy(model(x), labels).backward()
    rule.before_step()
    return [m.weight.grad.clone() for m in list(model.hidden) + [model.readout]]


@pytest.mark.parametrize("name", ["BP", "BPgrapes", "FA", "FAgrapes", "DFA", "DFAgrapes"])
@pytest.mark.parametrize("sizes", [(4, 5, 6, 3), (4, 5, 6, 7, 3)])
def test_mlp_rules_match_numpy_reference(name, sizes):
    model, x, labels = mlp_case(sizes)
    rule = make_learning_rule(model, name, seed=11)
    weights = [m.weight.detach().numpy().copy() for m in list(model.hidden) + [model.readout]]
    fa = getattr(rule, "feedback", None)  # BP: a Backprop, no feedback part
    feedback = [None] + [b.double().numpy() for b in fa.matrices] if fa else None
    expected = np_rule(weights, feedback, x.numpy(), labels.numpy(), name, clip=(name == "BPgrapes"))
    got = run_rule(model, x, labels, rule)
    for k, (g, e) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-9, atol=1e-12, err_msg=f"{name} layer {k}")
    if name != "BP":  # not vacuous: differs from backprop on some hidden layer
        bp = np_rule(weights, None, x.numpy(), labels.numpy(), "BP")
        assert any(not np.allclose(g.numpy(), b) for g, b in zip(got[:-1], bp[:-1]))


def test_fa_shapes_seed_and_he_uniform_statistics():
    model = MLP([300, 400, 200, 10], bias=False)
    a = FeedbackAlignment(model, "fa", seed=4).matrices
    b = FeedbackAlignment(MLP([300, 400, 200, 10]), "fa", seed=4).matrices
    c = FeedbackAlignment(model, "fa", seed=5).matrices
    assert [m.shape for m in a] == [(200, 400), (10, 200)]
    assert all(torch.equal(p, q) for p, q in zip(a, b)) and not torch.equal(a[0], c[0])
    limit = math.sqrt(6 / 400)  # he_uniform: U(+-sqrt(6 / fan_in))
    assert a[0].abs().max() <= limit and a[0].abs().max() > 0.99 * limit
    assert abs(a[0].std().item() - limit / math.sqrt(3)) < 0.01 * limit  # 80k draws
    assert abs(a[0].mean().item()) < 0.01 * limit
    nok = FeedbackAlignment(model, "fa", seed=4, init="nokland").matrices[0]
    assert nok.abs().max() <= 1 / math.sqrt(200) and nok.abs().max() > 0.99 / math.sqrt(200)
    dfa = FeedbackAlignment(model, "dfa", seed=4).matrices
    assert [m.shape for m in dfa] == [(10, 400), (10, 200)]
    assert dfa[0].abs().max() <= math.sqrt(6 / 400)


def test_feedback_state_round_trip_and_remove():
    model, x, labels = mlp_case()
    rule = make_learning_rule(model, "FA", seed=1)
    state = rule.state_dict()
    assert sorted(state) == ["hidden.1", "readout"]
    fa_grads = run_rule(model, x, labels, rule)
    rule.remove()
    other = make_learning_rule(model, "FA", seed=99)
    assert not torch.equal(other.state_dict()["readout"], state["readout"])
    other.load_state_dict(state)
    torch.testing.assert_close(run_rule(model, x, labels, other), fa_grads)
    other.remove()
    bp = make_learning_rule(model, "BP")
    assert bp.state_dict() == {}
    bp_grads = run_rule(model, x, labels, bp)
    assert not torch.allclose(bp_grads[0], fa_grads[0])


def test_train_epoch_runs_a_rule():
    model, x, labels = mlp_case()
    twin = copy.deepcopy(model)  # copied before any hook is attached
    expected = run_rule(twin, x, labels, make_learning_rule(twin, "DFA", seed=2))
    rule = make_learning_rule(model, "DFAgrapes", seed=2)
    before = model.hidden[0].weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    train_epoch(model, [(x, labels)], optimizer, nn.functional.cross_entropy, rule=rule, progress=False)
    # layer 0 gets plain DFA in DFAgrapes
    torch.testing.assert_close(model.hidden[0].weight.detach() - before, -0.5 * expected[0])


# ---------------------------------------------------------------- CNN


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, bias=False)
        self.conv2 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.out = nn.Linear(4 * 4 * 4, 3, bias=False)

    def forward(self, x):
        h = self.conv2(self.conv1(x).relu()).relu()
        return self.out(h.flatten(1))


def cnn_reference(model, x, labels, rule, feedback=None, clip=False):
    """Layer-by-layer deltas written from the rules with explicit conv algebra (no hooks)."""
    w1, w2, w3 = (m.weight.detach() for m in (model.conv1, model.conv2, model.out))
    a1 = nn.functional.conv2d(x, w1)
    h1 = a1.relu()
    a2 = nn.functional.conv2d(h1, w2, padding=1)
    h2 = a2.relu()
    z = h2.flatten(1) @ w3.T
    e = (z.softmax(-1) - nn.functional.one_hot(labels, 3)) / x.shape[0]

    def m(w):
        i = w.abs().flatten(1).sum(1)
        return (2 * i / i.max()).clamp(1, 2) if clip else 2 * i / i.max()

    if rule.startswith("DFA"):
        back2 = (e @ feedback[2]).reshape(h2.shape)
    else:
        back2 = (e @ (w3 if rule.startswith("BP") else feedback[2])).reshape(h2.shape)
    if rule.endswith("grapes") and not rule.startswith("DFA"):
        back2 = back2 * m(w2)[None, :, None, None]
    d2 = back2 * (a2 > 0)
    if rule.startswith("DFA"):
        back1 = (e @ feedback[1]).reshape(h1.shape)
    else:
        kernel = w2 if rule.startswith("BP") else feedback[1]
        back1 = nn.functional.conv_transpose2d(d2, kernel, padding=1)
    if rule.endswith("grapes") and not rule.startswith("DFA"):
        back1 = back1 * m(w1)[None, :, None, None]
    d1 = back1 * (a1 > 0)

    def wgrad(inp, delta, shape, padding):
        w = torch.zeros(shape, dtype=inp.dtype, requires_grad=True)
        (nn.functional.conv2d(inp, w, padding=padding) * delta).sum().backward()
        return w.grad

    g1 = wgrad(x, d1, w1.shape, 0)
    g2 = wgrad(h1, d2, w2.shape, 1)
    if rule == "DFAgrapes":  # top hidden layer (conv2): row ones, columns = fan-out of conv2 per input channel
        p = w2.abs().sum((0, 2, 3))
        g2 = g2 * (2 * p / p.max())[None, :, None, None]
    return [g1, g2, e.T @ h2.flatten(1)]


@pytest.mark.parametrize("name", ["BP", "BPgrapes", "FA", "FAgrapes", "DFA", "DFAgrapes"])
def test_cnn_rules_match_reference(name):
    torch.manual_seed(0)
    model = SmallCNN().double()
    x = torch.rand(5, 1, 6, 6, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 1, 0])
    rule = make_learning_rule(model, name, seed=3)
    model.zero_grad()
    rule.begin_batch()
    nn.functional.cross_entropy(model(x), labels).backward()
    rule.before_step()
    fa = getattr(rule, "feedback", None)  # BP: a Backprop, no feedback part
    feedback = [None] + [b.double() for b in fa.matrices] if fa else None
    if name.startswith("DFA"):
        assert [tuple(b.shape) for b in feedback[1:]] == [(3, 3 * 4 * 4), (3, 64)]
    expected = cnn_reference(model, x, labels, name, feedback, clip=(name == "BPgrapes"))
    for k, (m, e) in enumerate(zip((model.conv1, model.conv2, model.out), expected)):
        torch.testing.assert_close(m.weight.grad, e, msg=f"{name} layer {k}")


def test_conv_grapes_factor_is_per_output_channel():
    conv = nn.Conv2d(2, 3, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0,
                                        0.25, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                                        -2.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]).reshape(3, 2, 2, 2))
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(3, 2))
    from analog_snu.training import GRAPES

    # I_c = [2.5, 0.5, 3] -> 2 I / 3 = [5/3, 1/3, 2]; clipped [5/3, 1, 2]
    torch.testing.assert_close(GRAPES(model, clip=False).compute_factors()[0], torch.tensor([5 / 3, 1 / 3, 2.0]))
    torch.testing.assert_close(GRAPES(model).compute_factors()[0], torch.tensor([5 / 3, 1.0, 2.0]))
    # fan-out importance of the conv's inputs, per input channel: [2.5 + 0.5 + 2, 1] = [5, 1] -> 2 P / 5
    torch.testing.assert_close(fanout_modulation(conv), torch.tensor([2.0, 0.4]))


# ---------------------------------------------------------------- SNU network


def fa_linear(x, w, b):
    """x W^T in the forward; the error reaches x through B instead of W; W learns from x."""
    return x.detach() @ w.T + (x @ b.T - (x @ b.T).detach())


def manual_snu(net, x, feedback, rule, e=None):
    """Unrolled sSNU network (feed-forward) written out here with FA/DFA feedback at each layer input."""
    steps, batch, _ = x.shape
    states = [(x.new_zeros(batch, l.hidden_size),) * 2 for l in net.layers]
    total, extra = 0.0, 0.0
    for t in range(steps):
        inp = x[t]
        for k, layer in enumerate(net.layers):
            w = layer.weight_ih.weight
            if k == 0 or rule == "BP":
                current = inp @ w.T
            elif rule == "FA":
                current = fa_linear(inp, w, feedback[k])
            else:
                current = inp.detach() @ w.T
                extra = extra + (inp * (e @ feedback[k]).detach()).sum()
            s_prev, y_prev = states[k]
            s = (current + layer.decay * s_prev * (1 - y_prev)).relu()
            y = torch.sigmoid(s - layer.threshold)
            states[k] = (s, y)
            inp = y
        total = total + inp
    mean = total / steps
    if rule == "FA":
        return net.readout.bias + fa_linear(mean, net.readout.weight, feedback[-1]), extra
    if rule == "DFA":
        top = (mean * (e @ feedback[-1]).detach()).sum()
        return mean.detach() @ net.readout.weight.T + net.readout.bias, extra + top
    return net.readout(mean), extra


@pytest.mark.parametrize("name", ["FA", "DFA"])
def test_snu_network_fa_dfa_match_manual_unroll(name):
    torch.manual_seed(5)
    net = SNUNetwork([4, 6, 5, 3], soft=True, threshold=0.3, decay=0.7).double()
    x = torch.bernoulli(torch.full((6, 3, 4), 0.5, dtype=torch.float64))
    labels = torch.tensor([0, 2, 1])
    reference = copy.deepcopy(net)  # copied before any hook is attached
    rule = make_learning_rule(net, name, seed=7)
    feedback = [None] + [b.double() for b in rule.feedback.matrices]
    rule_ref_e = None
    if name == "DFA":
        with torch.no_grad():
            z = reference(x)
        rule_ref_e = (z.softmax(-1) - nn.functional.one_hot(labels, 3)) / 3
    out, extra = manual_snu(reference, x, feedback, name, rule_ref_e)
    (nn.functional.cross_entropy(out, labels) + extra).backward()
    net.zero_grad()
    rule.begin_batch()
    nn.functional.cross_entropy(net(x), labels).backward()
    rule.before_step()
    for (pname, p), q in zip(net.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=pname)


def test_snu_fagrapes_top_layer_is_fa_times_its_factor():
    torch.manual_seed(6)
    net = SNUNetwork([4, 6, 5, 3], soft=True, threshold=0.3).double()
    twin = copy.deepcopy(net)
    x = torch.bernoulli(torch.full((5, 2, 4), 0.5, dtype=torch.float64))
    labels = torch.tensor([1, 2])
    w = net.layers[1].weight_ih.weight.detach()
    m = 2 * w.abs().sum(1) / w.abs().sum(1).max()  # FAgrapes: unclipped, as in the reference
    grads = []
    for model, name in ((twin, "FA"), (net, "FAgrapes")):
        rule = make_learning_rule(model, name, seed=1)
        rule.begin_batch()
        nn.functional.cross_entropy(model(x), labels).backward()
        rule.before_step()
        grads.append(model.layers[1].weight_ih.weight.grad.clone())
    # the error at the top hidden layer's spikes is B e scaled per neuron by M: its weight rows scale by M
    torch.testing.assert_close(grads[1], m[:, None] * grads[0])
    assert not torch.allclose(grads[1], grads[0])


# ---------------------------------------------------------------- errors


class _Lstm(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 2)
        self.rnn = nn.LSTM(2, 2)
        self.b = nn.Linear(2, 2)


class _TwoHiddenOneOut(nn.Module):
    """Dense layers 2 -> 3 -> 3 and an output layer 3 -> 2; the subclasses' forwards misuse them."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 3)
        self.b = nn.Linear(3, 3)
        self.out = nn.Linear(3, 2)


class _Truncated(_TwoHiddenOneOut):
    """Registers an output layer the forward never uses."""

    def forward(self, x):
        return self.b(self.a(x).relu())


class _FewerRows(_TwoHiddenOneOut):
    """The output layer sees fewer rows than the layers below it."""

    def forward(self, x):
        h = self.b(self.a(x).relu()).relu()
        return self.out(h[:2])


class _ConvOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 2)
        self.c = nn.Conv2d(1, 1, 1)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: make_learning_rule(MLP([2, 3, 2]), "EP"), ConfigError, r"rule must be one of \['BP', 'BPgrapes'"),
        (lambda: make_learning_rule(MLP([2, 3, 2]), "BPgrapes", clip=1), ConfigError, "clip must be a bool or None"),
        (lambda: FeedbackAlignment(MLP([2, 3, 2]), "ifa"), ConfigError, r"rule must be one of \['fa', 'dfa'\]"),
        (lambda: FeedbackAlignment(MLP([2, 3, 2]), init="xavier"), ConfigError, r"init must be one of \['he_uniform'"),
        (lambda: FeedbackAlignment(MLP([2, 3, 2]), seed=-1), ConfigError, "seed must be a non-negative int, got -1"),
        (lambda: FeedbackAlignment(nn.Sequential(nn.Linear(2, 2)), "fa"), ConfigError, "at least two dense/conv/SNU"),
        (lambda: FeedbackAlignment(nn.Linear(2, 2)), ConfigError, "got a single Linear"),
        (lambda: FeedbackAlignment(_Lstm()), ConfigError, r"module 'rnn' \(LSTM\) has trainable parameters"),
        (lambda: make_learning_rule(_Lstm(), "BPgrapes"), ConfigError, r"'rnn' \(LSTM\)"),
        (lambda: make_learning_rule(MLP([2, 3, 4, 2], rpu_config=FloatingPointRPUConfig()), "DFAgrapes"), ConfigError,
         "DFAgrapes scales weight-gradient columns, which analog tiles do not expose"),
        (lambda: FeedbackAlignment(_ConvOut(), "dfa"), ConfigError, "DFA needs a dense output layer"),
        (lambda: make_learning_rule(MLP([2, 3, 2]), "DFAgrapes", clip="no"), ConfigError, "clip must be a bool"),
    ],
)
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bp_accepts_any_model():
    rule = make_learning_rule(_Lstm(), "BP")
    assert isinstance(rule, Backprop) and rule.state_dict() == {}


def test_feedback_state_errors():
    rule = make_learning_rule(MLP([2, 3, 4, 2]), "FA")
    with pytest.raises(CheckpointError, match=r"must hold exactly the matrices \['hidden.1', 'readout'\], got \['x'\]"):
        rule.load_state_dict({"x": torch.zeros(1)})
    state = rule.state_dict()
    state["readout"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError, match=r"'readout' must have shape \(2, 4\), got \(3, 3\)"):
        rule.load_state_dict(state)
    with pytest.raises(CheckpointError, match=r"rule BP has no state to restore, got \['a'\]"):
        make_learning_rule(MLP([2, 3, 2]), "BP").load_state_dict({"a": torch.zeros(1)})
    cnn = SmallCNN()
    dfa = FeedbackAlignment(cnn, "dfa")
    with pytest.raises(CheckpointError, match=r"convolution inputs \['conv2'\] are drawn at the first training forward"):
        dfa.state_dict()
    nn.functional.cross_entropy(cnn(torch.rand(2, 1, 6, 6)), torch.tensor([0, 1])).backward()
    assert dfa.state_dict()["conv2"].shape == (3, 3 * 4 * 4)


def test_dfa_backward_errors():
    truncated = _Truncated()
    FeedbackAlignment(truncated, "dfa")
    with pytest.raises(ConfigError, match="the output layer received no error"):
        truncated(torch.rand(3, 2)).sum().backward()
    fewer = _FewerRows()
    FeedbackAlignment(fewer, "dfa")
    with pytest.raises(ShapeError, match=r"layer input 'b' has 3 rows, not a multiple of the output's 2 rows"):
        fewer(torch.rand(3, 2)).sum().backward()


def test_dfagrapes_errors():
    class Reshaped(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 3)
            self.b = nn.Linear(3, 4)
            self.c = nn.Linear(2, 5)  # reads 2 inputs from a layer of 4 nodes
            self.out = nn.Linear(5, 2)

    rule = make_learning_rule(Reshaped(), "DFAgrapes")
    with pytest.raises(ConfigError, match="reads 2 inputs from a layer of 4 nodes"):
        rule.begin_batch()
    grouped = nn.Sequential(nn.Conv2d(2, 2, 1), nn.Conv2d(2, 2, 1, groups=2), nn.Conv2d(2, 2, 1), nn.Flatten())
    with pytest.raises(ConfigError, match="groups=1 only"):
        fanout_modulation(grouped[1])


def test_dfa_with_local_grapes_is_refused_not_run_as_the_other_variant():
    with pytest.raises(ConfigError, match=r"^grapes_variant='local' does not apply to DFAgrapes: .* use "
                                          r"grapes_variant='propagating'$"):
        make_learning_rule(MLP([2, 3, 4, 2]), "DFAgrapes", grapes_variant="local")
    assert make_learning_rule(MLP([2, 3, 4, 2]), "DFAgrapes").name == "DFAgrapes"


def test_fa_with_grapes_by_hand_is_documented_against_ibms_fagrapes():
    """IBM's FAgrapes does not clip; GRAPES(model) does (as BPgrapes): where the two are combined
    by hand, both docstrings say to pass clip=False, and make_learning_rule does it."""
    from analog_snu.training import GRAPES

    for doc in (GRAPES.__doc__, FeedbackAlignment.__doc__):
        text = " ".join(doc.split())
        assert "FAgrapes" in text and "clip=False" in text and "make_learning_rule(model, \"FAgrapes\")" in text
    rule = make_learning_rule(MLP([2, 3, 4, 2]), "FAgrapes")
    (grapes,) = [part for part in rule.parts if isinstance(part, GRAPES)]
    assert grapes.clip is False
