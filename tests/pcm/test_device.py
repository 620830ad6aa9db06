"""PCMDevice configs, presets, serialisation and validation (no aihwkit needed)."""

import ast
import json
import re
import tomllib
from pathlib import Path

import pydantic
import pytest
import tomli_w

from analog_snu.errors import ConfigError
from analog_snu.pcm import PCMDevice, format_validation_error, list_presets, preset, preset_info
from analog_snu.pcm.device import ConductanceConfig, DriftConfig, StuckConfig

PACKAGE = Path(__file__).resolve().parents[2] / "analog_snu" / "pcm"


def test_required_presets_exist_with_provenance():
    names = list_presets()
    assert {"pcm", "pcm_joshi2020", "ideal", "pcm_aged_lowyield"} <= set(names)
    assert names == sorted(names)
    for name in names:
        info = preset_info(name)
        assert info["name"] == name and len(info["source"]) > 20 and len(info["conditions"]) > 20
        assert preset(name).name == name


def test_joshi_preset_has_aihwkit_pcm_statistics():
    dev = preset("pcm_joshi2020")
    assert dev.conductance.g_max == 25.0
    assert dev.programming.coeffs == (0.26348, 1.9650, -1.1731)
    assert dev.drift.t0 == 20.0 and dev.read_noise.t_read == 250e-9
    # sigma(g_max) = c0 + c1 + c2 (hand-computed), sigma(0) = c0
    assert dev.programming_sigma(25.0) == pytest.approx(0.26348 + 1.9650 - 1.1731)
    assert dev.programming_sigma(0.0) == pytest.approx(0.26348)
    # nu statistics at G = g_max: mean clipped up to 0.049, std clipped up to 0.008
    assert dev.nu_statistics(25.0) == pytest.approx((0.049, 0.008))
    assert not dev.is_ideal


def test_ideal_preset_switches_everything_off():
    dev = preset("ideal")
    assert dev.is_ideal
    assert dev.programming_sigma(12.0) == 0.0


def test_aged_preset_is_harsher():
    aged, base = preset("pcm_aged_lowyield"), preset("pcm_joshi2020")
    assert aged.stuck.fraction_at_gmax + aged.stuck.fraction_at_zero > 0
    assert aged.programming_sigma(10.0) > base.programming_sigma(10.0)
    assert aged.conductance.g_max_spread > 0


@pytest.mark.parametrize("name", ["pcm", "pcm_joshi2020", "ideal", "pcm_aged_lowyield"])
@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_file_round_trip(tmp_path, name, suffix):
    dev = preset(name).updated({"conductance": {"significance": [1.0, 4.0]}})
    path = dev.save(tmp_path / f"dev{suffix}")
    assert PCMDevice.from_file(path) == dev
    assert PCMDevice.from_dict(dev.to_dict()) == dev
    assert dev.devices_per_weight == 4


def test_json_file_is_plain_json(tmp_path):
    path = preset("pcm_joshi2020").save(tmp_path / "d.json")
    data = json.loads(path.read_text())
    assert data["conductance"]["g_max"] == 25.0 and data["periphery"]["drift_compensation"] == "global"


