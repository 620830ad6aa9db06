"""benchmarks/deep_snu_rates.py: silent deep SNUs get no gradient, firing ones do."""


def test_silent_layers_block_the_gradient_and_firing_layers_pass_it(capsys, load_benchmark):
    script = load_benchmark("deep_snu_rates")
    rates, gradient = script.rates_and_gradient("snu", [32, 32, 32], "default", threshold=1.0)
    assert len(rates) == 3 and rates[-1] == 0.0 and gradient == 0.0  # nothing reaches the readout
    rates, gradient = script.rates_and_gradient("snu", [32, 32, 32], "he_uniform", threshold=0.25)
    assert all(0.0 < r < 1.0 for r in rates) and gradient > 0.0
    script.main(["--layers", "8", "8", "--cells", "ssnu", "--inits", "default", "--thresholds", "1"])
    assert " ssnu    default threshold 1     rates " in capsys.readouterr().out
