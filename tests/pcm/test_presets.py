"""The preset registry: the stock ``pcm`` preset and the one device-resolution path."""

import json
import os
import re

import pytest

from analog_snu.errors import ConfigError
from analog_snu.pcm import PCMDevice, list_presets, preset, preset_info, resolve_device


def test_pcm_preset_is_the_aihwkit_stock_hwa_config_as_device_fields():
    """aihwkit's examples: C++ InferenceRPUConfig, PCMLikeNoiseModel(g_max=25), omega 1.0,
    7/9-bit DAC/ADC, out noise 0.02, fixed clip 1.0, 3.8 % weight noise, global drift compensation."""
    dev = preset("pcm")
    assert dev.simulator == "cpp"
    assert dev.conductance.g_max == 25.0 and dev.conductance.significance == (1.0,)
    assert dev.periphery.weight_scaling_omega == 1.0
    assert (dev.periphery.dac_bits, dev.periphery.adc_bits, dev.periphery.out_noise) == (7, 9, 0.02)
    assert dev.periphery.drift_compensation == "global"
    assert (dev.hwa.enabled, dev.hwa.clip, dev.hwa.weight_noise) == (True, 1.0, 0.038)
    # PCMLikeNoiseModel's statistics, the same as pcm_joshi2020: only the simulator differs
    assert dev.updated({"name": "pcm_joshi2020", "simulator": "torch"}) == preset("pcm_joshi2020")
    info = preset_info("pcm")
    assert "aihwkit 1.2.0 stock PCM HWA config, as in its examples" in info["source"]


def test_resolve_device_takes_a_device_a_preset_name_or_a_file(tmp_path):
    dev = preset("pcm_aged_lowyield").updated({"name": "mine", "drift": {"scale": 2.0}})
    assert resolve_device(dev) is dev
    assert resolve_device("ideal") == preset("ideal")
    for suffix in (".toml", ".json", ".TOML"):
        path = dev.save(tmp_path / f"dev{suffix}")
        assert resolve_device(str(path)) == dev
        assert resolve_device(path) == dev  # a Path as well


def test_resolve_device_refuses_other_values_listing_the_presets(tmp_path):
    listed = re.escape(str(list_presets()))
    with pytest.raises(ConfigError, match=rf"^device 'pcm_nope' is neither a preset nor a device file \(\.toml or \.json\); valid presets: {listed}$"):
        resolve_device("pcm_nope")
    with pytest.raises(ConfigError, match=r"device '.*dev\.yaml' is neither a preset nor a device file"):
        resolve_device(tmp_path / "dev.yaml")
    with pytest.raises(ConfigError, match=rf"^device must be a PCMDevice, a preset name {listed} or a \.toml/\.json file path, got int$"):
        resolve_device(3)
    with pytest.raises(ConfigError, match=r"^device config file '.*gone\.toml' not found$"):
        resolve_device(str(tmp_path / "gone.toml"))
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"drift": {"t0": 20,')
    with pytest.raises(ConfigError, match=r"^device config file '.*corrupt\.json' is not valid JSON: "):
        resolve_device(str(corrupt))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"drift": {"nu_scal": 1}}))
    with pytest.raises(ConfigError, match=r"^device config file '.*wrong\.json': unknown key 'drift\.nu_scal'; valid keys of drift: "):
        resolve_device(os.fspath(wrong))


def test_a_resolved_file_device_does_not_depend_on_the_file_afterwards(tmp_path):
    path = preset("pcm_joshi2020").updated({"conductance": {"g_max": 12.5}}).save(tmp_path / "d.toml")
    dev = resolve_device(str(path))
    path.unlink()
    assert dev.conductance.g_max == 12.5 and PCMDevice.from_dict(dev.to_dict()) == dev
