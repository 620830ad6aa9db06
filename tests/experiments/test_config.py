"""The run config: strict types, task defaults, flags/TOML/--set sources and round trips."""

import dataclasses
import tomllib

import pytest
import tomli_w
import torch

from analog_snu.cli import build_parser
from analog_snu.cli.config_flags import config_from_args
from analog_snu.errors import ConfigError
from analog_snu.experiments import FLAG_PATHS, RunConfig, build_config, parse_set
from analog_snu.experiments.config import config_differences, flatten, spec_for
from analog_snu.experiments.sources import to_toml
from analog_snu.functional import (
    SURROGATES,
    CellDef,
    SNUParameters,
    SNUState,
    neuron_cell,
    neuron_cell_names,
    register_cell,
    snu_step,
)
from analog_snu.functional import cells as cells_module
from analog_snu.models import build_model, cell_options_of
from analog_snu.pcm import preset


def test_task_defaults_make_the_stored_config_explicit():
    config = build_config(flags={"task": "digits"})
    assert config.model.layers == [128] and config.training.lr == 5e-3 and config.task.batch_size == 32
    assert config.task.rate == 10.0 and config.training.epochs == 15  # the demo's settings
    assert config.device is None and config.training.mode == "digital"
    mnist = build_config(flags={"task": "mnist", "lr": 0.01})
    assert mnist.model.layers == [256, 256] and mnist.training.lr == 0.01 and mnist.task.rate == 6.0


@pytest.mark.parametrize(
    ("toml_text", "message"),
    [
        ('recurrent = "false"', r"model.recurrent: Input should be a valid boolean"),
        ('layers = "16"', r"model.layers: Input should be a valid list"),
        ("layers = [16.7]", r"model.layers\[0\]: Input should be a valid integer"),
        ("lr = true", r"training.lr: Input should be a valid number"),
        ('epochs = "3"', r"training.epochs: Input should be a valid integer"),
        ("epochs = 0", r"training.epochs: Input should be greater than 0"),
        ("steps = 516111", r"task.steps: Input should be less than or equal to 10000"),  # found by the fuzz test
        ("layers = [10000000]", r"model.layers\[0\]: Input should be less than or equal to 65536"),
        ('model = "lif"', r"unknown cell 'lif'; valid cells: \['snu', 'ssnu'"),
        ('optimizer = "rmsprop"', r"training.optimizer: Input should be 'sgd' or 'adam'"),
    ],
)
def test_wrong_types_and_values_are_refused_never_coerced(toml_text, message):
    with pytest.raises(ConfigError, match=message):
        build_config(toml=tomllib.loads('task = "digits"\n' + toml_text))


def test_an_int_is_a_valid_float():
    assert build_config(toml={"task": "digits", "lr": 1}).training.lr == 1.0


def test_unknown_keys_are_refused_with_the_valid_keys_at_that_level():
    with pytest.raises(ConfigError, match=r"unknown key 'colour'; valid keys: \[.*'train-limit'"):
        build_config(toml={"task": "digits", "colour": "red"})
    with pytest.raises(ConfigError, match=r"unknown key 'model.depth'; valid keys of model: \['cell', 'layers'"):
        build_config(flags={"task": "digits"}, sets=[("model.depth", 3)])
    with pytest.raises(ConfigError, match=r"drift.*scal.*valid keys.*'scale'"):
        build_config(flags={"task": "digits", "device": "pcm_joshi2020"}, sets=[("device.drift.scal", 2.0)])


def test_set_reaches_device_parameters_and_needs_a_device():
    config = build_config(flags={"task": "digits", "device": "pcm_joshi2020"},
                          sets=[parse_set("device.drift.scale=1.5"), parse_set("device.stuck.fraction_at_zero=0.01")])
    assert config.device.drift.scale == 1.5 and config.device.stuck.fraction_at_zero == 0.01
    assert config.training.mode == "hwa"  # a device without --training trains hardware-aware
    with pytest.raises(ConfigError, match=r"the run has no PCM device; pass --device"):
        build_config(flags={"task": "digits"}, sets=[("device.drift.scale", 1.5)])


def test_parse_set_reads_toml_values_and_bare_words():
    assert parse_set("model.recurrent=true") == ("model.recurrent", True)
    assert parse_set("model.layers=[4, 5]") == ("model.layers", [4, 5])
    assert parse_set("training.optimizer=sgd") == ("training.optimizer", "sgd")
    assert parse_set('model.g="relu"') == ("model.g", "relu")
    with pytest.raises(ConfigError, match=r"--set takes dotted.key=value"):
        parse_set("no-equals-sign")


