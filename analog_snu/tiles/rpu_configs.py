"""Stock aihwkit RPU configs for PCM, used until a device preset is chosen."""

from __future__ import annotations

from analog_snu.tiles.backend import aihwkit_module

__all__ = ["pcm_hwa_rpu_config"]


def pcm_hwa_rpu_config(g_max: float = 25.0):
    """aihwkit ``InferenceRPUConfig`` with its PCM statistics (PCMLikeNoiseModel, Joshi et al. 2020).

    Hardware-aware training settings as in aihwkit's HWA examples: weights clipped to
    the mapped range, Gaussian weight noise (3.8 % of the max weight) injected on every
    forward during training, 2 % output noise, 7-bit DAC / 9-bit ADC, global drift compensation.
    """
    configs = aihwkit_module("simulator.configs")
    inference = aihwkit_module("inference")
    rpu = configs.InferenceRPUConfig()
    rpu.mapping.weight_scaling_omega = 1.0
    rpu.mapping.weight_scaling_columnwise = False
    rpu.forward.inp_res = 1 / (2**7 - 2)
    rpu.forward.out_res = 1 / (2**9 - 2)
    rpu.forward.out_noise = 0.02
    rpu.clip.type = configs.WeightClipType.FIXED_VALUE
    rpu.clip.fixed_value = 1.0
    rpu.mapping.learn_out_scaling = True  # lets the clipped range grow (see device_rpu.py)
    rpu.modifier.type = configs.WeightModifierType.ADD_NORMAL
    rpu.modifier.std_dev = 0.038
    rpu.modifier.rel_to_actual_wmax = True
    rpu.noise_model = inference.PCMLikeNoiseModel(g_max=g_max)
    rpu.drift_compensation = inference.GlobalDriftCompensation()
    return rpu
