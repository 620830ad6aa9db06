"""Measurements of PCM devices: the data a lab takes, and the same simulated from a device.

The containers (:class:`ProgrammingData`, :class:`DriftData`, :class:`ReadNoiseData`,
:class:`Measurements`) hold the three measurement kinds as arrays; :mod:`analog_snu.fitting.measurements`
reads and writes them as CSV files and :mod:`analog_snu.fitting` fits a device to them.

:func:`simulate_measurements` programs devices with :class:`~analog_snu.pcm.physics.PCMPhysics`
(the statistics every PCM tile uses: programming noise, per-device drift exponent, ``g_max``
spread, stuck devices) and reads them as a lab would: one read after programming, reads of other
devices at several times, repeated reads of a third set at close times (each read a fresh 1/f
read-noise sample). Used to test fits against a known device, for the worked example and for the
simulated side of a fit report.

Targets: the programming set spreads uniformly over [0, g_max], the drift and read-noise sets
log-uniformly over [:data:`LOG_TARGET_MIN` g_max, g_max] (drift statistics change with
ln(G_T / g_max)). Each device is the G+ of a pair whose G- targets 0 µS (not read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from analog_snu.errors import ConfigError
from analog_snu.pcm.device import PCMDevice
from analog_snu.pcm.physics import PCMPhysics

__all__ = ["KINDS", "ProgrammingData", "DriftData", "ReadNoiseData", "Measurements", "simulate_measurements",
           "program_targets", "read_targets_over_time", "DRIFT_TIMES", "READ_TIMES", "LOG_TARGET_MIN"]

#: the measurement kinds, in the order of :class:`Measurements`' fields
KINDS = ("programming", "drift", "read_noise")


@dataclass(frozen=True)
class ProgrammingData:
    """One read per device shortly after programming. Shape: every array (N,) float64."""

    source: str
    device_id: tuple[str, ...]
    g_target: np.ndarray
    g_measured: np.ndarray
    t: np.ndarray
    """Seconds since programming of the read (0 where the file has no ``t_seconds``)."""

    def subset(self, index: np.ndarray) -> ProgrammingData:
        return ProgrammingData(self.source, tuple(self.device_id[i] for i in index), self.g_target[index],
                               self.g_measured[index], self.t[index])

    @property
    def devices(self) -> int:
        return len(self.device_id)


@dataclass(frozen=True)
class DriftData:
    """Reads over time of the same devices. Shape: g_target (D,); t, g (D, T_d) padded with NaN
    (devices may have different numbers of reads)."""

    source: str
    device_id: tuple[str, ...]
    g_target: np.ndarray
    t: np.ndarray
    g: np.ndarray

    def subset(self, index: np.ndarray) -> DriftData:
        return DriftData(self.source, tuple(self.device_id[i] for i in index), self.g_target[index],
                         self.t[index], self.g[index])

    @property
    def devices(self) -> int:
        return len(self.device_id)


@dataclass(frozen=True)
class ReadNoiseData:
    """Repeated reads at close times. Shape: t, g (D, R) padded with NaN."""

    source: str
    device_id: tuple[str, ...]
    t: np.ndarray
    g: np.ndarray

    def subset(self, index: np.ndarray) -> ReadNoiseData:
        return ReadNoiseData(self.source, tuple(self.device_id[i] for i in index), self.t[index], self.g[index])

    @property
    def devices(self) -> int:
        return len(self.device_id)


@dataclass(frozen=True)
class Measurements:
    """What a lab measured; each kind is optional (``None``: inherited from the base device)."""

    programming: ProgrammingData | None = None
    drift: DriftData | None = None
    read_noise: ReadNoiseData | None = None
    sources: tuple[str, ...] = field(default=())

    def kinds(self) -> list[str]:
        return [kind for kind in KINDS if getattr(self, kind) is not None]


#: lowest target of the drift and read-noise sets, as a fraction of g_max
LOG_TARGET_MIN = 0.01

#: reads of the drift set: 1 s to a day after programming (s)
DRIFT_TIMES = (1.0, 20.0, 300.0, 3600.0, 86_400.0)
#: reads of the read-noise set: ten reads a second apart, a minute after programming (s)
READ_TIMES = tuple(60.0 + k for k in range(10))


def _state(device: PCMDevice, targets: np.ndarray, generator: torch.Generator):
    """Program one device per target (the G+ of a pair; a last pair at g_max pins the mapping)."""
    model = PCMPhysics(device.updated({"conductance": {"significance": [1.0]}}))
    weights = torch.as_tensor(np.append(np.asarray(targets, dtype=float) / device.conductance.g_max, 1.0))
    state = model.program_state(weights.reshape(1, -1), generator)
    return model, state


def _read(model: PCMPhysics, state, t: float, generator: torch.Generator) -> np.ndarray:
    model.drift_state(state, float(t), generator)
    return state.g_now[0, 0, 0, :-1].numpy().copy()


def _targets(kind: str, count: int, g_max: float, generator: torch.Generator) -> np.ndarray:
    u = torch.rand(count, generator=generator, dtype=torch.float64).numpy()
    return g_max * (u if kind == "uniform" else np.exp(np.log(LOG_TARGET_MIN) * (1 - u)))


def program_targets(device: PCMDevice, targets: Sequence[float], seed: int = 0, t: float = 0.0) -> np.ndarray:
    """One read at ``t`` s of devices programmed to ``targets`` (µS). Shape: (len(targets),)."""
    generator = torch.Generator().manual_seed(seed)
    model, state = _state(device, np.asarray(targets), generator)
    return _read(model, state, t, generator)


def read_targets_over_time(device: PCMDevice, targets: Sequence[float], times: np.ndarray, seed: int = 0
                           ) -> np.ndarray:
    """Devices programmed to ``targets`` (µS) read at ``times`` (s; per device, NaN = no read).

    Shape: targets (D,), times (D, T) -> reads (D, T), NaN where ``times`` is NaN."""
    generator = torch.Generator().manual_seed(seed)
    model, state = _state(device, np.asarray(targets), generator)
    times = np.asarray(times, dtype=float)
    reads = np.full(times.shape, np.nan)
    for t in np.unique(times[np.isfinite(times)]):
        now = _read(model, state, float(t), generator)
        reads = np.where(times == t, now[:, None], reads)
    return reads


def _ids(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i:05d}" for i in range(count))


def simulate_measurements(device: PCMDevice, *, programming: int = 1000, drift: int = 200, read_noise: int = 50,
                          drift_times: Sequence[float] = DRIFT_TIMES, read_times: Sequence[float] = READ_TIMES,
                          programming_time: float = 0.0, seed: int = 0) -> Measurements:
    """Simulated measurements of ``device``: ``programming`` devices read once at ``programming_time``,
    ``drift`` devices read at ``drift_times``, ``read_noise`` devices read at ``read_times``
    (0 leaves a kind out)."""
    for name, count in (("programming", programming), ("drift", drift), ("read_noise", read_noise)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigError(f"{name} must be a number of devices >= 0, got {count!r}")
    generator = torch.Generator().manual_seed(seed)
    g_max = device.conductance.g_max
    parts: dict[str, Any] = {}
    if programming:
        targets = _targets("uniform", programming, g_max, generator)
        model, state = _state(device, targets, generator)
        parts["programming"] = ProgrammingData("simulated programming", _ids("p", programming), targets,
                                               _read(model, state, programming_time, generator),
                                               np.full(programming, float(programming_time)))
    for kind, count, times, prefix in (("drift", drift, drift_times, "d"), ("read_noise", read_noise, read_times, "r")):
        if not count:
            continue
        targets = _targets("log", count, g_max, generator)
        model, state = _state(device, targets, generator)
        reads = np.stack([_read(model, state, t, generator) for t in times], 1)
        grid = np.repeat(np.asarray(times, dtype=float)[None, :], count, axis=0)
        if kind == "drift":
            parts[kind] = DriftData("simulated drift", _ids(prefix, count), targets, grid, reads)
        else:
            parts[kind] = ReadNoiseData("simulated read noise", _ids(prefix, count), grid, reads)
    return Measurements(**parts, sources=tuple(f"simulated {kind}" for kind in parts))
