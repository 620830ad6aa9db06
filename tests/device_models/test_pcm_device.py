"""PCMDevice configs, presets, serialisation and validation (no aihwkit needed)."""

import ast
import json
from pathlib import Path

import pytest

from analog_snu.device_models import PCMDevice, list_presets, preset, preset_info
from analog_snu.device_models.pcm import ConductanceConfig, StuckConfig
from analog_snu.errors import ConfigError

PACKAGE = Path(__file__).resolve().parents[2] / "analog_snu" / "device_models"


def test_required_presets_exist_with_provenance():
    names = list_presets()
    assert {"pcm_joshi2020", "ideal", "pcm_aged_lowyield"} <= set(names)
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


@pytest.mark.parametrize("name", ["pcm_joshi2020", "ideal", "pcm_aged_lowyield"])
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
    with pytest.raises(ConfigError, match=r"conductance.g_max must be in \(0, inf\] µS, got -5"):
        ConductanceConfig(g_max=-5.0)
    with pytest.raises(ConfigError, match="conductance.g_max"):
        PCMDevice.from_dict({"conductance": {"g_max": -1}})


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_fraction_outside_unit_interval_rejected(value):
    with pytest.raises(ConfigError, match=r"stuck.fraction_at_zero must be in \[0, 1\]"):
        StuckConfig(fraction_at_zero=value)


def test_stuck_fractions_must_sum_to_at_most_one():
    with pytest.raises(ConfigError, match=r"fraction_at_gmax \+ stuck.fraction_at_zero must be in \[0, 1\], got 1.2"):
        StuckConfig(fraction_at_gmax=0.6, fraction_at_zero=0.6)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"periphery": {"drift_compensation": "magic"}}, r"drift_compensation must be one of \['none', 'global', 'per_column'\]"),
        ({"simulator": "gpu"}, r"simulator must be one of \['torch', 'cpp'\]"),
        ({"periphery": {"adc_bits": 1}}, "adc_bits must be 0"),
        ({"periphery": {"dac_bits": 40}}, r"dac_bits must be an int in \[0, 24\]"),
        ({"drift": {"t0": 0.0}}, r"drift.t0 must be in \(0, inf\] s"),
        ({"drift": {"enabled": "yes"}}, "drift.enabled must be true or false"),
        ({"conductance": {"significance": []}}, "significance must hold at least 1"),
        ({"conductance": {"significance": [1.0, -2.0]}}, r"significance\[1\]"),
        ({"conductance": {"g_max_spread": 1.5}}, "g_max_spread"),
        ({"pulsed": {"reset": 2.0}}, r"pulsed.reset must be in \[0, 1\]"),
        ({"drift": {"nu_mean_min": 0.2, "nu_mean_max": 0.1}}, "nu_mean_max"),
        ({"programming": {"coeffs": "abc"}}, "programming.coeffs must be a list"),
    ],
)
def test_bad_field_values_name_field_and_valid_values(changes, match):
    with pytest.raises(ConfigError, match=match):
        preset("pcm_joshi2020").updated(changes)


def test_unknown_fields_rejected_with_valid_list():
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['drift.speed'\]; valid fields of drift"):
        PCMDevice.from_dict({"drift": {"speed": 1}})
    with pytest.raises(ConfigError, match=r"unknown field 'color'; valid fields"):
        PCMDevice().updated({"color": 1})
    with pytest.raises(ConfigError, match="drift must be a table/dict"):
        PCMDevice.from_dict({"drift": 3})


def test_bad_files_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"must end in one of \['.toml', '.json'\]"):
        PCMDevice.from_file(tmp_path / "d.yaml")
    with pytest.raises(ConfigError, match="cannot read device config file"):
        PCMDevice.from_file(tmp_path / "missing.toml")
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


def test_bad_mode_rejected_before_importing_tiles():
    with pytest.raises(ConfigError, match=r"mode must be one of \['inference', 'hwa', 'pulsed'\], got 'train'"):
        PCMDevice().rpu_config("train")


def test_device_models_do_not_import_aihwkit_or_tiles_at_module_level():
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only; PCMDevice.rpu_config imports tiles inside the method
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith(("aihwkit", "analog_snu.tiles", "analog_snu.layers", "torch")), (path, name)
