"""The work of a run for the thread policy: the largest product of a batch, drawn without touching the run's RNG."""

import json

import torch

from analog_snu.experiments import build_config, evaluate_run, load_task_for, run_threads, train_run
from analog_snu.experiments.run_threads import batch_work
from analog_snu.tasks import Task


def test_digits_work_is_rows_times_the_largest_layer():
    config = build_config(flags={"task": "digits", "train-limit": 64})
    task = load_task_for(config)
    state = torch.get_rng_state()
    # T = 20 steps x N = 32 images; layers 64 -> 128 -> 10: the largest product is 64 x 128
    assert batch_work(config, task) == 20 * 32 * 64 * 128
    assert torch.equal(torch.get_rng_state(), state)  # the first batch came from its own generator


class _Tokens(Task):
    name, head, input_size, output_size = "ptb", "language", 1000, 1000

    def train_batches(self, generator):
        yield torch.zeros(35, 20, dtype=torch.long), torch.zeros(35, 20, dtype=torch.long)


def test_a_language_models_input_is_its_embedding_and_convolutions_count_as_large():
    config = build_config(flags={"task": "ptb", "layers": [200]})
    assert batch_work(config, _Tokens()) == 35 * 20 * 200 * 1000  # embedding 200 -> 200 -> decoder 1000
    small_vocabulary = type("_FewTokens", (_Tokens,), {"input_size": 100, "output_size": 100})()
    wide = build_config(flags={"task": "ptb", "layers": [200], "embedding-size": 600})
    assert batch_work(wide, small_vocabulary) == 35 * 20 * 600 * 200  # embedding 600 -> 200 -> decoder 100
    conv = build_config(flags={"task": "digits", "conv-channels": [4]})
    assert batch_work(conv, _Tokens()) is None


def test_training_and_evaluation_apply_the_runs_setting(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(run_threads, "apply_threads", lambda setting, work: calls.append((setting, work)))
    config = build_config(flags={"task": "digits", "layers": [8], "train-limit": 64, "epochs": 1, "threads": 3})
    train_run(config, tmp_path / "run", progress=False)
    assert calls == [(3, 20 * 32 * 64 * 8)]
    assert "threads" not in json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    evaluate_run(tmp_path / "run", device=None, drift_times=[])
    assert calls[1] == ("auto", 20 * 32 * 64 * 8)  # the stored config holds no count: auto


