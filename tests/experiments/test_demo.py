"""The demo (`analog-snu demo`, `make demo`) at toy size: two trainings, the PCM one programmed and drifted."""

from analog_snu.experiments import run_demo


def test_demo_reports_three_accuracies(tmp_path):
    results = run_demo(epochs=1, out=tmp_path, progress=False, hidden=8)
    for key in ("digital_accuracy", "hwa_accuracy", "pcm_accuracy_1day"):
        assert 0.0 <= results[key] <= 1.0, key
    assert results["runs"] == str(tmp_path) and (tmp_path / "hwa" / "eval").is_dir()
