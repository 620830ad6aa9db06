"""PCM devices turned into aihwkit RPU configs: the ``pcm`` preset builds aihwkit's stock PCM configs."""

import dataclasses

import pytest
from aihwkit.inference import GlobalDriftCompensation
from aihwkit.simulator.configs import InferenceRPUConfig, WeightClipType, WeightModifierType
from aihwkit.simulator.presets import PCMPresetDevice, PCMPresetUnitCell

from analog_snu.errors import ConfigError
from analog_snu.pcm import PCMDevice, preset
from analog_snu.tiles import device_rpu_config
from analog_snu.tiles.pcm_noise import PCMNoiseModel


def test_hwa_mode_is_the_stock_cpp_inference_config_of_aihwkit_examples():
    rpu = device_rpu_config(preset("pcm"), "hwa")
    assert type(rpu) is InferenceRPUConfig  # the C++ tile, not TorchInferenceRPUConfig
    assert rpu.mapping.weight_scaling_omega == 1.0 and rpu.mapping.weight_scaling_columnwise is False
    assert rpu.mapping.learn_out_scaling is True
    assert rpu.forward.inp_res == pytest.approx(1 / (2**7 - 2)) and rpu.forward.out_res == pytest.approx(1 / (2**9 - 2))
    assert rpu.forward.out_noise == 0.02
    assert rpu.clip.type == WeightClipType.FIXED_VALUE and rpu.clip.fixed_value == 1.0
    assert rpu.modifier.type == WeightModifierType.ADD_NORMAL
    assert rpu.modifier.std_dev == 0.038 and rpu.modifier.rel_to_actual_wmax is True
    assert isinstance(rpu.drift_compensation, GlobalDriftCompensation)
    assert isinstance(rpu.noise_model, PCMNoiseModel) and rpu.noise_model.device == preset("pcm")


def test_pulsed_mode_is_aihwkits_pcm_preset_unit_cell():
    rpu = device_rpu_config(preset("pcm"), "pulsed")
    assert isinstance(rpu.device, PCMPresetUnitCell) and rpu.device.refresh_every == 1
    stock = PCMPresetDevice()
    for device in rpu.device.unit_cell_devices:
        differing = {
            f.name for f in dataclasses.fields(stock) if getattr(device, f.name) != getattr(stock, f.name)
        }
        assert differing == {"w_max_dtod"}  # g_max_spread 0 (see the preset's conditions)
        assert device.w_max_dtod == 0.0


def test_bad_mode_is_rejected_naming_the_modes():
    with pytest.raises(ConfigError, match=r"mode must be one of \['inference', 'hwa', 'pulsed'\], got 'train'"):
        device_rpu_config(PCMDevice(), "train")
    with pytest.raises(ConfigError, match="device must be a PCMDevice, got dict"):
        device_rpu_config({"name": "pcm"}, "hwa")
