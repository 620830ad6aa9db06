import pytest
import torch
from torch import nn

from analog_snu.errors import ConfigError
from analog_snu.models import LanguageModel, ModelSpec, RecurrentNetwork, SNUNetwork, build_model
from analog_snu.pcm import preset
from analog_snu.tiles import device_rpu_config


def spec(**changes):
    base = dict(cell="snu", head="mean", input_size=6, layers=[5, 4], output_size=3)
    base.update(changes)
    return ModelSpec(**base)


def test_spec_round_trips_through_json():
    import json

    original = spec(cell="ssnu", device=preset("pcm_joshi2020"), training="hwa", tile_kind="hwa", recurrent=True, decay=0.5)
    again = ModelSpec.from_dict(json.loads(json.dumps(original.to_dict())))
    assert again == original
    assert again.hidden == (5, 4)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"cell": "lif"}, r"cell: unknown cell 'lif'; valid cells: \['snu', 'ssnu', 'snu_li', 'lstm', 'gru'\]"),
        ({"head": "max"}, r"head: Input should be 'mean', 'sequence' or 'language'"),
        ({"layers": []}, r"layers: List should have at least 1 item"),
        ({"layers": [4, 0]}, r"layers\[1\]: Input should be greater than 0"),
        ({"layers": [4.0]}, r"layers\[0\]: Input should be a valid integer"),
        ({"device": preset("pcm")}, r"training 'digital' does not fit a PCM device"),
        ({"training": "hwa"}, r"training 'hwa' does not fit a digital model"),
        ({"cell": "lstm", "recurrent": True}, "recurrent is for spiking cells; lstm is recurrent already"),
        ({"tie_weights": True}, "apply to head 'language' only"),
        ({"decay": 1.5}, r"decay: Input should be less than or equal to 1"),
        ({"recurrent": "false"}, r"recurrent: Input should be a valid boolean"),
        ({"head": "language", "input_size": 10, "output_size": 9}, "must equal output_size"),
        ({"head": "language", "input_size": 10, "output_size": 10, "layers": [8], "embedding_size": 6,
          "tie_weights": True}, r"last hidden width \(8\) to equal the embedding size \(6\)"),
    ],
)
def test_spec_errors(changes, match):
    with pytest.raises(ConfigError, match=match):
        spec(**changes)


def test_from_dict_refuses_unknown_fields():
    with pytest.raises(ConfigError, match=r"unknown key 'colour'; valid keys of ModelSpec: \['cell', 'layers'"):
        ModelSpec.from_dict({**spec().to_dict(), "colour": "red"})


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
    model = build_model(spec(cell="lstm", layers=[5]))
    x = torch.rand(4, 2, 6)
    lstm = model.stack.layers[0]
    assert isinstance(lstm, nn.LSTM)
    expected = model.readout(lstm(x)[0].mean(0))
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize("cell", ["snu", "gru"])
@pytest.mark.parametrize("training", ["hwa", "pulsed"])
def test_pcm_models_put_every_weight_matrix_on_tiles(cell, training):
    model = build_model(spec(cell=cell, layers=[5], device=preset("pcm"), training=training, tile_kind=training))
    # snu: W_ih + readout; gru: AnalogGRUCell's weight_ih + weight_hh + readout
    assert len(list(model.analog_tiles())) == (2 if cell == "snu" else 3)
    assert model(torch.rand(3, 2, 6)).shape == (2, 3)


def test_language_model_shapes_and_weight_tying():
    model = build_model(ModelSpec(cell="ssnu", head="language", input_size=20, layers=[8], output_size=20,
                                  recurrent=True, tie_weights=True))
    assert isinstance(model, LanguageModel)
    assert model.decoder.weight is model.embedding.weight
    logits = model(torch.randint(0, 20, (5, 3)))
    assert logits.shape == (5, 3, 20)
    logits.sum().backward()
    assert model.embedding.weight.grad is not None


def test_language_model_is_causal():
    model = build_model(ModelSpec(cell="snu", head="language", input_size=12, layers=[6], output_size=12,
                                  recurrent=True))
    tokens = torch.randint(0, 12, (6, 2))
    changed = tokens.clone()
    changed[4:] = (changed[4:] + 1) % 12
    torch.testing.assert_close(model(tokens)[:4], model(changed)[:4])


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"device": "pcm_joshi2020"}, r"device: expected a table/dict of fields \(got 'pcm_joshi2020'\)"),
        ({"head": "language", "input_size": 9, "output_size": 9, "embedding_size": -1},
         r"embedding_size: Input should be greater than or equal to 0"),
        ({"input_size": 0}, r"input_size: Input should be greater than 0 \(got 0\)"),
    ],
)
def test_more_spec_errors(changes, match):
    with pytest.raises(ConfigError, match=match):
        spec(**changes)


