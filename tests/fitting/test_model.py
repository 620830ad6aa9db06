"""The effective (scale-folded) view of a device and its write-back."""

import numpy as np
import pytest

from analog_snu.fitting.model import device_with, effective_parameters, nu_statistics, programming_sigma
from analog_snu.pcm import preset


@pytest.mark.parametrize("name", ["pcm_joshi2020", "pcm_aged_lowyield"])
def test_effective_statistics_equal_the_device_s_own(name):
    device = preset(name)
    model = effective_parameters(device)
    targets = np.array([0.05, 1.0, 7.5, 19.0])
    assert np.allclose(programming_sigma(model, targets), [device.programming_sigma(g) for g in targets])
    mean, std = nu_statistics(model, targets)
    expected = np.array([device.nu_statistics(g) for g in targets]) * device.drift.scale
    assert np.allclose(mean, expected[:, 0]) and np.allclose(std, expected[:, 1])
    assert model.q == pytest.approx(device.read_noise.q * device.read_noise.scale)


def test_writing_the_effective_values_back_keeps_the_statistics_with_scales_one():
    device = preset("pcm_aged_lowyield")
    model = effective_parameters(device)
    written = device_with(preset("pcm_joshi2020"), model, {"conductance", "stuck", "programming", "read_noise", "drift"},
                          "copy")
    assert written.programming.scale == written.read_noise.scale == written.drift.scale == 1.0
    again = effective_parameters(written)
    for field in ("g_max", "g_max_spread", "fraction_at_zero", "q", "q_max", "t0", "nu_mean_min", "nu_std_slope"):
        assert getattr(again, field) == pytest.approx(getattr(model, field))
    assert np.allclose(again.coeffs, model.coeffs)
    assert written.periphery == preset("pcm_joshi2020").periphery  # untouched sections stay the base's