def test_partial_dict_takes_defaults():
    dev = PCMDevice.from_dict({"conductance": {"g_max": 10.0}})
    assert dev.conductance.g_max == 10.0 and dev.drift == PCMDevice().drift


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown preset 'nope'; valid presets: \[.*'ideal'.*'pcm_joshi2020'"):
        preset("nope")
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_info("nope")


def test_negative_g_max_rejected():
    with pytest.raises(ConfigError, match=r"^g_max: Input should be greater than 0 \(got -5\.0\)$"):
        ConductanceConfig(g_max=-5.0)
    with pytest.raises(ConfigError, match=r"^conductance\.g_max: Input should be greater than 0 \(got -1\)$"):
        PCMDevice.from_dict({"conductance": {"g_max": -1}})


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_fraction_outside_unit_interval_rejected(value):
    with pytest.raises(ConfigError, match=r"fraction_at_zero: Input should be (greater|less) than or equal to [01]"):
        StuckConfig(fraction_at_zero=value)


def test_stuck_fractions_must_sum_to_at_most_one():
    with pytest.raises(ConfigError, match=r"^StuckConfig: fraction_at_gmax \+ fraction_at_zero must be in \[0, 1\], got 1.2$"):
        StuckConfig(fraction_at_gmax=0.6, fraction_at_zero=0.6)
    with pytest.raises(ConfigError, match=r"^stuck: fraction_at_gmax \+ fraction_at_zero must be in \[0, 1\], got 1.2$"):
        PCMDevice().updated({"stuck": {"fraction_at_gmax": 0.6, "fraction_at_zero": 0.6}})


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"periphery": {"drift_compensation": "magic"}},
         r"periphery\.drift_compensation: Input should be 'none', 'global' or 'per_column' \(got 'magic'\)"),
        ({"simulator": "gpu"}, r"simulator: Input should be 'torch' or 'cpp' \(got 'gpu'\)"),
        ({"periphery": {"adc_bits": 1}}, r"periphery: adc_bits must be 0 \(unquantised\) or an int in \[2, 24\], got 1"),
        ({"periphery": {"dac_bits": 40}}, r"periphery\.dac_bits: Input should be less than or equal to 24 \(got 40\)"),
        ({"drift": {"t0": 0.0}}, r"drift\.t0: Input should be greater than 0 \(got 0\.0\)"),
        ({"conductance": {"significance": []}}, r"conductance\.significance: .*at least 1 item"),
        ({"conductance": {"significance": [1.0, -2.0]}}, r"conductance\.significance\[1\]: Input should be greater than 0"),
        ({"conductance": {"significance": [1.0] * 9}}, r"conductance\.significance: .*at most 8 items"),
        ({"conductance": {"g_max_spread": 1.5}}, r"conductance\.g_max_spread: Input should be less than or equal to 0\.99"),
        ({"pulsed": {"reset": 2.0}}, r"pulsed\.reset: Input should be less than or equal to 1 \(got 2\.0\)"),
        ({"pulsed": {"refresh_every": -1}}, r"pulsed\.refresh_every: Input should be greater than or equal to 0"),
        ({"drift": {"nu_mean_min": 0.2, "nu_mean_max": 0.1}}, r"drift: nu_mean_max must be >= nu_mean_min = 0\.2, got 0\.1"),
        ({"drift": {"nu_std_min": 0.05, "nu_std_max": 0.01}}, r"drift: nu_std_max must be >= nu_std_min = 0\.05, got 0\.01"),
        ({"drift": {"nu_mean_max": 2.0}}, r"drift\.nu_mean_max: Input should be less than or equal to 1"),
        ({"drift": {"scale": -1.0}}, r"drift\.scale: Input should be greater than or equal to 0"),
        ({"read_noise": {"t_read": 0}}, r"read_noise\.t_read: Input should be greater than 0"),
        ({"hwa": {"weight_noise": -0.1}}, r"hwa\.weight_noise: Input should be greater than or equal to 0"),
        ({"periphery": {"out_bound": 0.0}}, r"periphery\.out_bound: Input should be greater than 0"),
        ({"programming": {"coeffs": "abc"}}, r"programming\.coeffs: Input should be a valid tuple \(got 'abc'\)"),
        ({"name": ""}, r"name: String should have at least 1 character"),
        ({"drift": 3}, r"^drift: expected a table/dict of fields \(got 3\)$"),
    ],
)
def test_bad_field_values_name_field_and_valid_values(changes, match):
    with pytest.raises(ConfigError, match=match):
        preset("pcm_joshi2020").updated(changes)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        # issue 10 item 9: a polynomial that explodes passed the old per-number checks
        ({"coeffs": [1e308, 1e308]}, r"programming\.coeffs\[0\]: Input should be less than or equal to 1000 \(got 1e\+308\)"),
        # sigma(G) = 100 G/g_max exceeds 3 * 25 µS first at G/g_max = 0.751 (grid of 1/1000)
        ({"coeffs": [0.0, 100.0]}, r"programming: coeffs \[0\.0, 100\.0\] give sigma = 75\.1 µS at G/g_max = 0\.751; "
                                   r"the programming-noise std must stay in \[0, 75\] µS"),
        # sigma(0) = -0.5 µS: a negative standard deviation
        ({"coeffs": [-0.5, 1.0]}, r"programming: coeffs \[-0\.5, 1\.0\] give sigma = -0\.5 µS at G/g_max = 0;"),
        # sigma(0) = sigma(g_max) = 0 but 400 x (1 - x) peaks at 100 µS: first above 75 at x = 0.251
        ({"coeffs": [0.0, 400.0, -400.0]}, r"sigma = 75\.2 µS at G/g_max = 0\.251;"),
    ],
)
def test_programming_polynomial_must_stay_physical_over_the_conductance_range(changes, match):
    with pytest.raises(ConfigError, match=match):
        PCMDevice().updated({"programming": changes})