def test_from_dict_needs_a_dict():
    with pytest.raises(ConfigError, match=r"ModelSpec: expected a table/dict of fields \(got \[\]\)"):
        ModelSpec.from_dict([])


def test_analog_rnn_refuses_other_cells():
    from analog_snu.tiles import analog_rnn

    with pytest.raises(ConfigError, match=r"analog RNN cell must be one of \['gru', 'lstm'\], got 'rnn'"):
        analog_rnn("rnn", 3, 4, device_rpu_config(preset("pcm"), "hwa"))


def test_conv_channels_build_a_convolutional_snu_whose_tiles_are_counted():
    from analog_snu.hardware import device_count
    from analog_snu.models import ConvSNUNetwork

    conv = spec(input_size=64, layers=[16], output_size=10, conv_channels=[4], conv_kernel=3,
                device=preset("pcm_joshi2020"), training="hwa", tile_kind="hwa")
    model = build_model(conv)
    assert isinstance(model, ConvSNUNetwork)
    counts = device_count(model)
    # 2 devices per weight: conv 4 x (1 x 3 x 3); dense 4 x 3 x 3 (6x6 map pooled to 3x3) -> 16; readout 16 -> 10
    assert counts["convs.0.weight_ih"] == 2 * 4 * 9
    assert counts["dense.0.weight_ih"] == 2 * 36 * 16 and counts["readout"] == 2 * 16 * 10
    assert model(torch.bernoulli(torch.full((5, 2, 64), 0.3))).shape == (2, 10)
    with pytest.raises(ConfigError, match=r"conv_channels need a spiking cell and square single-channel images"):
        spec(input_size=60, conv_channels=[4])


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"tile_kind": "hwa"}, r"tile_kind 'hwa' does not fit training 'digital'; valid tile kinds: \['digital'\]"),
        ({"tile_kind": "inference"}, r"tile_kind 'inference' does not fit training 'digital'; valid tile kinds: "
                                     r"\['digital'\]"),
        ({"device": preset("pcm"), "training": "hwa"},
         r"tile_kind 'digital' does not fit training 'hwa'; valid tile kinds: \['hwa', 'inference'\]"),
        ({"device": preset("pcm"), "training": "hwa", "tile_kind": "pulsed"}, r"tile_kind 'pulsed' does not fit"),
        ({"device": preset("pcm"), "training": "hil", "tile_kind": "hwa"},
         r"tile_kind 'hwa' does not fit training 'hil'; valid tile kinds: \['inference'\]"),
        ({"tile_kind": "optical"}, r"tile_kind: Input should be 'digital', 'hwa', 'pulsed' or 'inference'"),
    ],
)
def test_tile_kind_must_fit_the_training_mode_and_the_device(changes, match):
    with pytest.raises(ConfigError, match=match):
        spec(**changes)


@pytest.mark.parametrize(("training", "tile_kind", "expected"), [
    ("hwa", "hwa", ["inference"] * 3),  # aihwkit's HWA tiles are inference tiles that train with noise
    ("pulsed", "pulsed", ["pulsed"] * 3),
    ("pulsed", "inference", ["inference"] * 3),
    ("hil", "inference", ["inference"] * 3),
])
def test_the_tiles_are_those_of_the_spec_tile_kind(training, tile_kind, expected):
    from analog_snu.tiles import crossbars

    model = build_model(spec(device=preset("pcm"), training=training, tile_kind=tile_kind))
    bars = crossbars(model)
    assert [bar.kind for bar in bars] == expected
    assert [bar.has_training_noise for bar in bars] == [tile_kind == "hwa"] * 3


def test_stored_specs_without_a_tile_kind_get_their_training_mode_s():
    from analog_snu.models import upgrade_stored_spec

    new = spec(device=preset("pcm"), training="pulsed", tile_kind="pulsed").to_dict()
    old = {key: value for key, value in new.items() if key != "tile_kind"}
    assert upgrade_stored_spec(old) == new
    for training, kind in [("digital", "digital"), ("hwa", "hwa"), ("pulsed", "pulsed"), ("hil", "inference")]:
        assert upgrade_stored_spec({"training": training})["tile_kind"] == kind
    assert upgrade_stored_spec({})["tile_kind"] == "digital"  # training's default
    deployed = {**new, "tile_kind": "inference"}
    assert upgrade_stored_spec(deployed) is deployed  # a spec that has one keeps it
    assert upgrade_stored_spec({"training": "sideways"}) == {"training": "sideways"}  # left for validation to refuse
    assert upgrade_stored_spec([]) == []
