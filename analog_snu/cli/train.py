"""``analog-snu train``: train a task model, checkpointing every epoch (see :mod:`analog_snu.training.runs`)."""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path
from typing import Any

from analog_snu.errors import ConfigError
from analog_snu.models import CELLS, TRAINING_MODES
from analog_snu.tasks import TASKS
from analog_snu.training.optimizers import OPTIMIZERS
from analog_snu.training.runs import GRAPES_VARIANTS, RunConfig, train_run

__all__ = ["add_arguments", "run", "config_from_args"]

#: flags that map one-to-one onto RunConfig fields
_FIELDS = ("task", "model", "layers", "device", "training", "optimizer", "lr", "batch_size", "epochs", "seed",
           "grapes", "data", "steps", "rate", "bptt", "eval_batch_size", "train_limit", "recurrent",
           "tie_weights", "embedding_size", "decay", "g", "threshold")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Every default is None: a TOML --config fills what the flags leave open.
    parser.add_argument("--task", help=f"one of {sorted(TASKS)}")
    parser.add_argument("--model", help=f"hidden unit, one of {list(CELLS)} (default snu)")
    parser.add_argument("--layers", type=int, nargs="+", help="hidden layer widths (default per task, e.g. 256 256)")
    parser.add_argument("--device", help="'digital', 'pcm' (aihwkit stock PCM) or a device preset name")
    parser.add_argument("--training", help=f"one of {list(TRAINING_MODES)} (default digital)")
    parser.add_argument("--optimizer", help=f"one of {sorted(OPTIMIZERS)} (default adam)")
    parser.add_argument("--lr", type=float, help="learning rate (default per task)")
    parser.add_argument("--batch-size", type=int, help="training batch size (default per task)")
    parser.add_argument("--epochs", type=int, help="epochs (default 1)")
    parser.add_argument("--seed", type=int, help="seed of weights, shuffles and spikes (default 0)")
    parser.add_argument("--grapes", help=f"GRAPES variant, one of {list(GRAPES_VARIANTS)}")
    parser.add_argument("--data", help="data file or directory (default: the task's bundled data)")
    parser.add_argument("--steps", type=int, help="rate coding: time steps per image (default 20)")
    parser.add_argument("--rate", type=float, help="rate coding: spikes at full intensity (default 6)")
    parser.add_argument("--bptt", type=int, help="language modelling: tokens per segment (default 35)")
    parser.add_argument("--eval-batch-size", type=int, help="evaluation batch size (default 256)")
    parser.add_argument("--train-limit", type=int, help="use only the first N training examples (default all)")
    parser.add_argument("--recurrent", action="store_const", const=True, help="SNU layers with recurrent weights")
    parser.add_argument("--tie-weights", action="store_const", const=True, help="language model: tie decoder to embedding")
    parser.add_argument("--embedding-size", type=int, help="language model: embedding width (default first layer)")
    parser.add_argument("--decay", type=float, help="SNU membrane decay (default 0.8)")
    parser.add_argument("--g", help="SNU activation: relu, leaky_relu, identity (default relu)")
    parser.add_argument("--threshold", type=float, help="SNU initial threshold (default 1)")
    parser.add_argument("--out", help="run directory")
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN_DIR",
                        help="continue the run in --out (or in RUN_DIR) from its last checkpoint")
    parser.add_argument("--force", action="store_true", help="overwrite a run directory that holds a run")
    parser.add_argument("--config", help="TOML file with the same keys as the flags (flags win)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars and epoch lines")


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"--config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config file {path} is not valid TOML: {exc}") from exc
    data = {key.replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(data) - set(_FIELDS) - {"out"})
    if unknown:
        raise ConfigError(f"unknown keys {unknown} in {path}; valid keys: {sorted(_FIELDS + ('out',))}")
    return data


def config_from_args(args: argparse.Namespace) -> tuple[RunConfig | None, Path]:
    """The RunConfig and run directory from flags over an optional TOML file.

    With ``--resume`` and no task given, the config is read from the run directory (returns None).
    """
    values = _read_toml(args.config) if args.config else {}
    for name in _FIELDS:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    out = args.resume if isinstance(args.resume, str) else args.out or values.get("out")
    if out is None:
        raise ConfigError("--out RUN_DIR is required (or --resume RUN_DIR)")
    values.pop("out", None)
    if "task" not in values:
        if args.resume:
            return None, Path(out)
        raise ConfigError(f"--task is required; valid tasks: {sorted(TASKS)}")
    if "layers" in values:
        values["layers"] = tuple(values["layers"])
    return RunConfig.from_dict(values), Path(out)


def run(args: argparse.Namespace) -> int:
    config, run_dir = config_from_args(args)
    if config is None:  # --resume RUN_DIR: the run's own config, under the flags given (e.g. --epochs)
        record_path = run_dir / "config.json"
        if not record_path.is_file():
            raise ConfigError(f"cannot resume: {record_path} does not exist")
        stored = json.loads(record_path.read_text())["config"]
        given = {name: getattr(args, name) for name in _FIELDS if getattr(args, name) is not None}
        if "layers" in given:
            given["layers"] = tuple(given["layers"])
        config = RunConfig.from_dict({**stored, **given})
    result = train_run(config, run_dir, resume=bool(args.resume), force=args.force, progress=not args.no_progress)
    metric = result.final["metric"]
    print(f"{config.task} {config.model} ({config.training}): test {metric} {result.final[f'test_{metric}']:.4f}; "
          f"run in {run_dir}")
    return 0
