r"""A simulated PCM chip for hardware-in-the-loop training: per-device state over a chip clock.

:class:`SimulatedChip` holds, for every analog tile of a network, the devices of its weights
(``K`` differential pairs, G+ and G-) and what happened to each of them, on one chip clock
(seconds, advanced by the trainer):

- fixed at fabrication (drawn once from the chip's seed): each device's own ``g_max``
  (device-to-device spread) and its stuck flag (stuck at ``g_max`` / at 0 µS);
- per device, set when it is last written (programmed, pulsed or refreshed): its conductance
  ``g_base`` right after, the chip time ``t_base`` of that write, and its drift exponent
  ``nu`` (redrawn at every programming, as the PCM statistics of
  :class:`~analog_snu.pcm.physics.PCMPhysics` give it for the target);
- wear counters: programming events, SET pulses, refreshes (per pair).

A **read** at chip time ``t`` drifts every device from its own write,
:math:`G = G_\mathrm{base} ((t - t_\mathrm{base} + t_0)/t_0)^{-\nu}`, adds a fresh 1/f
read-noise sample for that age, and returns the weights plus the drift-compensation factor,
estimated the way a chip can: from calibration reads of the devices that work (stuck devices,
known from program-and-verify, excluded; see
:meth:`~analog_snu.pcm.physics.PCMPhysics.working_compensation`).

**Mapping.** Weights (tile units) map to conductances with one fixed scale per tile
(µS per unit, the periphery's), chosen at the first programming so that ``headroom`` times
``max |W|`` reaches ``g_max``; a later ``max |W|`` beyond that range re-chooses it (then every
target changes). Programming noise, stuck devices and the ``g_max`` cut act as in
:class:`~analog_snu.pcm.physics.PCMPhysics`.

**Programming rounds** (``program``) write only the devices whose target changed since their
last programming (a device at its old target needs no programming event), or every device with
``force=True`` (a full refresh of the array, which also undoes drift). Each written device,
stuck ones included (they get the pulses but do not move), counts one programming event.

**Mixed precision** (:meth:`apply_update`): see :mod:`analog_snu.pcm.mixed_precision`.

Random draws come from the chip's own ``torch.Generator`` (seeded, saved with the state): each
round draws full-shape tensors in a fixed order, whatever is switched on.

Shape letters: K pairs, 2 = (G+, G-), F_out x F_in a tile's weights.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from analog_snu.errors import CheckpointError, ConfigError, InputValueError
from analog_snu.pcm.device import PCMDevice
from analog_snu.pcm.mixed_precision import mixed_precision_transfer, refresh_mask, set_pulses
from analog_snu.pcm.physics import STUCK_AT_GMAX, STUCK_AT_ZERO, STUCK_NONE, PCMPhysics
from analog_snu.pcm.seeds import derive_seed
from analog_snu.schema import check_seed

__all__ = ["ChipArray", "SimulatedChip", "CHIP_STATE_VERSION"]

CHIP_STATE_VERSION = 1
_F64 = torch.float64
_CHIP_STREAM = 4  # stream id mixed into the chip seed (analog_snu.hardware.programming uses 1-3)
_ZERO = 1e-12

#: per-device tensors of a :class:`ChipArray`: name -> dtype (shape (K, 2, F_out, F_in))
_DEVICE_FIELDS = {
    "g_max_device": _F64, "stuck": torch.int8, "g_target": _F64, "g_base": _F64, "nu": _F64,
    "t_base": _F64, "programming_events": torch.int64, "set_pulses": torch.int64,
}


@dataclass
class ChipArray:
    """The devices of one tile. Conductances in µS (float64), times in chip seconds.

    Shape: every device field (K, 2, F_out, F_in); ``refreshes`` (K, F_out, F_in).
    """

    scale: float
    """µS per weight unit of the mapping (0 before the first programming)."""
    g_max_device: Tensor
    """Each device's own saturation conductance."""
    stuck: Tensor
    """int8: 0 working, 1 stuck at g_max, 2 stuck at 0 µS."""
    g_target: Tensor
    """Target of the device's last programming (cut at its ``g_max``)."""
    g_base: Tensor
    """Conductance right after the device's last write (programming, pulses, refresh)."""
    nu: Tensor
    """Drift exponent (0 for stuck devices or drift off)."""
    t_base: Tensor
    """Chip time of the device's last write."""
    programming_events: Tensor
    """int64: programming events (rounds that wrote the device, refresh rewrites included)."""
    set_pulses: Tensor
    """int64: SET pulses received (mixed precision)."""
    refreshes: Tensor
    """int64 per pair: refreshes (both devices RESET, difference rewritten)."""

    @property
    def shape(self) -> tuple[int, int]:
        """(F_out, F_in)."""
        return tuple(self.g_base.shape[2:])  # type: ignore[return-value]

    @property
    def programmed(self) -> bool:
        """True after the first programming."""
        return self.scale > 0