def test_programming_polynomial_at_the_bound_is_accepted():
    # sigma(x) = 75 x is 75 µS = 3 * g_max_reference at g_max: allowed, one step above is not
    assert PCMDevice().updated({"programming": {"coeffs": [0.0, 75.0]}}).programming_sigma(25.0) == pytest.approx(75.0)
    with pytest.raises(ConfigError, match=r"sigma = 75\.01 µS at G/g_max = 1"):
        PCMDevice().updated({"programming": {"coeffs": [0.0, 75.01]}})
    # the bound scales with g_max_reference
    PCMDevice().updated({"programming": {"coeffs": [0.0, 150.0], "g_max_reference": 50.0}})


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"periphery": {"dac_bits": "16"}}, r"periphery\.dac_bits: Input should be a valid integer \(got '16'\)"),
        ({"periphery": {"dac_bits": 16.7}}, r"periphery\.dac_bits: Input should be a valid integer \(got 16\.7\)"),
        ({"periphery": {"dac_bits": 8.0}}, r"periphery\.dac_bits: Input should be a valid integer \(got 8\.0\)"),
        ({"periphery": {"adc_bits": True}}, r"periphery\.adc_bits: Input should be a valid integer \(got True\)"),
        ({"drift": {"t0": True}}, r"drift\.t0: Input should be a valid number \(got True\)"),
        ({"drift": {"t0": "20"}}, r"drift\.t0: Input should be a valid number \(got '20'\)"),
        ({"drift": {"enabled": "false"}}, r"drift\.enabled: Input should be a valid boolean \(got 'false'\)"),
        ({"drift": {"enabled": 0}}, r"drift\.enabled: Input should be a valid boolean \(got 0\)"),
        ({"drift": {"t0": float("nan")}}, r"drift\.t0: Input should be a finite number \(got nan\)"),
        ({"conductance": {"g_max": float("inf")}}, r"conductance\.g_max: Input should be a finite number \(got inf\)"),
        ({"conductance": {"significance": ["1.0"]}}, r"conductance\.significance\[0\]: Input should be a valid number"),
        ({"name": 3}, r"name: Input should be a valid string \(got 3\)"),
    ],
)
def test_wrong_types_are_refused_never_coerced(changes, match):
    with pytest.raises(ConfigError, match=match):
        PCMDevice.from_dict(changes)


def test_int_for_float_is_accepted_and_stored_as_float():
    dev = PCMDevice.from_dict({"drift": {"t0": 5}, "conductance": {"significance": [1, 2]}})
    assert dev.drift.t0 == 5.0 and isinstance(dev.drift.t0, float)
    assert dev.conductance.significance == (1.0, 2.0) and all(isinstance(v, float) for v in dev.conductance.significance)


def test_several_errors_are_reported_on_one_line():
    with pytest.raises(ConfigError) as info:
        PCMDevice.from_dict({"drift": {"t0": -1, "scale": "x"}})
    assert str(info.value) == (
        "drift.t0: Input should be greater than 0 (got -1); drift.scale: Input should be a valid number (got 'x')"
    )


