"""The fit report's drift comparison: per-bin statistics, the simulated side's precision and
coverage on data simulated from the true device, and medians at 0 µS on the figure."""

import numpy as np
import pytest

from analog_snu.experiments.fit_device import comparison_reads
from analog_snu.pcm import preset
from analog_snu.pcm.measurements import DriftData, simulate_measurements
from analog_snu.reports.fit_report import BAND, drift_axes_floor, drift_bins, drift_figure

G_MAX = 25.0
TRUE = preset("pcm_joshi2020").updated({"stuck": {"fraction_at_zero": 0.02}})


def drift_data(targets, reads, times=(1.0, 100.0)) -> DriftData:
    reads = np.asarray(reads, dtype=float)
    grid = np.repeat(np.asarray(times, dtype=float)[None, :], len(targets), 0)
    return DriftData("test", tuple(f"d{i}" for i in range(len(targets))), np.asarray(targets, float), grid, reads)


def test_drift_bins_match_hand_computed_medians_and_zero_fractions():
    # three devices in the top bin (8 log bins over [1e-3 g_max, g_max]: 10.5-25 µS); 0.02 µS is inside the zero band (1e-3 g_max = 0.025 µS)
    data = drift_data([12.0, 15.0, 20.0], [[10.0, 0.0], [0.02, 0.0], [14.0, 8.0]])
    simulated = np.stack([data.g, data.g + 1.0, data.g + 3.0])  # (R=3, D, T): bin medians 10, 11, 13 at 1 s
    (only,) = drift_bins(data, simulated, G_MAX)
    assert (only.low, only.high, only.devices) == pytest.approx((G_MAX * 10 ** (-3 / 8), G_MAX, 3))
    np.testing.assert_allclose(only.median, [10.0, 0.0])
    np.testing.assert_allclose(only.at_zero, [1 / 3, 2 / 3])
    np.testing.assert_allclose(only.simulated_median, [11.0, 1.0])
    # replica zero fractions at 100 s: 2/3, 0, 0
    np.testing.assert_allclose(only.simulated_at_zero, [1 / 9, 2 / 9])
    tail = (1 - BAND) / 2
    np.testing.assert_allclose(only.simulated_low, np.quantile([[10.0, 0.0], [11.0, 1.0], [13.0, 3.0]], tail, 0))


def test_true_device_medians_fall_in_the_simulated_band_and_the_line_is_precise():
    """The comparison simulated from the *true* device must explain its own measurements: each
    (bin, time) cell's measured median falls outside the 90 % band with probability 10 %, and cells
    of a bin are correlated over time, so at most 25 % of the cells may miss (for independent cells
    the binomial tail P(X >= 25 % of 30 | p = 0.1) is 0.007; the 5 seeds here give 4 %). The simulated
    line must be an expectation, not one draw: two simulation seeds agree within 30 % of the band
    (one replica of the measured devices, as the report had, moves by about the band itself)."""
    outside = cells = 0
    for seed in range(5):
        data = simulate_measurements(TRUE, programming=0, drift=100, read_noise=0, seed=seed)
        first = drift_bins(data.drift, comparison_reads(TRUE, data, seed=100 + seed).drift, G_MAX)
        second = drift_bins(data.drift, comparison_reads(TRUE, data, seed=200 + seed).drift, G_MAX)
        for a, b in zip(first, second, strict=True):
            outside += int(((a.median < a.simulated_low) | (a.median > a.simulated_high)).sum())
            cells += a.times.size
            width = a.simulated_high - a.simulated_low
            assert np.all(np.abs(a.simulated_median - b.simulated_median) <= 0.3 * width), (a.low, a.high)
    assert outside <= 0.25 * cells, f"{outside} of {cells} measured bin medians outside the simulated band"


def test_a_median_at_zero_is_drawn_at_the_axis_floor_with_a_note():
    low = [[0.0, 0.0], [0.0, 0.0], [0.3, 0.1]]  # 0.141-0.333 µS bin: two of three devices read 0
    high = [[15.0, 14.0], [16.0, 15.0], [18.0, 17.0]]
    data = drift_data([0.2, 0.25, 0.3, 12.0, 15.0, 20.0], low + high)
    fig = drift_figure(data, None, G_MAX)
    floor = drift_axes_floor(drift_bins(data, None, G_MAX), G_MAX)
    assert floor == pytest.approx(7.5)  # half the smallest positive median, 15 µS (100 s, high bin)
    axes = fig.axes[0]
    markers = [line for line in axes.get_lines() if line.get_marker() == "v"]
    assert len(markers) == 1
    np.testing.assert_allclose(markers[0].get_xdata(), [1.0, 100.0])
    np.testing.assert_allclose(markers[0].get_ydata(), [floor, floor])
    assert axes.get_ylim()[0] == pytest.approx(floor)
    assert "median read at 0 µS" in axes.get_title()
    # the censored-read panel shows the fraction at 0: 2 of 3 reads in the low bin
    zeros = fig.axes[1].get_lines()[0]
    np.testing.assert_allclose(zeros.get_ydata(), [100 * 2 / 3, 100 * 2 / 3])
