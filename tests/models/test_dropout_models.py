"""model.dropout reaches every network build_model makes; LSTM/GRU stacks mask per sequence."""

import pytest
import torch

from analog_snu.errors import ConfigError
from analog_snu.models import ModelSpec, build_model


def spec(**changes):
    base = dict(cell="snu", head="mean", input_size=16, layers=[12, 12], output_size=3, dropout=0.5)
    base.update(changes)
    return ModelSpec(**base)


@pytest.mark.parametrize(
    "changes, holder",
    [
        ({}, lambda m: m),  # SNUNetwork
        ({"conv_channels": [2], "conv_kernel": 3}, lambda m: m),  # ConvSNUNetwork
        ({"cell": "lstm"}, lambda m: m.stack),  # RecurrentNetwork -> HiddenStack
        ({"cell": "gru", "head": "sequence"}, lambda m: m.stack),
        ({"head": "language", "output_size": 16}, lambda m: m.stack),  # LanguageModel
        ({"cell": "lstm", "head": "language", "output_size": 16}, lambda m: m.stack),
    ],
)
def test_build_model_passes_dropout(changes, holder):
    assert holder(build_model(spec(**changes))).dropout == 0.5
    assert holder(build_model(spec(**{**changes, "dropout": 0.0}))).dropout == 0.0


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_baseline_drops_the_same_units_at_every_step(cell):
    model = build_model(spec(cell=cell, head="sequence")).train()
    seen = []
    handle = model.readout.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    model(torch.rand(7, 20, 16))
    handle.remove()
    received = seen[0].reshape(7, 20, 12)
    zeros = received == 0  # LSTM/GRU outputs are never exactly 0: the zeros are the mask
    assert torch.equal(zeros, zeros[:1].expand_as(zeros))
    fraction = zeros[0].float().mean().item()
    assert abs(fraction - 0.5) < 5 * (0.25 / zeros[0].numel()) ** 0.5


def test_language_model_eval_is_bit_equal_to_no_dropout():
    torch.manual_seed(2)
    dropped = build_model(spec(head="language", output_size=16, cell="gru"))
    plain = build_model(spec(head="language", output_size=16, cell="gru", dropout=0.0))
    plain.load_state_dict(dropped.state_dict())
    tokens = torch.randint(0, 16, (6, 3))
    assert torch.equal(dropped.eval()(tokens), plain.eval()(tokens))
    assert not torch.equal(dropped.train()(tokens), plain(tokens))


@pytest.mark.parametrize(
    "value, match",
    [
        (1.0, r"dropout: Input should be less than 1 \(got 1.0\)"),
        (-0.1, r"dropout: Input should be greater than or equal to 0"),
        (float("nan"), r"dropout: Input should be a finite number"),
        (True, r"dropout: Input should be a valid number \(got True\)"),
        ("0.5", r"dropout: Input should be a valid number"),
    ],
)
def test_spec_refuses_bad_dropout(value, match):
    with pytest.raises(ConfigError, match=match):
        spec(dropout=value)


def test_a_spec_without_the_key_loads_with_dropout_off():
    stored = spec().to_dict()
    del stored["dropout"]  # a checkpoint written before the field existed
    assert ModelSpec.from_dict(stored).dropout == 0.0
