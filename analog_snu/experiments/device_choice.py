"""The PCM device a command puts a trained run on: resolved once, with where it came from.

``--device PRESET|FILE`` and ``--set device.KEY=VALUE`` of ``eval``, ``drift-study`` and
``export-maps`` (and the device of a sweep's evaluation) become one :class:`DeviceChoice`
at the boundary: the device by value, the name it came by (which names the result folders),
and the changes asked for. Without a device the changes apply to the run's own device, which
is known once the run is open (:meth:`DeviceChoice.applied_to`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from analog_snu.errors import ConfigError
from analog_snu.experiments.sources import set_path
from analog_snu.pcm import PCMDevice, resolve_device

__all__ = ["DeviceChoice"]


@dataclass(frozen=True)
class DeviceChoice:
    """A device by value and its provenance; the default is the run's own device, unchanged.

    >>> choice = DeviceChoice.of("pcm_joshi2020", [("device.drift.scale", 1.5)])
    >>> choice.source, choice.device.name, choice.applied_to(None).drift.scale
    ('pcm_joshi2020', 'pcm_joshi2020', 1.5)
    """

    device: PCMDevice | None = None
    """The device by value; ``None``: the run's own (the one it was trained on)."""
    source: str | None = None
    """The preset name or device file the device came from; ``None``: none given."""
    changes: tuple[tuple[str, Any], ...] = ()
    """``("device.KEY", value)`` pairs, applied in order to :attr:`device` (or the run's own)."""

    def __post_init__(self) -> None:
        if self.device is not None and not isinstance(self.device, PCMDevice):
            raise ConfigError(f"device must be a PCMDevice or None, got {type(self.device).__name__}")
        for path, _ in self.changes:
            if not isinstance(path, str) or not path.startswith("device."):
                raise ConfigError(f"--set here changes device parameters only (device.KEY=VALUE), got {path!r}")

    @classmethod
    def of(cls, device: DeviceChoice | PCMDevice | str | None = None,
           changes: Iterable[tuple[str, Any]] = ()) -> DeviceChoice:
        """The choice of a ``device`` given as a preset name or device file (resolved here; it
        becomes the :attr:`source`), a :class:`PCMDevice`, a choice, or ``None`` (the run's own),
        with ``changes`` on top."""
        changes = tuple((path, value) for path, value in changes)
        if isinstance(device, DeviceChoice):
            return cls(device.device, device.source, device.changes + changes)
        if isinstance(device, str):
            return cls(resolve_device(device), device, changes)
        return cls(device, None, changes)

    @property
    def chosen(self) -> bool:
        """True when a device or a change was asked for (else the run stays as trained)."""
        return self.device is not None or bool(self.changes)

    def applied_to(self, own: PCMDevice | None) -> PCMDevice:
        """The device to use for a run whose own device is ``own`` (``None``: a digital run)."""
        device = self.device if self.device is not None else own
        if device is None:
            raise ConfigError("this run is digital: name a PCM device to deploy it on, e.g. --device pcm_joshi2020 "
                              "or --device my_device.toml")
        for path, value in self.changes:
            device = PCMDevice.from_dict(set_path({"device": device.to_dict()}, path, value)["device"])
        return device
