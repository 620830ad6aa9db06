"""A run: its config, the train/resume/evaluate/program/drift policy, and its directory.

This is the layer between the learning rules (:mod:`analog_snu.training`) and the command
line (:mod:`analog_snu.cli`); everything the CLI does is one call here.
"""

from analog_snu.experiments.checkpoint import load_checkpoint, load_run, read_checkpoint, save_checkpoint
from analog_snu.experiments.config import ACCELERATORS, HIL_SCHEMES, TASK_DEFAULTS, RunConfig, TrainingConfig, spec_for
from analog_snu.experiments.demo import demo_config, demo_run, run_demo
from analog_snu.experiments.deploy import OpenedRun, device_label, on_device, open_run
from analog_snu.experiments.device_choice import DeviceChoice
from analog_snu.experiments.evaluate import evaluate_run
from analog_snu.experiments.run_dir import CHECKPOINT_NAME, RunDirectory, is_run_directory
from analog_snu.experiments.sources import FLAG_PATHS, SECTIONS, build_config, parse_set, read_toml
from analog_snu.experiments.studies import run_drift_study, run_export_maps
from analog_snu.experiments.train import TrainResult, load_task_for, train_run

__all__ = [
    "ACCELERATORS",
    "CHECKPOINT_NAME",
    "DeviceChoice",
    "FLAG_PATHS",
    "HIL_SCHEMES",
    "OpenedRun",
    "RunConfig",
    "RunDirectory",
    "SECTIONS",
    "TASK_DEFAULTS",
    "TrainResult",
    "TrainingConfig",
    "build_config",
    "demo_config",
    "demo_run",
    "device_label",
    "evaluate_run",
    "is_run_directory",
    "load_checkpoint",
    "load_run",
    "load_task_for",
    "on_device",
    "open_run",
    "parse_set",
    "read_checkpoint",
    "read_toml",
    "run_demo",
    "run_drift_study",
    "run_export_maps",
    "save_checkpoint",
    "spec_for",
    "train_run",
]