def test_mode_and_device_must_fit():
    with pytest.raises(ConfigError, match=r"--training hwa needs a PCM device"):
        build_config(flags={"task": "digits", "training": "hwa"})
    with pytest.raises(ConfigError, match=r"--training digital runs without a PCM device"):
        build_config(flags={"task": "digits", "device": "pcm_joshi2020", "training": "digital"})
    with pytest.raises(ConfigError, match=r"--hil-scheme apply to --training hil only"):
        build_config(flags={"task": "digits", "hil-scheme": "mixed"})
    with pytest.raises(ConfigError, match=r"no task given"):
        build_config(flags={"lr": 0.1})


def _full_config() -> RunConfig:
    """A config where every field differs from its default."""
    return build_config(flags={
        "task": "mnist", "data": "some/dir", "batch-size": 7, "eval-batch-size": 9, "steps": 11, "rate": 3.5,
        "bptt": 13, "train-limit": 17, "model": "ssnu", "cell-options": {"soft": True}, "layers": [5, 4], "recurrent": True, "decay": 0.5,
        "g": "leaky_relu", "threshold": 0.7, "conv-channels": [3, 2], "conv-kernel": 3, "conv-pool": 1, "dropout": 0.25, "surrogate": next(s for s in SURROGATES if s != "tanh"),
        "device": "pcm_aged_lowyield", "training": "hil", "optimizer": "sgd", "lr": 0.02, "weight-decay": 1e-4, "epochs": 3,
        "seed": 4, "grapes": "local", "hil-scheme": "mixed", "rule": "fa", "weight-init": "he_uniform",
        "schedule": "plateau", "gamma": 0.5, "patience": 3, "select": "best",
        "chip-seconds-per-batch": 0.5, "granularity": 0.02, "headroom": 4.0, "threads": 3,
    })


def test_every_field_round_trips_through_json_and_toml():
    config = _full_config()
    # not stored: the thread count (speed, not results) and the name the device came by (recorded beside the config)
    stored = config.model_copy(update={"threads": "auto", "device_source": None})
    assert "threads" not in config.to_dict() and "device_source" not in config.to_dict()
    assert config.device_source == "pcm_aged_lowyield"
    assert RunConfig.from_dict(config.to_dict()) == stored
    assert build_config(toml=tomllib.loads(to_toml(config))) == stored  # a TOML of the stored config reproduces the run


def test_every_field_round_trips_through_the_command_line():
    config = _full_config()
    flat = flatten(config.to_dict())
    argv = ["train"]
    for flag, path in FLAG_PATHS.items():
        if flag == "device":
            argv += ["--device", "pcm_aged_lowyield"]
            continue
        # threads: not in the stored dict; cell_options: a table, flattened to its keys
        value = flat[path] if path in flat else config.model.cell_options if flag == "cell-options" \
            else getattr(config, path)
        if value is None:
            continue
        if path == "model.cell_options":  # a table: KEY=VALUE pairs, values as TOML
            argv += [f"--{flag}", *(f"{key}={str(item).lower()}" for key, item in config.model.cell_options.items())]
        elif isinstance(value, bool):
            argv.append(f"--{flag}" if value else f"--no-{flag}")
        elif isinstance(value, list):
            argv += [f"--{flag}", *map(str, value)]
        else:
            argv += [f"--{flag}", str(value)]
    args = build_parser().parse_args(argv + ["--out", "x"])
    assert config_from_args(args) == config
    assert preset("pcm_aged_lowyield").to_dict() == config.device.to_dict()


