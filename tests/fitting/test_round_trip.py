"""Round trip: measurements simulated by the package's own PCM noise model from a known device,
fitted back; the truth must lie in the fitted parameters' 99 % bootstrap intervals.

Binomial bound. With ``BOOTSTRAP`` = 8 resamples the normal interval (estimate +- 2.576 bootstrap
sd) covers like a t interval with 7 degrees of freedom: about 96 %. Over ``SEEDS`` = 20
independent seeds the number of *false claims* (an interval is given and misses the truth) is
then Binomial(20, 0.04); P(X >= 6) = 3.5e-4, so a parameter may miss in at most ``MAX_MISSES`` = 5
seeds. A biased estimator misses in most seeds and fails. A parameter the fit reports as not
identified (no interval, a warning) is no false claim; the parameters that the design informs
(``CORE``) must in addition be covered in most seeds (>= 11 of 20), each drift parameter in at
least ``MIN_DRIFT_COVERED`` = 7 (the lines of nu's statistics are clipped; where few devices see a
line unclipped the fit reports the line as not identified).
"""

import functools

import numpy as np
import pytest
from scipy import stats

from analog_snu.fitting import effective_parameters, fit_device
from analog_snu.fitting.estimate import parameter_values
from analog_snu.pcm import preset
from analog_snu.pcm.measurements import simulate_measurements

SEEDS = 20
BOOTSTRAP = 8
MAX_MISSES = 5
#: each drift parameter must be identified and cover the truth in this many seeds (the lines of
#: nu's statistics are clipped: where few devices see a line unclipped, it is reported as not identified)
MIN_DRIFT_COVERED = 7
#: informed by the simulated design whatever the device
CORE = ("programming.coeffs[0]", "stuck.fraction_at_zero", "stuck.fraction_at_gmax", "read_noise.q",
        "read_noise.exponent")


def test_the_stated_binomial_bound_holds():
    coverage = 2 * stats.t.cdf(2.576, BOOTSTRAP - 1) - 1
    assert 0.955 < coverage < 0.965
    assert stats.binom.sf(MAX_MISSES, SEEDS, 1 - coverage) < 1e-3


def random_device(rng: np.random.Generator):
    """A valid device away from the presets: every fitted quantity scaled or set at random."""
    return preset("pcm_joshi2020").updated({
        "name": "random",
        "conductance": {"g_max": float(rng.uniform(15, 35))},
        "programming": {"scale": float(rng.uniform(0.7, 1.5))},
        "read_noise": {"scale": float(rng.uniform(0.7, 1.5)), "exponent": float(rng.uniform(0.5, 0.8))},
        "drift": {"scale": float(rng.uniform(0.8, 1.5)), "nu_mean_slope": float(rng.uniform(-0.03, -0.01)),
                  "nu_std_slope": float(rng.uniform(-0.02, -0.008))},
        "stuck": {"fraction_at_zero": float(rng.uniform(0.0, 0.03)), "fraction_at_gmax": float(rng.uniform(0, 0.01))},
    })


DEVICES = {
    "pcm_joshi2020": (lambda: preset("pcm_joshi2020"), 400),
    "pcm_aged_lowyield": (lambda: preset("pcm_aged_lowyield"), 1200),
    "random": (lambda: random_device(np.random.default_rng(27)), 600),
}


@functools.lru_cache(maxsize=None)
def round_trip(name: str) -> tuple[dict, dict, dict]:
    """Per fitted parameter over the seeds: (seeds fitted, seeds whose interval covers the truth,
    seeds whose interval misses it)."""
    make, programming = DEVICES[name]
    device = make()
    truth = effective_parameters(device)
    seen, covered, misses = {}, {}, {}
    for seed in range(SEEDS):
        data = simulate_measurements(device, programming=programming, drift=80, read_noise=40, seed=seed)
        fit = fit_device(data, bootstrap=BOOTSTRAP, seed=seed, g_max=device.conductance.g_max)
        true_values = parameter_values(truth, fit.estimate.fitted)
        for p in fit.parameters:
            seen[p.name] = seen.get(p.name, 0) + 1
            if p.identified:
                hit = p.covers(true_values[p.name])
                covered[p.name] = covered.get(p.name, 0) + hit
                misses[p.name] = misses.get(p.name, 0) + (not hit)
    return seen, covered, misses


@pytest.mark.parametrize("name", list(DEVICES))
def test_programming_stuck_and_read_noise_parameters_cover_the_true_device(name):
    seen, covered, misses = round_trip(name)
    assert set(CORE) <= set(seen)
    checked = {k: v for k, v in misses.items() if not k.startswith("drift.")}
    false_claims = {k: v for k, v in checked.items() if v > MAX_MISSES}
    assert not false_claims, f"{name}: intervals missing the truth in more than {MAX_MISSES} of {SEEDS} seeds: {false_claims}"
    for key in CORE:
        assert covered.get(key, 0) >= 11, f"{name}: {key} covered in {covered.get(key, 0)} of {SEEDS} seeds"


@pytest.mark.parametrize("name", list(DEVICES))
def test_drift_parameters_cover_the_true_device(name):
    seen, covered, misses = round_trip(name)
    drift = {k: v for k, v in misses.items() if k.startswith("drift.")}
    assert drift, "no drift parameter was fitted"
    false_claims = {k: v for k, v in drift.items() if v > MAX_MISSES}
    assert not false_claims, f"{name}: intervals missing the truth in more than {MAX_MISSES} of {SEEDS} seeds: {false_claims}"
    # the fit may call a clipped line not identified (no interval, a warning), but not in most seeds
    rarely = {k: covered.get(k, 0) for k in drift if covered.get(k, 0) < MIN_DRIFT_COVERED}
    assert not rarely, f"{name}: drift parameters covered in fewer than {MIN_DRIFT_COVERED} of {SEEDS} seeds: {rarely}"
