"""``--device`` and ``--set device.*`` for the commands that put a trained run on a device."""

from __future__ import annotations

import argparse
from typing import Any

from analog_snu.errors import ConfigError
from analog_snu.experiments import parse_set
from analog_snu.pcm import PCMDevice, list_presets, resolve_device

__all__ = ["add_device_arguments", "device_from_args"]


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, metavar="PRESET|FILE",
                        help=f"PCM device: a preset {list_presets()} or a .toml/.json device file "
                             "(default: the run's own device; a digital run needs one)")
    parser.add_argument("--set", action="append", default=[], metavar="device.KEY=VALUE",
                        help="change a device parameter, e.g. --set device.drift.scale=1.5 (repeatable)")


def device_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments ``device``, ``device_source``, ``device_changes`` for the experiment functions."""
    changes = [parse_set(option) for option in args.set]
    for path, _ in changes:
        if not path.startswith("device."):
            raise ConfigError(f"--set here changes device parameters only (device.KEY=VALUE), got {path!r}")
    device: PCMDevice | None = resolve_device(args.device) if args.device else None
    return {"device": device, "device_source": args.device, "device_changes": changes}