def test_unknown_keys_are_refused_with_the_valid_keys_of_that_level():
    drift_keys = list(DriftConfig.model_fields)
    with pytest.raises(ConfigError, match=re.escape(f"unknown key 'drift.nu_scal'; valid keys of drift: {drift_keys}")):
        PCMDevice.from_dict({"drift": {"nu_scal": 1}})
    with pytest.raises(ConfigError, match=re.escape("unknown key 'color'; valid keys of PCMDevice: ['name', 'simulator', ")):
        PCMDevice().updated({"color": 1})
    with pytest.raises(ConfigError, match=r"^unknown key 'drift\.speed'; valid keys of drift: \['enabled', 't0', "):
        PCMDevice().updated({"drift": {"speed": 1}})
    with pytest.raises(ConfigError, match=r"^PCMDevice: expected a table/dict of fields \(got \[1\]\)$"):
        PCMDevice.from_dict([1])
    with pytest.raises(ConfigError, match=r"^changes must be a dict of fields, got list$"):
        PCMDevice().updated([1])


def test_configs_are_frozen_and_hashable():
    dev = preset("pcm_joshi2020")
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        dev.name = "other"  # type: ignore[misc]
    assert hash(dev) == hash(preset("pcm_joshi2020")) and dev == preset("pcm_joshi2020")


@pytest.mark.parametrize("name", ["pcm", "pcm_joshi2020", "ideal", "pcm_aged_lowyield"])
def test_device_embeds_by_value_in_a_strict_pydantic_model(name):
    """The run config holds ``device: PCMDevice | None`` and validates it from a TOML dict."""

    class Run(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(strict=True, extra="forbid", frozen=True)
        device: PCMDevice | None = None

    dev = preset(name)
    text = tomli_w.dumps({"device": dev.to_dict()})
    run = Run.model_validate(tomllib.loads(text))
    assert run.device == dev and Run.model_validate({}).device is None
    assert pydantic.TypeAdapter(PCMDevice).validate_python(json.loads(json.dumps(dev.to_dict())), strict=True) == dev
    assert Run.model_validate(run.model_dump(mode="json")) == run
    with pytest.raises(pydantic.ValidationError) as info:
        Run.model_validate({"device": {"drift": {"nu_scal": 1}}})
    assert format_validation_error(info.value, Run) == (
        f"unknown key 'device.drift.nu_scal'; valid keys of device.drift: {list(DriftConfig.model_fields)}"
    )
    with pytest.raises(pydantic.ValidationError) as info:
        Run.model_validate({"device": {"periphery": {"dac_bits": "7"}}})
    assert format_validation_error(info.value, Run) == "device.periphery.dac_bits: Input should be a valid integer (got '7')"
    with pytest.raises(pydantic.ValidationError) as info:
        Run.model_validate({"device": {"stuck": {"fraction_at_gmax": 0.6, "fraction_at_zero": 0.6}}})
    assert format_validation_error(info.value, Run) == "device.stuck: fraction_at_gmax + fraction_at_zero must be in [0, 1], got 1.2"


def test_json_schema_has_ranges_and_field_docs():
    schema = PCMDevice.model_json_schema()
    t0 = schema["$defs"]["DriftConfig"]["properties"]["t0"]
    assert t0["exclusiveMinimum"] == 0 and t0["maximum"] == 1e9 and "first read after programming" in t0["description"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["simulator"]["enum"] == ["torch", "cpp"]


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_every_field_round_trips_exactly_through_files(tmp_path, suffix):
    """Values with long decimal expansions and every field changed from its default."""
    changes = {
        "name": "odd", "simulator": "cpp",
        "conductance": {"g_max": 23.456789012345678, "g_max_spread": 0.1234567, "significance": [1.0, 3.3333333333333335]},
        "programming": {"enabled": False, "coeffs": [0.1, 0.2, 0.30000000000000004], "g_max_reference": 24.9, "scale": 1.7},
        "read_noise": {"enabled": False, "q": 0.01, "exponent": 0.6, "q_max": 0.3, "t_read": 1.1e-7, "scale": 0.5},
        "drift": {"enabled": False, "t0": 7.5, "nu_mean_slope": -0.01, "nu_mean_offset": 0.02, "nu_mean_min": 0.03,
                  "nu_mean_max": 0.2, "nu_std_slope": -0.02, "nu_std_offset": -0.001, "nu_std_min": 0.004,
                  "nu_std_max": 0.05, "scale": 2.0},
        "stuck": {"enabled": False, "fraction_at_gmax": 0.01, "fraction_at_zero": 0.02},
        "periphery": {"enabled": False, "dac_bits": 0, "adc_bits": 12, "out_noise": 0.05, "out_bound": 10.0,
                      "weight_scaling_omega": 0.5, "drift_compensation": "per_column"},
        "hwa": {"enabled": False, "weight_noise": 0.05, "clip": 2.0},
        "pulsed": {"dw_min": 0.02, "dw_min_dtod": 0.1, "dw_min_std": 0.3, "w_max": 1.5, "gamma": 1.0, "reset": 0.05,
                   "reset_dtod": 0.01, "refresh_every": 3},
    }
    dev = PCMDevice.from_dict(changes)
    assert dev.to_dict() == changes
    defaults = PCMDevice().to_dict()
    for table, values in changes.items():
        if isinstance(values, dict):
            assert all(values[key] != defaults[table][key] for key in values), table
    assert PCMDevice.from_file(dev.save(tmp_path / f"d{suffix}")) == dev


def test_bad_files_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"must end in one of \['.toml', '.json'\]"):
        PCMDevice.from_file(tmp_path / "d.yaml")
    with pytest.raises(ConfigError, match=r"device config file '.*missing\.toml' not found"):
        PCMDevice.from_file(tmp_path / "missing.toml")
    folder = tmp_path / "folder.json"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"device config file .*folder\.json is a directory, not a file"):
        PCMDevice.from_file(folder)
    out_of_range = tmp_path / "hot.toml"
    out_of_range.write_text("[drift]\nt0 = -3.0\n")
    with pytest.raises(ConfigError, match=r"^device config file '.*hot\.toml': drift\.t0: Input should be greater than 0 \(got -3\.0\)$"):
        PCMDevice.from_file(out_of_range)
    bad = tmp_path / "bad.toml"
    bad.write_text("g_max = = 3")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        PCMDevice.from_file(bad)
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must hold a table"):
        PCMDevice.from_file(arr)
    with pytest.raises(ConfigError, match="must end in one of"):
        PCMDevice().save(tmp_path / "d.txt")


