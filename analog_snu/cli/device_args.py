"""``--device`` and ``--set device.*`` for the commands that put a trained run on a device."""

from __future__ import annotations

import argparse

from analog_snu.experiments import DeviceChoice, parse_set
from analog_snu.pcm import list_presets

__all__ = ["add_device_arguments", "device_from_args"]


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, metavar="PRESET|FILE",
                        help=f"PCM device: a preset {list_presets()} or a .toml/.json device file "
                             "(default: the run's own device; a digital run needs one)")
    parser.add_argument("--set", action="append", default=[], metavar="device.KEY=VALUE",
                        help="change a device parameter, e.g. --set device.drift.scale=1.5 (repeatable)")


def device_from_args(args: argparse.Namespace) -> DeviceChoice:
    """The device of ``--device`` and ``--set device.*``, resolved once, for the experiment functions."""
    return DeviceChoice.of(args.device or None, [parse_set(option) for option in args.set])
