"""The simulated measurements (pcm/measurements.py, on PCMPhysics) and the simulated chip
(pcm/chip.py) must give reads of the same distribution: same targets, same times."""

import numpy as np
import torch
from scipy import stats

from analog_snu.pcm import preset
from analog_snu.pcm.chip import SimulatedChip
from analog_snu.pcm.measurements import read_targets_over_time

TIMES = (1.0, 300.0, 86_400.0)


def test_measurement_reads_and_chip_reads_agree_in_distribution():
    """Two-sample KS per (target range, time), 9 tests at level 1e-3 (family-wise <= 1 %). Targets
    stay 3 programming spreads below g_max and no device is stuck at g_max: there the two differ
    by design (the chip clips a programmed conductance at the device's g_max and reads a stuck
    device without read noise; PCMPhysics, like aihwkit, does neither)."""
    device = preset("pcm_joshi2020").updated({"drift": {"scale": 1.3}, "stuck": {"fraction_at_zero": 0.05}})
    g_max, n = device.conductance.g_max, 3000
    targets = g_max * np.exp(np.log(0.01) * np.random.default_rng(0).random(n)) * 0.85
    measured = read_targets_over_time(device, targets, np.tile(TIMES, (n, 1)), seed=1)
    chip = SimulatedChip(device, {"tile": (1, n + 1)}, seed=2, headroom=1.0)
    chip.program("tile", torch.tensor(np.append(targets / g_max, 1.0), dtype=torch.float32)[None, :])
    np.testing.assert_allclose(chip.arrays["tile"].g_target[0, 0, 0, :-1].numpy(), targets, rtol=1e-6)
    elapsed = 0.0
    for k, t in enumerate(TIMES):
        chip.advance(t - elapsed)
        elapsed = t
        read = chip.read_conductances("tile")[0, 0, 0, :-1].numpy()
        for low, high in ((0.0, 0.05), (0.05, 0.3), (0.3, 1.0)):
            inside = (targets >= low * g_max) & (targets < high * g_max)
            p = stats.ks_2samp(measured[inside, k], read[inside]).pvalue
            assert p > 1e-3, f"t = {t} s, targets {low}-{high} g_max: KS p = {p:.2g}"
        # the reads at 0 µS (programming clamp, stuck devices, read noise) in the same proportion
        zero_m, zero_c = (measured[:, k] == 0).mean(), (read == 0).mean()
        assert abs(zero_m - zero_c) < 4 * np.sqrt(2 * zero_m * (1 - zero_m) / n) + 1e-9