class SimulatedChip:
    """The PCM devices of every tile of a network, on one chip clock.

    Args:
        device: the PCM device of every tile.
        shapes: tile name -> (F_out, F_in), in a fixed order.
        seed: chip seed (fabrication draws, programming, read noise, pulses).
        headroom: ``>= 1``; ``max |W|`` of the first programming maps to ``g_max / headroom``.
        granularity: mixed precision: mean step of one SET pulse (the :math:`\varepsilon` of the
            rule) as a fraction of ``g_max``, > 0; ``None``: the pulsed device's
            ``dw_min / w_max`` (as aihwkit's ``MixedPrecisionCompound(granularity=0)``).
        refresh_upper: refresh criterion, upper conductance (fraction of ``g_max``; aihwkit's
            ``OneSidedUnitCell`` default 0.75).
        refresh_lower: refresh criterion, lower conductance (fraction of ``g_max``; aihwkit's
            ``OneSidedUnitCell`` default 0.25).
    """

    def __init__(self, device: PCMDevice, shapes: Mapping[str, tuple[int, int]], *, seed: int = 0,
                 headroom: float = 1.5, granularity: float | None = None, refresh_upper: float = 0.75,
                 refresh_lower: float = 0.25) -> None:
        if not isinstance(device, PCMDevice):
            raise ConfigError(f"device must be a PCMDevice (HIL training needs a PCM device), got {type(device).__name__}")
        check_seed(seed)
        if not _finite(headroom) or headroom < 1.0:
            raise ConfigError(f"headroom must be a finite number >= 1 (weight range over the initial max|W|), got {headroom!r}")
        if granularity is None:
            granularity = device.pulsed.dw_min / device.pulsed.w_max
        if not _finite(granularity) or granularity <= 0 or granularity >= 1:
            raise ConfigError(
                f"granularity must be a number in (0, 1) (one SET pulse's step as a fraction of g_max), got {granularity!r}"
            )
        if not (_finite(refresh_upper) and _finite(refresh_lower) and 0 <= refresh_lower <= refresh_upper <= 1):
            raise ConfigError(
                f"refresh thresholds must satisfy 0 <= refresh_lower <= refresh_upper <= 1, got "
                f"refresh_lower={refresh_lower!r}, refresh_upper={refresh_upper!r}"
            )
        if not shapes:
            raise ConfigError("shapes must name at least one tile (the network has no analog tiles)")
        self.device = device
        self.physics = PCMPhysics(device)
        self.seed, self.headroom, self.granularity = seed, float(headroom), float(granularity)
        self.refresh_upper, self.refresh_lower = float(refresh_upper), float(refresh_lower)
        self.time = 0.0
        self.generator = torch.Generator().manual_seed(derive_seed(seed, _CHIP_STREAM))
        self.arrays: dict[str, ChipArray] = {}
        pairs = device.conductance.pairs
        for name, shape in shapes.items():
            rows, cols = (int(v) for v in shape)
            dev_shape = (pairs, 2, rows, cols)
            spread_draw, stuck_draw = self._normal(dev_shape), self._uniform(dev_shape)
            g_max = device.conductance.g_max
            g_max_device = (g_max * (1.0 + device.conductance.g_max_spread * spread_draw)).clamp(min=1e-3 * g_max)
            stuck = torch.zeros(dev_shape, dtype=torch.int8)
            if device.stuck.enabled:
                at_gmax = stuck_draw < device.stuck.fraction_at_gmax
                at_zero = ~at_gmax & (stuck_draw < device.stuck.fraction_at_gmax + device.stuck.fraction_at_zero)
                stuck[at_gmax], stuck[at_zero] = STUCK_AT_GMAX, STUCK_AT_ZERO
            zeros = torch.zeros(dev_shape, dtype=_F64)
            self.arrays[name] = ChipArray(
                scale=0.0, g_max_device=g_max_device, stuck=stuck, g_target=zeros.clone(),
                g_base=_stuck_values(zeros, stuck, g_max_device), nu=zeros.clone(), t_base=zeros.clone(),
                programming_events=torch.zeros(dev_shape, dtype=torch.int64),
                set_pulses=torch.zeros(dev_shape, dtype=torch.int64),
                refreshes=torch.zeros((pairs, rows, cols), dtype=torch.int64),
            )

    # -- random draws -------------------------------------------------------------------------------
    def _normal(self, shape: tuple[int, ...]) -> Tensor:
        return torch.randn(shape, generator=self.generator, dtype=_F64)

    def _uniform(self, shape: tuple[int, ...]) -> Tensor:
        return torch.rand(shape, generator=self.generator, dtype=_F64)

    # -- clock --------------------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move the chip clock forward by ``seconds`` (>= 0)."""
        if not _finite(seconds) or seconds < 0:
            raise ConfigError(f"seconds must be a finite number >= 0, got {seconds!r}")
        self.time += float(seconds)

    @property
    def devices(self) -> int:
        """Number of PCM devices on the chip."""
        return sum(a.g_base.numel() for a in self.arrays.values())

    def _array(self, name: str) -> ChipArray:
        if name not in self.arrays:
            raise ConfigError(f"unknown tile {name!r}; the chip holds {list(self.arrays)}")
        return self.arrays[name]

    # -- mapping ------------------------------------------------------------------------------------
    def _full_range(self) -> float:
        return self.device.conductance.g_max * sum(self.device.conductance.significance)

    def weights_of(self, name: str, g: Tensor) -> Tensor:
        """Weights (F_out, F_in) float32 of conductances ``g`` (K, 2, F_out, F_in) of tile ``name``."""
        return self.physics.weights_from_conductances(g, self._array(name).scale)

    def nominal_weights(self, name: str) -> Tensor:
        """Weights of the devices right after their last write (no drift, no read noise)."""
        return self.weights_of(name, self._array(name).g_base)

    # -- programming --------------------------------------------------------------------------------
    @torch.no_grad()
    def program(self, name: str, weights: Tensor, force: bool = False) -> int:
        """Program tile ``name`` to ``weights`` (F_out, F_in, tile units) at the current chip time.

        Writes the devices whose target changed (all with ``force`` or at the first
        programming); returns how many devices were written.
        """
        array = self._array(name)
        if tuple(weights.shape) != array.shape:
            raise ConfigError(f"weights for tile {name!r} must have shape {array.shape}, got {tuple(weights.shape)}")
        w_max = float(weights.detach().abs().max()) if weights.numel() else 0.0
        if not math.isfinite(w_max):
            raise InputValueError(f"weights for tile {name!r} hold NaN or inf")
        rescale = not array.programmed or w_max * array.scale > self._full_range() * (1 + 1e-12)
        if rescale:
            array.scale = self._full_range() / (self.headroom * max(w_max, 1e-7))
        target, _ = self.physics.conductance_targets(weights, array.scale)
        target = torch.minimum(target, array.g_max_device)
        prog_draw, nu_draw = self._normal(target.shape), self._normal(target.shape)
        write = torch.ones_like(target, dtype=torch.bool) if (force or rescale) else target != array.g_target
        g_new, nu_new = self._programmed(target, prog_draw, nu_draw, array)
        array.g_target = torch.where(write, target, array.g_target)
        array.g_base = torch.where(write, g_new, array.g_base)
        array.nu = torch.where(write, nu_new, array.nu)
        array.t_base = torch.where(write, torch.full_like(array.t_base, self.time), array.t_base)
        array.programming_events += write.to(torch.int64)
        return int(write.sum())

    def _programmed(self, target: Tensor, prog_draw: Tensor, nu_draw: Tensor, array: ChipArray) -> tuple[Tensor, Tensor]:
        nm, dev = self.physics, self.device
        g = (target + nm.programming_sigma(target) * prog_draw).clamp(min=0.0)
        g = torch.minimum(g, array.g_max_device)
        if dev.drift.enabled:
            mean, std = nm.nu_statistics(target)
            nu = (mean + std * nu_draw).abs() * dev.drift.scale
        else:
            nu = torch.zeros_like(target)
        nu = torch.where(array.stuck != STUCK_NONE, torch.zeros_like(nu), nu)
        return _stuck_values(g, array.stuck, array.g_max_device), nu

    # -- reading ------------------------------------------------------------------------------------
    def _drifted(self, array: ChipArray) -> tuple[Tensor, Tensor]:
        age = (self.time - array.t_base).clamp(min=0.0)
        g = array.g_base * self.physics.drift_factor(array.nu, age, self.device.drift.t0)
        return g, age

    @torch.no_grad()
    def read_conductances(self, name: str) -> Tensor:
        """The conductances (µS) a read of tile ``name`` sees at the current chip time: drift since
        each device's last write and a fresh read-noise sample (what :meth:`read` turns into weights).

        Shape: (K, 2, F_out, F_in) float64.
        """
        array = self._array(name)
        g, age = self._drifted(array)
        draw = self._normal(g.shape)
        g_now = (g + g.abs() * self.physics.read_noise_sigma(array.g_base, age) * draw).clamp(min=0.0)
        return _stuck_values(g_now, array.stuck, array.g_max_device)

    @torch.no_grad()
    def read(self, name: str) -> tuple[Tensor, Tensor]:
        """Read tile ``name`` at the current chip time: drift since each device's last write and a
        fresh read-noise sample.

        Returns the weights (F_out, F_in) float32 and the drift-compensation factor from the
        working devices ((1,) or (F_out,) float32; ones(1) when the device's compensation is
        ``"none"``).
        """
        array = self._array(name)
        g_now = self.read_conductances(name)
        alpha = self.physics.working_compensation(
            array.g_base, g_now, array.stuck, self.device.periphery.drift_compensation
        )
        return self.weights_of(name, g_now), alpha

    # -- mixed precision ----------------------------------------------------------------------------
    def granularity_weight(self, name: str) -> float:
        """The granularity of tile ``name`` in weight units (``granularity g_max / scale``)."""
        array = self._array(name)
        if not array.programmed:
            raise ConfigError(f"tile {name!r} is not programmed yet; program it before applying updates")
        return self.granularity * self.device.conductance.g_max / array.scale

    @torch.no_grad()
    def apply_update(self, name: str, chi: Tensor) -> tuple[Tensor, Tensor]:
        """Mixed-precision transfer of ``chi`` (F_out, F_in float64, weight units) to tile ``name``.

        ``n = trunc(chi / eps)`` SET pulses go to G+ (n > 0) or G- (n < 0) of the first pair
        (pulse model in :mod:`analog_snu.pcm.mixed_precision`); then pairs past the refresh
        criterion are refreshed. Returns ``(n, chi - n eps)``.
        """
        array = self._array(name)
        if array.g_base.shape[0] != 1:
            raise ConfigError("mixed-precision updates support one G+/G- pair per weight (conductance.significance of length 1)")
        eps = self.granularity_weight(name)
        n, chi = mixed_precision_transfer(chi, eps)
        pulsed = self.device.pulsed
        counts = torch.stack([n.clamp(min=0), (-n).clamp(min=0)]).unsqueeze(0)  # (1, 2, F_out, F_in)
        draw = self._normal(counts.shape)
        g_now, _ = self._drifted(array)
        step = self.granularity * self.device.conductance.g_max
        g_new = set_pulses(g_now, counts, array.g_max_device, step, pulsed.gamma, pulsed.dw_min_std, draw)
        g_new = _stuck_values(g_new, array.stuck, array.g_max_device)
        hit = counts > 0
        array.g_base = torch.where(hit, g_new, array.g_base)  # a write restarts the device's drift
        array.t_base = torch.where(hit, torch.full_like(array.t_base, self.time), array.t_base)
        array.set_pulses += counts
        self._refresh(array)
        return n, chi

    def _refresh(self, array: ChipArray) -> None:
        """RESET both devices of the pairs past the criterion and rewrite their difference."""
        reset_draw, prog_draw, nu_draw = (self._normal(array.g_base.shape) for _ in range(3))
        g_now, _ = self._drifted(array)
        plus, minus = g_now[:, 0], g_now[:, 1]
        larger_is_plus = plus >= minus
        working = torch.where(larger_is_plus, array.stuck[:, 0], array.stuck[:, 1]) == STUCK_NONE
        mask = refresh_mask(plus, minus, array.g_max_device[:, 0], array.g_max_device[:, 1], working,
                            self.refresh_upper, self.refresh_lower)  # (K, F_out, F_in)
        if not bool(mask.any()):
            return
        pulsed = self.device.pulsed
        reset = (array.g_max_device * pulsed.reset * (1.0 + pulsed.reset_dtod * reset_draw)).clamp(min=0.0)
        difference = plus - minus
        target = reset.clone()
        target[:, 0] = torch.where(difference > 0, reset[:, 0] + difference, reset[:, 0])
        target[:, 1] = torch.where(difference < 0, reset[:, 1] - difference, reset[:, 1])
        target = torch.minimum(target, array.g_max_device)
        g_new, nu_new = self._programmed(target, prog_draw, nu_draw, array)
        pair = mask.unsqueeze(1).expand_as(array.g_base)
        array.g_target = torch.where(pair, target, array.g_target)
        array.g_base = torch.where(pair, g_new, array.g_base)
        array.nu = torch.where(pair, nu_new, array.nu)
        array.t_base = torch.where(pair, torch.full_like(array.t_base, self.time), array.t_base)
        rewritten = torch.stack([difference > 0, difference < 0], 1) & pair
        array.programming_events += rewritten.to(torch.int64)
        array.refreshes += mask.to(torch.int64)

    # -- wear ---------------------------------------------------------------------------------------
    def wear(self) -> dict[str, dict[str, Tensor]]:
        """Per-device wear of every tile: ``programming_events``, ``set_pulses`` (K, 2, F_out, F_in)
        and ``refreshes`` (K, F_out, F_in), int64 copies."""
        return {name: {"programming_events": a.programming_events.clone(), "set_pulses": a.set_pulses.clone(),
                       "refreshes": a.refreshes.clone()} for name, a in self.arrays.items()}

    # -- state --------------------------------------------------------------------------------------
    def state_meta(self) -> dict:
        """JSON-able scalars of the chip (settings, clock, per-tile scales)."""
        return {
            "version": CHIP_STATE_VERSION,
            "device": self.device.to_dict(),
            "seed": self.seed,
            "headroom": self.headroom,
            "granularity": self.granularity,
            "refresh_upper": self.refresh_upper,
            "refresh_lower": self.refresh_lower,
            "time": self.time,
            "tiles": [{"name": name, "shape": list(a.shape), "scale": a.scale} for name, a in self.arrays.items()],
        }

    def state_tensors(self, prefix: str = "chip/") -> dict[str, Tensor]:
        """Every per-device tensor (``<prefix><tile>/<field>``) and the generator state, contiguous copies."""
        out = {f"{prefix}generator": self.generator.get_state().clone()}
        for name, array in self.arrays.items():
            for field in (*_DEVICE_FIELDS, "refreshes"):
                out[f"{prefix}{name}/{field}"] = getattr(array, field).detach().clone().contiguous()
        return out

    def load_state(self, meta: Mapping, tensors: Mapping[str, Tensor], prefix: str = "chip/") -> None:
        """Restore :meth:`state_meta` / :meth:`state_tensors`; checks everything first, then changes
        the chip (:class:`~analog_snu.errors.CheckpointError` on corrupt or mismatched state)."""
        if not isinstance(meta, Mapping) or meta.get("version") != CHIP_STATE_VERSION:
            got = meta.get("version") if isinstance(meta, Mapping) else type(meta).__name__
            raise CheckpointError(f"HIL chip state version must be {CHIP_STATE_VERSION}, got {got!r}")
        expected = json.loads(json.dumps({k: v for k, v in self.state_meta().items() if k not in ("time", "tiles")}))
        for key, value in expected.items():
            if meta.get(key) != value:
                raise CheckpointError(
                    f"HIL chip state does not match this run: {key} is {_short(meta.get(key))} in the "
                    f"checkpoint, {_short(value)} here"
                )
        tiles = meta.get("tiles")
        if not isinstance(tiles, list) or [t.get("name") if isinstance(t, dict) else None for t in tiles] != list(self.arrays):
            raise CheckpointError(f"HIL chip state holds tiles {tiles!r}, the network has {list(self.arrays)}")
        time = meta.get("time")
        if isinstance(time, bool) or not isinstance(time, (int, float)) or not math.isfinite(time) or time < 0:
            raise CheckpointError(f"HIL chip clock must be a finite number >= 0, got {time!r}")
        generator = _tensor(tensors, f"{prefix}generator", self.generator.get_state().shape, torch.uint8)
        plans = {}
        for entry in tiles:
            name, array = entry["name"], self.arrays[entry["name"]]
            scale = entry.get("scale")
            if list(entry.get("shape", ())) != list(array.shape) or isinstance(scale, bool) or not isinstance(
                    scale, (int, float)) or not math.isfinite(scale) or scale < 0:
                raise CheckpointError(f"HIL chip state of tile {name!r} has shape {entry.get('shape')!r} and scale "
                                      f"{scale!r}, expected shape {list(array.shape)} and a finite scale >= 0")
            values = {}
            for field, dtype in (*_DEVICE_FIELDS.items(), ("refreshes", torch.int64)):
                values[field] = _tensor(tensors, f"{prefix}{name}/{field}", tuple(getattr(array, field).shape), dtype)
            if not bool(((values["stuck"] >= 0) & (values["stuck"] <= 2)).all()):
                raise CheckpointError(f"HIL chip state of tile {name!r}: stuck flags other than 0, 1, 2")
            for field in ("programming_events", "set_pulses", "refreshes"):
                if bool((values[field] < 0).any()):
                    raise CheckpointError(f"HIL chip state of tile {name!r}: negative {field} counts")
            for field in ("g_max_device", "g_target", "g_base", "nu", "t_base"):
                if bool((values[field] < 0).any()):
                    raise CheckpointError(f"HIL chip state of tile {name!r}: negative values in {field}")
            plans[name] = (float(scale), values)
        try:
            probe = torch.Generator()
            probe.set_state(generator)
        except (RuntimeError, ValueError) as exc:
            raise CheckpointError(f"HIL chip state: the generator state is corrupt ({exc})") from exc
        self.generator.set_state(generator)
        self.time = float(time)
        for name, (scale, values) in plans.items():
            array = self.arrays[name]
            array.scale = scale
            for field, value in values.items():
                setattr(array, field, value)


def _finite(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _stuck_values(g: Tensor, stuck: Tensor, g_max_device: Tensor) -> Tensor:
    g = torch.where(stuck == STUCK_AT_GMAX, g_max_device, g)
    return torch.where(stuck == STUCK_AT_ZERO, torch.zeros_like(g), g)


def _tensor(tensors: Mapping[str, Tensor], key: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    if key not in tensors:
        raise CheckpointError(f"HIL state lacks tensor {key!r}")
    value = tensors[key]
    if not isinstance(value, Tensor) or tuple(value.shape) != tuple(shape) or value.dtype != dtype:
        got = f"{tuple(value.shape)} {value.dtype}" if isinstance(value, Tensor) else type(value).__name__
        raise CheckpointError(f"HIL state tensor {key!r} is {got}, expected {tuple(shape)} {dtype}")
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise CheckpointError(f"HIL state tensor {key!r} holds NaN or inf")
    return value.detach().cpu().clone()
