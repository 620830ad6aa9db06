import pytest
import torch
from torch import nn

from analog_snu.errors import ConfigError
from analog_snu.layers import SNUNetwork
from analog_snu.models import LanguageModel, ModelSpec, RecurrentNetwork, build_model, list_devices, resolve_rpu_config


def spec(**changes):
    base = dict(cell="snu", head="mean", input_size=6, hidden=[5, 4], output_size=3)
    base.update(changes)
    return ModelSpec(**base)


def test_spec_round_trips_through_json():
    import json

    original = spec(cell="ssnu", device="pcm", training="hwa", recurrent=True, decay=0.5)
    again = ModelSpec.from_dict(json.loads(json.dumps(original.to_dict())))
    assert again == original
    assert again.hidden == (5, 4)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"cell": "lif"}, r"cell must be one of \['snu', 'ssnu', 'lstm', 'gru'\], got 'lif'"),
        ({"head": "max"}, "head must be one of"),
        ({"hidden": []}, "hidden must list at least one"),
        ({"hidden": [4, 0]}, r"hidden\[1\] must be a positive int"),
        ({"device": "pcm"}, "device 'pcm' does not fit training 'digital'"),
        ({"training": "hwa"}, "device 'digital' does not fit training 'hwa'"),
        ({"cell": "lstm", "recurrent": True}, "recurrent=True is for snu/ssnu"),
        ({"tie_weights": True}, "apply to head 'language' only"),
        ({"decay": 1.5}, r"decay must be in \[0, 1\]"),
        ({"head": "language", "input_size": 10, "output_size": 9}, "must equal output_size"),
        ({"head": "language", "input_size": 10, "output_size": 10, "hidden": [8], "embedding_size": 6,
          "tie_weights": True}, r"last hidden width \(8\) to equal the embedding size \(6\)"),
    ],
)
def test_spec_errors(changes, match):
    with pytest.raises(ConfigError, match=match):
        spec(**changes)


def test_from_dict_refuses_unknown_fields():
    with pytest.raises(ConfigError, match=r"unknown model spec fields \['colour'\]"):
        ModelSpec.from_dict({**spec().to_dict(), "colour": "red"})


def test_unknown_device_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown device 'memristor'; valid devices: \['digital', 'pcm'"):
        resolve_rpu_config("memristor", "hwa")
    assert list_devices()[:2] == ["digital", "pcm"]


@pytest.mark.parametrize("cell", ["snu", "ssnu", "lstm", "gru"])
@pytest.mark.parametrize("head", ["mean", "sequence"])
def test_digital_models_have_right_output_shapes_and_types(cell, head):
    model = build_model(spec(cell=cell, head=head))
    out = model(torch.rand(7, 2, 6))
    assert out.shape == ((2, 3) if head == "mean" else (7, 2, 3))
    assert isinstance(model, SNUNetwork if cell in ("snu", "ssnu") else RecurrentNetwork)
    assert not list(model.analog_tiles())


def test_ssnu_spec_builds_soft_layers_with_given_decay():
    model = build_model(spec(cell="ssnu", decay=0.3, recurrent=True))
    assert all(layer.soft and layer.recurrent for layer in model.layers)
    assert float(model.layers[0].decay) == pytest.approx(0.3)


def test_digital_lstm_matches_torch_lstm_then_readout_of_the_time_mean():
    model = build_model(spec(cell="lstm", hidden=[5]))
    x = torch.rand(4, 2, 6)
    lstm = model.stack.layers[0]
    assert isinstance(lstm, nn.LSTM)
    expected = model.readout(lstm(x)[0].mean(0))
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize("cell", ["snu", "gru"])
@pytest.mark.parametrize("training", ["hwa", "pulsed"])
def test_pcm_models_put_every_weight_matrix_on_tiles(cell, training):
    model = build_model(spec(cell=cell, hidden=[5], device="pcm", training=training))
    # snu: W_ih + readout; gru: AnalogGRUCell's weight_ih + weight_hh + readout
    assert len(list(model.analog_tiles())) == (2 if cell == "snu" else 3)
    assert model(torch.rand(3, 2, 6)).shape == (2, 3)


def test_language_model_shapes_and_weight_tying():
    model = build_model(ModelSpec(cell="ssnu", head="language", input_size=20, hidden=[8], output_size=20,
                                  recurrent=True, tie_weights=True))
    assert isinstance(model, LanguageModel)
    assert model.decoder.weight is model.embedding.weight
    logits = model(torch.randint(0, 20, (5, 3)))
    assert logits.shape == (5, 3, 20)
    logits.sum().backward()
    assert model.embedding.weight.grad is not None


def test_language_model_is_causal():
    model = build_model(ModelSpec(cell="snu", head="language", input_size=12, hidden=[6], output_size=12,
                                  recurrent=True))
    tokens = torch.randint(0, 12, (6, 2))
    changed = tokens.clone()
    changed[4:] = (changed[4:] + 1) % 12
    torch.testing.assert_close(model(tokens)[:4], model(changed)[:4])


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"device": ""}, "device must be 'digital' or a device preset name"),
        ({"head": "language", "input_size": 9, "output_size": 9, "embedding_size": -1}, "embedding_size must be >= 0"),
        ({"input_size": 0}, "input_size must be a positive int, got 0"),
    ],
)
def test_more_spec_errors(changes, match):
    with pytest.raises(ConfigError, match=match):
        spec(**changes)


def test_from_dict_needs_a_dict():
    with pytest.raises(ConfigError, match="a model spec must be a dict, got list"):
        ModelSpec.from_dict([])


def test_device_and_training_must_fit_in_resolution():
    with pytest.raises(ConfigError, match="training 'digital' needs device 'digital', got device 'pcm'"):
        resolve_rpu_config("pcm", "digital")
    with pytest.raises(ConfigError, match="training 'hwa' needs a PCM device"):
        resolve_rpu_config("digital", "hwa")
    with pytest.raises(ConfigError, match=r"training must be one of \['digital', 'hwa', 'pulsed'\], got 'quantum'"):
        resolve_rpu_config("pcm", "quantum")


def test_analog_rnn_refuses_other_cells():
    from analog_snu.tiles import analog_rnn, pcm_hwa_rpu_config

    with pytest.raises(ConfigError, match=r"analog RNN cell must be one of \['gru', 'lstm'\], got 'rnn'"):
        analog_rnn("rnn", 3, 4, pcm_hwa_rpu_config())