#: the device config and its presets: plain data, importable without torch
CONFIG_MODULES = ("__init__.py", "device.py", "presets.py", "_files.py")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):  # every level: no function-local imports either
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


def test_pcm_never_imports_aihwkit_or_the_packages_above_it():
    modules = sorted(PACKAGE.glob("*.py"))
    assert {p.name for p in modules} >= {*CONFIG_MODULES, "physics.py", "mixed_precision.py", "chip.py"}
    above = ("aihwkit", "analog_snu.tiles", "analog_snu.functional", "analog_snu.layers", "analog_snu.hardware",
             "analog_snu.training", "analog_snu.models", "analog_snu.experiments")
    for path in modules:
        for name in _imports(path):
            assert not name.startswith(above), (path.name, name)
            if path.name in CONFIG_MODULES:
                assert not name.startswith("torch"), (path.name, name)


@pytest.mark.parametrize(("name", "text"), [("empty.toml", ""), ("blank.toml", "\n  \n# only a comment\n"),
                                            ("empty.json", "{}"), ("spaces.json", " { } \n")])
def test_an_empty_device_file_is_not_the_default_device(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"device config file '.*{name}' holds no fields"):
        PCMDevice.from_file(path)


@pytest.mark.parametrize("text", ['{"name": "a", "name": "b"}',
                                  '{"drift": {"scale": 1.0, "scale": 3.0}}',
                                  '{"stuck": {"fraction_at_zero": 0.0}, "stuck": {"fraction_at_zero": 0.5}}'])
def test_a_json_device_file_with_a_key_twice_is_refused(tmp_path, text):
    path = tmp_path / "dup.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"dup\.json.* is not valid JSON: key '.*' appears twice in one object"):
        PCMDevice.from_file(path)