def test_help_shows_every_flag_with_its_default(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    for flag in FLAG_PATHS:
        assert f"--{flag}" in text, flag
    assert "(default: per task: digits 128, mnist 256 256, jsb 150, ptb 200)" in " ".join(text.split())


@pytest.mark.parametrize("option", ["training.lr=0.1\nepochs = 5", "training.lr=0.1\r\nx=1", "model.decay=0.5\x00",
                                    "model.de\ncay=0.5", "task.name=\"digits\"\x1b[2J", "training.lr=0.1\x7f"])
def test_a_set_value_with_a_line_break_or_control_character_is_refused(option):
    with pytest.raises(ConfigError, match=r"holds a line break or control character .*one dotted.key=value per --set"):
        parse_set(option)


def test_a_line_injected_through_set_never_reaches_the_config(tmp_path, capsys):
    from analog_snu.cli import main

    out = tmp_path / "run"
    assert main(["train", "--task", "digits", "--layers", "4", "--train-limit", "16", "--epochs", "1", "--quiet",
                 "--set", "training.lr=0.1\nepochs = 5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line break" in err, err
    assert not out.exists() or not (out / "config.json").exists()
    assert parse_set("task.name=\"a\tb\"") == ("task.name", "a\tb")  # a tab inside a value stays allowed


def _flag_help() -> dict[str, str]:
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    return {action.option_strings[0]: " ".join((action.help or "").replace("%%", "%").split())
            for action in train._actions if action.option_strings}


def test_help_says_each_default_once_in_words_for_every_task():
    helps = _flag_help()
    for flag, text in helps.items():
        assert text.count("(default") <= 1 and text.count("default:") <= 1, (flag, text)  # never "(default 0.1) (default: none)"
        assert "``" not in text and ":class:" not in text and ":func:" not in text, (flag, text)  # no raw reST
    assert helps["--gamma"] == "step / plateau schedules: decay factor (default 0.1)"
    assert helps["--patience"].endswith("(default: never)")
    # the default mode follows the device
    assert helps["--training"].endswith("(default: digital, or hwa with a device)")
    # per-task defaults name every task
    assert helps["--epochs"] == "Training epochs (default: per task: digits 15; other tasks 1)"
    assert helps["--lr"].endswith("(default: per task: digits 0.005, jsb 0.01; other tasks 0.001)")
    assert helps["--rate"].endswith("(default: per task: digits 10; other tasks 6)")
    assert helps["--recurrent"].endswith("(default: off)") and helps["--conv-channels"].endswith("(default: none)")
    assert helps["--data"].startswith("Path of the data file or directory (default: the task's own data; see ")


def test_flag_names_take_underscores_everywhere_as_toml_does():
    dashed = build_config(flags={"task": "digits", "train-limit": 5, "eval-batch-size": 7})
    assert build_config(flags={"task": "digits", "train_limit": 5, "eval_batch_size": 7}) == dashed
    assert build_config(flags={"task": "digits"}, sets=[("train_limit", 5), ("eval-batch-size", 7)]) == dashed
    assert build_config(toml=tomllib.loads('task = "digits"\ntrain_limit = 5\neval-batch-size = 7')) == dashed
    assert dashed.task.train_limit == 5
    with pytest.raises(ConfigError, match=r"'train-limit' and 'train_limit' are the same key 'train-limit'; give it once"):
        build_config(flags={"task": "digits", "train-limit": 5, "train_limit": 6})
    with pytest.raises(ConfigError, match=r"'train_limit' and 'train-limit' are the same key"):
        build_config(toml=tomllib.loads('task = "digits"\ntrain_limit = 5\n"train-limit" = 6'))
    with pytest.raises(ConfigError, match=r"unknown key 'train_limits'"):
        build_config(flags={"task": "digits", "train_limits": 5})


def test_dfa_with_local_grapes_is_refused_in_one_line(capsys):
    with pytest.raises(ConfigError, match=r"--grapes local does not apply to --rule dfa: .* use --grapes propagating"):
        build_config(flags={"task": "digits", "rule": "dfa", "grapes": "local"})
    assert build_config(flags={"task": "digits", "rule": "dfa", "grapes": "propagating"}).training.grapes == "propagating"
    assert build_config(flags={"task": "digits", "rule": "fa", "grapes": "local"}).training.grapes == "local"


@pytest.mark.parametrize(("argv", "expected"), [([], "auto"), (["--threads", "auto"], "auto"), (["--threads", "3"], 3)])
def test_the_threads_flag(argv, expected):
    args = build_parser().parse_args(["train", "--task", "digits", *argv, "--out", "x"])
    assert config_from_args(args).threads == expected


@pytest.mark.parametrize(("toml_text", "expected"), [("threads = 2", 2), ('threads = "auto"', "auto")])
def test_threads_in_a_config_file(toml_text, expected):
    assert build_config(toml=tomllib.loads('task = "digits"\n' + toml_text)).threads == expected


@pytest.mark.parametrize("toml_text", ['threads = "2"', "threads = true", "threads = 2.0", "threads = 0"])
def test_threads_are_strict(toml_text):
    with pytest.raises(ConfigError, match=r"^--config x.toml: threads: must be 'auto' or an int from 1 to 4096, got "):
        build_config(toml=tomllib.loads('task = "digits"\n' + toml_text), where="--config x.toml")


def test_a_different_thread_count_is_the_same_run():
    base = build_config(flags={"task": "digits"})
    assert config_differences(base, build_config(flags={"task": "digits", "threads": 2})) == []


# --- model.cell_options ---------------------------------------------------------------------------


@pytest.mark.parametrize("source", [
    {"toml": {"task": "digits", "model": {"cell_options": {"soft": True}}}},  # [model] cell_options = {soft = true}
    {"toml": {"task": "digits", "cell_options": {"soft": True}}},  # the flag's key at the top level
    {"toml": {"task": "digits", "set": {"model": {"cell_options": {"soft": True}}}}},  # [set] model.cell_options.soft
    {"flags": {"task": "digits"}, "sets": [parse_set("model.cell_options.soft=true")]},
    {"flags": {"task": "digits", "cell-options": {"soft": True}}},
])
def test_cell_options_come_from_toml_set_and_flags(source):
    config = build_config(**source)
    assert config.model.cell_options == {"soft": True}
    assert config.model.cell_parameters().soft is True


def test_the_cell_options_flag_takes_key_value_pairs_read_as_toml():
    argv = ["train", "--task", "digits", "--cell-options", "soft=true", "--out", "x"]
    assert config_from_args(build_parser().parse_args(argv)).model.cell_options == {"soft": True}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--task", "digits", "--cell-options", "soft", "--out", "x"])


def test_without_cell_options_configs_are_as_before():
    stored = build_config(flags={"task": "digits"}).to_dict()
    assert stored["model"]["cell_options"] == {}
    del stored["model"]["cell_options"]  # a config written before the field existed
    old = RunConfig.from_dict(stored)
    assert old.model.cell_options == {} and old == build_config(flags={"task": "digits"})
    assert old.model.cell_parameters() == SNUParameters()


@pytest.mark.parametrize(("sets", "message"), [
    ([("model.cell_options.tau", 2.0)],
     r"^run config: model: cell_options: unknown option 'tau' of cell 'snu'; valid options: \['soft'\]$"),
    ([("model.cell_options.soft", "yes")], r"cell_options: soft must be a bool, got 'yes' \(str\)"),
    ([("model.cell", "ssnu"), ("model.cell_options.soft", False)],
     r"cell_options: cell 'ssnu' fixes soft=True, got soft=False"),
    ([("model.cell", "lstm"), ("model.cell_options.soft", True)],
     r"cell_options: the lstm baseline takes no cell options, got \['soft'\]"),
    ([("model.cell_options.g", "identity")], r"cell_options: 'g' is set by model.g, not by cell_options"),
])
def test_cell_options_are_checked_by_the_cell_s_own_parameter_type(sets, message):
    with pytest.raises(ConfigError, match=message):
        build_config(flags={"task": "digits"}, sets=sets)


def test_every_registered_cell_s_options_can_be_set():
    for cell in neuron_cell_names():
        fixed = dict(neuron_cell(cell).fixed)
        for field in dataclasses.fields(neuron_cell(cell).parameters):
            if field.name not in cell_options_of(cell):
                continue
            value = fixed.get(field.name, not field.default if isinstance(field.default, bool) else field.default)
            config = build_config(flags={"task": "digits", "model": cell},
                                  sets=[parse_set(f"model.cell_options.{field.name}={str(value).lower()}")])
            assert getattr(config.model.cell_parameters(), field.name) == value, (cell, field.name)


@dataclasses.dataclass(frozen=True)
class GainParameters(SNUParameters):
    gain: float = 1.0
    """Input gain, > 0."""

    def __post_init__(self):
        super().__post_init__()
        if not self.gain > 0:
            raise ConfigError(f"gain must be > 0, got {self.gain!r}")


def gain_snu_step(current, state, threshold, decay, g="relu", soft=False, surrogate="tanh", gain=1.0):
    """The SNU with its input current scaled by ``gain``."""
    return snu_step(gain * current, state, threshold, decay, g=g, soft=soft, surrogate=surrogate)


def test_a_registered_cell_s_own_option_reaches_its_layers(monkeypatch):
    monkeypatch.setattr(cells_module, "NEURON_CELLS", dict(cells_module.NEURON_CELLS))
    register_cell(CellDef("gain_snu", GainParameters, SNUState, gain_snu_step))
    assert cell_options_of("gain_snu") == ["soft", "gain"]
    config = build_config(flags={"task": "digits", "model": "gain_snu", "layers": [6], "threshold": 0.3},
                          sets=[parse_set("model.cell_options.gain=0.5")])
    model = build_model(spec_for(config, "mean", 8, 3))
    assert model.layers[0].cell == "gain_snu" and model.layers[0].cell_parameters.gain == 0.5
    # reference: the plain SNU with its input weights halved (0.5 scales floats exactly)
    plain = build_model(spec_for(build_config(flags={"task": "digits", "layers": [6], "threshold": 0.3}), "mean", 8, 3))
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        plain.layers[0].weight_ih.weight.mul_(0.5)
    x = torch.rand(5, 4, 8) * 2
    torch.testing.assert_close(model(x), plain(x), rtol=0, atol=0)
    assert 0 < model.layers[0](x)[0].mean() < 1  # some neurons spike, some do not
    with pytest.raises(ConfigError, match=r"unknown option 'gian' of cell 'gain_snu'; valid options: \['soft', 'gain'\]"):
        build_config(flags={"task": "digits", "model": "gain_snu"}, sets=[("model.cell_options.gian", 0.5)])
    with pytest.raises(ConfigError, match=r"cell_options: gain must be > 0, got -1"):
        build_config(flags={"task": "digits", "model": "gain_snu"}, sets=[("model.cell_options.gain", -1)])


def test_the_device_is_resolved_once_with_the_name_it_came_by(tmp_path):
    base = {"task": "digits"}
    joshi = build_config(flags={**base, "device": "pcm_joshi2020"})
    assert (joshi.device, joshi.device_source) == (preset("pcm_joshi2020"), "pcm_joshi2020")
    changed = build_config(flags={**base, "device": "pcm_joshi2020"}, sets=[("device.drift.scale", 2.0)])
    assert changed.device.drift.scale == 2.0 and changed.device_source == "pcm_joshi2020"  # changes keep the name
    from_toml = build_config(toml={**base, "device": "pcm_aged_lowyield"})
    assert from_toml.device_source == "pcm_aged_lowyield"
    by_value = build_config(toml={**base, "device": preset("pcm_joshi2020").to_dict()})
    assert by_value.device == preset("pcm_joshi2020") and by_value.device_source is None
    path = tmp_path / "mine.toml"
    path.write_text(tomli_w.dumps(preset("pcm_joshi2020").updated({"name": "mine"}).to_dict()))
    later = build_config(toml={**base, "device": "pcm_joshi2020"}, flags={"device": str(path)})
    assert later.device.name == "mine" and later.device_source == str(path)  # the later source wins, name and all
    assert build_config(flags={**base, "device": "digital"}).device_source is None
    assert build_config(toml={**base, "device": "pcm_joshi2020"}, flags={"device": "digital"}).device_source is None


def test_the_device_source_is_not_a_setting():
    with pytest.raises(ConfigError, match=r"device_source is not set: it records the name --device was given by"):
        build_config(flags={"task": "digits", "device": "pcm_joshi2020"}, sets=[("device_source", "other")])
    with pytest.raises(ConfigError, match=r"unknown key 'device_source'"):
        build_config(toml={"task": "digits", "device_source": "pcm_joshi2020"})
    with pytest.raises(ConfigError, match=r"device_source 'pcm_joshi2020' names where a PCM device came from; "
                                          r"this run has none"):
        RunConfig.from_dict({"task": {"name": "digits"}, "model": {}, "device_source": "pcm_joshi2020"})
    digital = build_config(flags={"task": "digits"})
    with pytest.raises(ConfigError, match="this run has none"):
        digital.with_device_source("pcm_joshi2020")
    on_pcm = build_config(flags={"task": "digits", "device": "pcm_joshi2020"})
    with pytest.raises(ConfigError, match="device_source must be a preset name or device file, got int"):
        on_pcm.with_device_source(3)  # type: ignore[arg-type]
    assert on_pcm.with_device_source(None).device_source is None and on_pcm.device_source == "pcm_joshi2020"
