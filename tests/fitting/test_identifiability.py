"""Trade-offs are reported instead of falsely narrow intervals."""

import numpy as np
import pytest

from analog_snu.fitting import fit_device
from analog_snu.fitting.identifiability import numeric_hessian, trade_offs
from analog_snu.pcm import preset
from analog_snu.pcm.measurements import simulate_measurements


def test_numeric_hessian_of_a_quadratic_is_exact():
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    hessian = numeric_hessian(lambda x: 0.5 * x @ a @ x, np.array([0.3, -0.2]))
    assert np.allclose(hessian, a, rtol=1e-4)


def test_trade_offs_find_the_correlated_pair_and_the_flat_parameter():
    # covariance of (a, b, c): a and b correlate at 0.9995, c is independent
    covariance = np.array([[1.0, 0.9995, 0.0], [0.9995, 1.0, 0.0], [0.0, 0.0, 1.0]])
    found = trade_offs(np.linalg.inv(covariance), ["a", "b", "c"])
    assert sorted((name, partners) for name, partners, _ in found) == [("a", ("b",)), ("b", ("a",))]
    assert all(abs(r - 0.9995) < 1e-6 for _, _, r in found)  # R of two parameters = |correlation|
    assert trade_offs(np.linalg.inv(np.diag([1.0, 2.0])), ["a", "b"]) == []
    flat = trade_offs(np.array([[1.0, 0.0], [0.0, 0.0]]), ["a", "b"])
    assert flat == [("b", (), 1.0)]


def test_drift_read_in_a_narrow_window_near_t0_reports_the_t0_trade_off():
    """Designed degenerate case: every device read only between 15 s and 30 s after programming
    (t0 = 20 s). The local log-log slope is nu t/(t + t0): t0 and the nu statistics trade off, and
    the fit says so (t0 inherited with a warning, or a wide interval; never a falsely narrow one)."""
    data = simulate_measurements(preset("pcm_joshi2020"), programming=0, drift=200, read_noise=0,
                                 drift_times=(15.0, 20.0, 25.0, 30.0), seed=3)
    fit = fit_device(data, bootstrap=4)
    assert any(w.startswith("drift.t0 is") and "trades off against the nu statistics" in w for w in fit.warnings), \
        fit.warnings
    t0 = [p for p in fit.parameters if p.name == "drift.t0" and p.identified]
    assert not t0 or t0[0].high - t0[0].low > 2 * t0[0].value  # inherited, or a wide interval


def test_drift_read_only_long_after_t0_inherits_t0():
    """Reads at t >> t0 only: ln(1 + t/t0) = ln t - ln t0, a shift the devices' own G_P absorbs."""
    data = simulate_measurements(preset("pcm_joshi2020").updated({"drift": {"t0": 1.0}}), programming=0, drift=200,
                                 read_noise=0, drift_times=(3600.0, 36_000.0, 360_000.0, 3_600_000.0), seed=3)
    fit = fit_device(data, bootstrap=4)
    assert any("drift.t0 is not identified by the drift data" in w for w in fit.warnings), fit.warnings
    assert "drift.t0" not in [p.name for p in fit.parameters] and "drift.t0" in fit.inherited
    assert fit.device.drift.t0 == pytest.approx(20.0)


def test_drift_read_over_decades_identifies_t0():
    data = simulate_measurements(preset("pcm_joshi2020"), programming=0, drift=200, read_noise=0, seed=3)
    fit = fit_device(data, bootstrap=4)
    t0 = fit.parameter("drift.t0")
    assert t0.identified and t0.low < 20.0 < t0.high
    assert not any(w.startswith("drift.t0") for w in fit.warnings)
