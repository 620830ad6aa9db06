"""The main job: an SNU network on real handwritten digits, digital and on simulated PCM.

Two runs of the ``digits`` task with its defaults (64-128-10 SNU, 15 epochs, 8x8 digits
rate-coded over 20 steps with 10 expected spikes at full intensity): one digital, one with
hardware-aware training on preset ``pcm_joshi2020``. The PCM network is then programmed
(seeded) and drifted to one day after programming (global drift compensation) before testing.
Every figure comes from the experiment layer, so ``analog-snu train --task digits`` with the
same settings reproduces it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from analog_snu.errors import CheckpointError
from analog_snu.experiments.config import RunConfig
from analog_snu.experiments.evaluate import evaluate_run
from analog_snu.experiments.records import read_record, record_config
from analog_snu.experiments.run_dir import RunDirectory
from analog_snu.experiments.train import train_run
from analog_snu.files import read_json_file
from analog_snu.pcm import preset
from analog_snu.times import format_time
from analog_snu.training.loop import ProgressMode

__all__ = ["run_demo", "demo_config", "demo_run", "PCM_PRESET", "ONE_DAY_S", "LABELS"]

PCM_PRESET = "pcm_joshi2020"
ONE_DAY_S = 86_400.0


def demo_config(training: str, epochs: int = 15, seed: int = 0, hidden: int = 128,
                device: str = PCM_PRESET) -> RunConfig:
    """The digits run of the demo: ``training`` "digital" or "hwa" (on ``device``)."""
    return RunConfig.from_dict({
        "task": {"name": "digits"}, "model": {"layers": [hidden]},
        "device": None if training == "digital" else preset(device).to_dict(),
        "device_source": None if training == "digital" else device,
        "training": {"mode": training, "epochs": epochs, "seed": seed},
    })


#: what the demo's lines call its two trainings
LABELS = {"digital": "digital SNU", "hwa": "PCM SNU, HWA-trained"}


def demo_run(out: Path, training: str, *, epochs: int = 15, seed: int = 0, hidden: int = 128,
             device: str = PCM_PRESET, progress: bool | ProgressMode = False) -> tuple[Path, dict[str, Any]]:
    """Train the demo run in ``out`` unless it holds that finished run already; its final metrics.
    Its lines are labelled (:data:`LABELS`)."""
    config = demo_config(training, epochs, seed, hidden, device)
    run = RunDirectory(out)
    if run.path.is_dir() and run.finished:
        if record_config(read_record(run.path)) == config:
            return out, read_json_file(run.path / "final.json", "final.json", error=CheckpointError)
    result = train_run(config, out, progress=progress, force=run.path.is_dir() and run.started,
                       label=LABELS.get(training, training))
    return out, result.final


def run_demo(epochs: int = 15, seed: int = 0, out: str | Path | None = None,
             progress: bool | ProgressMode = True, hidden: int = 128) -> dict[str, Any]:
    """Train the digital and the PCM (HWA) digits runs, program and drift the PCM one; test accuracies.

    ``hidden``: width of the hidden layer (128 in the demo; smaller for quick checks)."""
    with tempfile.TemporaryDirectory(prefix="analog_snu_demo_") as scratch:
        root = Path(out) if out is not None else Path(scratch)
        results: dict[str, Any] = {}
        for training in ("digital", "hwa"):
            path, final = demo_run(root / training, training, epochs=epochs, seed=seed, hidden=hidden,
                                   progress=progress)
            results[f"{training}_accuracy"] = final["test_accuracy"]
            results[f"{training}_train_s"] = final["mean_train_s_per_epoch"] * epochs
        evaluation = evaluate_run(root / "hwa", drift_times=[ONE_DAY_S], seed=seed)
        results["pcm_accuracy_1day"] = evaluation["drift"][format_time(ONE_DAY_S)]
        results["runs"] = str(root) if out is not None else None
    return results
