"""Shared by ``export-maps`` and ``drift-study``: the network to program (a saved run or the
digits demo network), how to evaluate it, and which PCM device to use."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from analog_snu.device_models import PCMDevice, list_presets, preset
from analog_snu.errors import CheckpointError, ConfigError

__all__ = ["Target", "add_target_arguments", "load_target", "resolve_device_arg"]


@dataclass
class Target:
    """A trained PCM network, its evaluation and where its outputs go."""

    model: nn.Module
    evaluate: Callable[[nn.Module], float]
    metric: str
    device: PCMDevice | None
    """Device to program stock-config tiles with (``None``: the tiles' own)."""
    out_dir: Path


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a run directory of `analog-snu train`")
    source.add_argument("--demo", action="store_true",
                        help="train the digits demo network (64-128-10 SNU, HWA on --device) and use it")
    parser.add_argument("--device", default=None, metavar="NAME|FILE",
                        help=f"PCM device: a preset {list_presets()} or a .toml/.json device file; default: the "
                             "run's own device (pcm_joshi2020 for aihwkit's stock 'pcm' device and for --demo)")
    parser.add_argument("--split", default="test", help="split to evaluate for a run (default test)")
    parser.add_argument("--epochs", type=int, default=5, help="--demo: training epochs (default 5)")
    parser.add_argument("--hidden", type=int, default=128, help="--demo: hidden SNU units (default 128)")
    parser.add_argument("--train-seed", type=int, default=0, help="--demo: seed of weights and data order (default 0)")


def resolve_device_arg(value: str | None) -> PCMDevice | None:
    """A preset name or a device file path -> PCMDevice; ``None`` stays ``None``."""
    if value is None:
        return None
    if value in list_presets():
        return preset(value)
    if Path(value).suffix.lower() in (".toml", ".json"):
        return PCMDevice.from_file(value)
    raise ConfigError(f"--device must be a preset {list_presets()} or a .toml/.json device file, got {value!r}")


def _demo_target(args: argparse.Namespace, device: PCMDevice | None) -> Target:
    from analog_snu.data import load_digits
    from analog_snu.demo import digit_batches
    from analog_snu.layers import SNUNetwork
    from analog_snu.training import accuracy, evaluate, make_optimizer, train_epoch

    if args.epochs < 1 or args.hidden < 1:
        raise ConfigError(f"--epochs and --hidden must be >= 1, got {args.epochs} and {args.hidden}")
    device = device or preset("pcm_joshi2020")
    data = load_digits()
    torch.manual_seed(args.train_seed)
    model = SNUNetwork([64, args.hidden, 10], output="mean", rpu_config=device.rpu_config("hwa"))
    optimizer = make_optimizer(model, "adam", lr=5e-3)
    generator = torch.Generator().manual_seed(args.train_seed)
    for epoch in range(args.epochs):
        batches = digit_batches(data.train_images, data.train_labels, 32, generator)
        train_epoch(model, batches, optimizer, nn.CrossEntropyLoss(), desc=f"demo epoch {epoch + 1}/{args.epochs}",
                    progress=False)

    def run_eval(net: nn.Module) -> float:
        test_generator = torch.Generator().manual_seed(args.train_seed + 10_000)  # same test spikes each time
        batches = digit_batches(data.test_images, data.test_labels, 256, test_generator, shuffle=False)
        return evaluate(net, batches, accuracy)

    return Target(model, run_eval, "accuracy", None, Path("."))


def _run_target(args: argparse.Namespace, device: PCMDevice | None) -> Target:
    from analog_snu.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from analog_snu.training.runs import RunConfig, load_task_for

    run_dir = Path(args.run_dir)
    record = run_dir / "config.json"
    if not record.is_file() or not (run_dir / CHECKPOINT_NAME).is_file():
        raise CheckpointError(f"{run_dir} is not a run directory of `analog-snu train` (no config.json/checkpoint)")
    try:
        config = RunConfig.from_dict(json.loads(record.read_text())["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{record} is not a valid run record: {exc}") from exc
    model, spec, _ = load_checkpoint(run_dir / CHECKPOINT_NAME)
    if spec.training == "digital":
        raise ConfigError("this run is digital (training 'digital'); PCM programming needs an hwa- or pulsed-trained run")
    if device is None and spec.device == "pcm":
        device = preset("pcm_joshi2020")  # aihwkit's stock PCM tiles carry no device of ours
    task = load_task_for(config)

    def run_eval(net: nn.Module) -> float:
        return float(task.evaluate(net, args.split)[task.metric])

    return Target(model, run_eval, task.metric, device, run_dir)


def load_target(args: argparse.Namespace) -> Target:
    """The network named on the command line, trained and in eval mode."""
    device = resolve_device_arg(args.device)
    target = _demo_target(args, device) if args.demo else _run_target(args, device)
    target.model.eval()
    return target
