r"""Hardware-in-the-loop (HIL) training: forward passes on a simulated, drifting PCM chip.

Two schemes (``scheme=``):

- ``"reprogram"`` (chip in the loop). The network's analog tiles hold the float32 master
  weights W (tile units) between steps; a :class:`~analog_snu.pcm.chip.SimulatedChip`
  holds the conductances programmed from W. Every ``program_every`` batches (before the batch,
  the first one included) the chip is reprogrammed from W: only devices whose target changed
  get a programming event (``program_all=True``: every device, a full refresh). Each batch's
  forward pass runs on the chip read at the current chip time (drift since each device's last
  write, fresh read noise, drift compensation from working devices, and the tile's own
  DAC/ADC and output noise); the backward pass uses that forward's activations (and the
  chip's weights for the error, as aihwkit's tile does); the optimizer (any torch/aihwkit
  optimizer, GRAPES allowed) then updates W.
- ``"mixed"`` (mixed-precision in-memory training, Nandakumar et al., Front. Neurosci. 2020).
  The weights live on the chip. The optimizer's update :math:`\Delta W` of every batch
  accumulates in :math:`\chi` (float64) and is transferred as SET pulses
  (:mod:`analog_snu.pcm.mixed_precision`); pairs are refreshed when a device saturates.
  The optimizer updates a float32 "requested" copy :math:`W_0 + \sum \Delta W` (so momentum,
  Adam and weight decay see the weights the chip is asked for); between steps the tiles hold
  the chip's nominal weights (its conductances right after their last write), which is what
  evaluation, checkpoints and weight maps then see.

**Chip clock.** Per batch: [programming round if due] -> clock += ``chip_seconds_per_batch`` ->
forward/backward on the chip read at that time -> optimizer step [-> pulses and refresh,
mixed].

:class:`HILHook` is the hardware hook of :func:`~analog_snu.training.loop.train_epoch`
(a :class:`~analog_snu.training.loop.HardwareHook`): the loop calls it before the forward
(programming, the chip clock, the chip's weights into the tiles), around the optimizer step
(network units) and after it (pulses, refreshes, wear); it checkpoints its state
(:meth:`HILHook.state_dict`) and reports the wear (:meth:`HILHook.summary`). With ``program_every=N`` a device programmed before batch ``b`` has drifted
``(k + 1) S`` seconds at batch ``b + k``.

**Counts.** With ``program_every=N`` over ``B`` batches there are ``ceil(B / N)`` programming
rounds (before batches 0, N, 2N, ...): 9 batches at ``N = 3`` give 3 rounds, so a device whose
target changes every round (or every device with ``program_all=True``) has 3 programming
events. ``k`` rounds of an unchanged W give every device ``k`` events only with
``program_all`` (``force``); otherwise 1 (the first programming).

Tiles must be aihwkit inference tiles carrying a PCM noise model, i.e. built with
``device_rpu_config(device, "inference")`` (torch tiles for bit-identical resume; ``"hwa"`` tiles
are refused: the chip supplies the noise).

Example::

    model = SNUNetwork([64, 32, 10], rpu_config=device_rpu_config(preset("pcm_joshi2020"), "inference"))
    optimizer = make_optimizer(model, "adam", lr=1e-3)
    hil = HILHook(model, scheme="mixed", seed=0)   # the chip: the device the tiles were built for
    loss = train_epoch(model, batches, optimizer, loss_fn, Backprop(), hardware=hil)
    hil.summary()   # {"scheme": "mixed", "chip_seconds": ..., "devices": ..., "set_pulses": {...}, ...}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from analog_snu.errors import CheckpointError, ConfigError
from analog_snu.pcm import PCMDevice
from analog_snu.pcm.chip import SimulatedChip
from analog_snu.tiles.crossbar import Crossbar, crossbars
from analog_snu.training.hil_config import HIL_SCHEMES, HILConfig

__all__ = ["HIL_SCHEMES", "HIL_STATE_VERSION", "HILConfig", "HILHook"]

#: the HIL keyword arguments of :class:`HILHook` and their defaults (the Python API's: headroom
#: 1.5 for both schemes, where a run config's default for mixed is 8)
_KEYWORD_DEFAULTS: dict[str, Any] = {"scheme": "reprogram", "program_every": 1, "chip_seconds_per_batch": 1.0,
                                     "granularity": None, "headroom": 1.5, "program_all": False}
#: 2: the optimizer steps on network-unit weights (version 1 stepped on tile units, whose Adam
#: moments a version-2 step cannot continue)
HIL_STATE_VERSION = 2


class HILHook:
    """Hardware-in-the-loop training of ``model`` on a simulated PCM chip: the hardware hook of
    :func:`~analog_snu.training.loop.train_epoch` (module docstring).

    Args:
        model: a network whose analog tiles are inference tiles of one PCM device (built with
            ``device_rpu_config(device, "inference")``); the chip is made of that device, read from
            the tiles' crossbar handles, so the chip and the tiles cannot disagree.
        config: the HIL options as one :class:`~analog_snu.training.hil_config.HILConfig` (a run's
            :attr:`~analog_snu.experiments.RunConfig.hil`); without it, the keywords below build one.
        scheme: ``"reprogram"`` or ``"mixed"``.
        program_every: reprogram the chip every this many batches (``>= 1``; reprogram only).
        chip_seconds_per_batch: chip-clock advance per batch, seconds, ``>= 0``.
        seed: chip seed (fabrication, programming, read noise, pulses).
        granularity: mixed only: one SET pulse's mean step as a fraction of ``g_max``, in (0, 1);
            ``None``: the device's ``pulsed.dw_min / pulsed.w_max``.
        headroom: ``>= 1``; the first programming maps ``headroom * max|W|`` to ``g_max``.
        program_all: reprogram only: every round writes every device (default: changed targets).
    """

    def __init__(self, model: nn.Module, config: HILConfig | None = None, *,
                 scheme: str = "reprogram", program_every: int = 1, chip_seconds_per_batch: float = 1.0,
                 seed: int = 0, granularity: float | None = None, headroom: float = 1.5,
                 program_all: bool = False) -> None:
        options = {"scheme": scheme, "program_every": program_every, "chip_seconds_per_batch": chip_seconds_per_batch,
                   "granularity": granularity, "headroom": headroom, "program_all": program_all}
        if config is None:
            if scheme == "mixed" and program_every == 1:  # the keyword's default, not a choice of the caller
                options["program_every"] = None
            config = HILConfig(**options)
        elif isinstance(config, (PCMDevice, str)):
            raise ConfigError(f"HILHook takes the chip's device from the model's tiles (the device they were built "
                              f"for); pass the HIL options only, got {type(config).__name__} {_shown(config)!r}")
        elif not isinstance(config, HILConfig):
            raise ConfigError(f"config must be a HILConfig, got {type(config).__name__}")
        else:
            changed = sorted(k for k, v in options.items() if v != _KEYWORD_DEFAULTS[k])
            if changed:
                raise ConfigError(f"pass the HIL options in config or as keywords, not both (got config and {changed})")
        tiles, device = self._check_tiles(model)
        if config.scheme == "mixed" and device.conductance.pairs != 1:
            raise ConfigError(
                f"the mixed scheme supports one G+/G- pair per weight (conductance.significance of length 1), "
                f"got {device.conductance.pairs} pairs"
            )
        self.config = config
        self.tiles = tiles
        self.model, self.device, self.scheme = model, device, config.scheme
        self.program_every, self.chip_seconds_per_batch = config.program_every, float(config.chip_seconds_per_batch)
        self.program_all = config.program_all
        shapes = {name: tuple(_raw(tile).shape) for name, tile in self.tiles}
        self.chip = SimulatedChip(device, shapes, seed=seed, headroom=config.headroom, granularity=config.granularity)
        self.batches = 0
        self.chi: dict[str, Tensor] = {}
        self.requested: dict[str, Tensor] = {}
        # the tiles' resting output scales and those of this batch's forward pass (drift compensated)
        self._scales: tuple[list[Tensor | None], list[Tensor | None]] = ([], [])

    @staticmethod
    def _check_tiles(model: nn.Module) -> tuple[list[tuple[str, Crossbar]], PCMDevice]:
        """The model's crossbars by name and the one device they were built for (the chip's)."""
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model must be a torch nn.Module, got {type(model).__name__}")
        tiles = crossbars(model)
        if not tiles:
            raise ConfigError(
                "HIL training needs analog tiles; the model is digital: build it with "
                "rpu_config=device_rpu_config(device, 'inference')"
            )
        out = []
        devices: dict[str, PCMDevice] = {}
        for tile in tiles:
            name = tile.name
            if tile.kind != "inference":
                raise ConfigError(
                    f"tile {name!r} is not an inference tile (pulsed or floating point); HIL training needs "
                    "rpu_config=device_rpu_config(device, 'inference')"
                )
            if tile.has_training_noise:
                raise ConfigError(
                    f"tile {name!r} injects hardware-aware training noise ('hwa' mode); HIL training runs on the "
                    "chip's own noise: build it with device_rpu_config(device, 'inference')"
                )
            noise_model = tile.noise_model
            if noise_model is None:
                raise ConfigError(
                    f"tile {name!r} carries no PCM device (no PCM noise model); HIL training runs on the device the "
                    "tiles were built for: build it with device_rpu_config(device, 'inference')"
                )
            devices[name] = noise_model.device
            out.append((name, tile))
        device = devices[out[0][0]]
        other = next((name for name, used in devices.items() if used != device), None)
        if other is not None:
            raise ConfigError(f"tiles {out[0][0]!r} and {other!r} were built for different devices "
                              f"({device.name!r}, {devices[other].name!r}); one chip holds one device")
        return out, device

    # -- one batch ----------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        """True once the chip was first programmed (the first batch)."""
        return self.batches > 0

    def _start(self) -> None:
        for name, tile in self.tiles:
            weights = _raw(tile)
            self.chip.program(name, weights, force=True)
            if self.scheme == "mixed":
                self.requested[name] = weights.to(torch.float32).clone()
                self.chi[name] = torch.zeros(weights.shape, dtype=torch.float64)
                _set(tile, self.chip.nominal_weights(name))

    def begin_batch(self) -> None:
        """Before the learning rule's ``begin_batch``: mixed, at the first batch, the weights move
        onto the chip (the rule's factors then come from the chip's weights)."""
        if self.scheme == "mixed" and not self.started:
            self._start()

    @contextmanager
    def forward_pass(self) -> Iterator[None]:
        """Around the forward and backward pass: the programming round if due (reprogram), the
        chip clock, the chip's weights and drift compensation in the tiles; the resting weights
        and scales back afterwards, whatever happens."""
        if self.scheme == "reprogram" and self.batches % self.program_every == 0:
            for name, tile in self.tiles:
                # the digital scale follows the weights, as the chip's conductance range does: the
                # periphery keeps its ranges (a fixed scale left JSB's ADC saturating, +0.15 nats)
                tile.remap(self.device.periphery.weight_scaling_omega)
                self.chip.program(name, _raw(tile), force=self.program_all or not self.started)
        self.chip.advance(self.chip_seconds_per_batch)
        # copies, not aliases: restoring an alias compounded the compensation factor batch after batch
        saved_scales = [tile.output_scales() for _, tile in self.tiles]
        forward_scales = list(saved_scales)
        if self.scheme == "reprogram":
            self.requested = {name: _raw(tile) for name, tile in self.tiles}  # master W, back before the step
        try:
            for i, ((name, tile), scales) in enumerate(zip(self.tiles, saved_scales)):
                weights, alpha = self.chip.read(name)
                _set(tile, weights)
                if self.device.periphery.drift_compensation != "none":  # digital, on the tile's output scales
                    base = torch.ones(1) if scales is None else scales
                    forward_scales[i] = base * alpha.to(base.device, base.dtype)
                    tile.set_output_scales(forward_scales[i].clone())
            yield
        finally:
            for (name, tile), scales in zip(self.tiles, saved_scales):
                tile.set_output_scales(scales)  # this step's own copy: no later step reuses it
                _set(tile, self.requested[name])
        self._scales = (saved_scales, forward_scales)

    @contextmanager
    def optimizer_step(self) -> Iterator[None]:
        """Around ``optimizer.step()``: the tiles in network units; afterwards (mixed) the update
        as SET pulses and refreshes on the chip, the tiles at the chip's nominal weights."""
        saved_scales, forward_scales = self._scales
        # The optimizer learns the weights the network computes with, as in a digital run; stepping
        # on the tiles' units (W / s, s from the digital weight scaling) made Adam's rate on W s
        # times the given one (s ~ 0.1 for JSB: HIL trailed digital by 0.84 nats with nothing else changed).
        with ExitStack() as network_units:
            for (_, tile), resting, forward in zip(self.tiles, saved_scales, forward_scales):
                network_units.enter_context(tile.in_network_units(resting, forward))
            yield
        if self.scheme == "mixed":
            for name, tile in self.tiles:
                new = _raw(tile).to(torch.float32)
                self.chi[name] = self.chi[name] + (new.to(torch.float64) - self.requested[name].to(torch.float64))
                self.requested[name] = new
                _, self.chi[name] = self.chip.apply_update(name, self.chi[name])
                _set(tile, self.chip.nominal_weights(name))
        else:
            self.requested.clear()
        self._scales = ([], [])
        self.batches += 1

    # -- results ------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Wear and clock: ``{"scheme", "chip_seconds", "devices", ...}`` with
        ``"programming_events": {"mean", "max"}`` (reprogram) or ``"set_pulses": {"mean", "max"}``
        and ``"refreshes": {"total"}`` (mixed)."""
        wear = self.chip.wear()
        out: dict[str, Any] = {"scheme": self.scheme, "chip_seconds": self.chip.time, "devices": self.chip.devices}

        def stats(field: str) -> dict[str, float | int]:
            values = torch.cat([w[field].flatten() for w in wear.values()])
            return {"mean": float(values.to(torch.float64).mean()), "max": int(values.max())}

        if self.scheme == "reprogram":
            out["programming_events"] = stats("programming_events")
        else:
            out["set_pulses"] = stats("set_pulses")
            out["refreshes"] = {"total": int(sum(int(w["refreshes"].sum()) for w in wear.values()))}
        return out

    def wear_maps(self) -> dict[str, dict[str, Tensor]]:
        """Per-device wear per tile name (see :meth:`SimulatedChip.wear`), for weight maps."""
        return self.chip.wear()

    # -- state ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The HIL state: JSON-able settings and counters (``version``, ``scheme``, ``program_every``,
        ``chip_seconds_per_batch``, ``program_all``, ``batches``, ``chip``: the chip's settings and
        clock) and named tensors, contiguous CPU copies: the chip's per-device state and generator
        (``chip/...``), the resting tile weights (``weights/<tile>``); mixed, once started,
        ``chi/<tile>`` and the requested weights (``requested/<tile>``)."""
        state: dict[str, Any] = {
            "version": HIL_STATE_VERSION,
            "scheme": self.scheme,
            "program_every": self.program_every,
            "chip_seconds_per_batch": self.chip_seconds_per_batch,
            "program_all": self.program_all,
            "batches": self.batches,
            "chip": self.chip.state_meta(),
        }
        state.update(self.chip.state_tensors(prefix=_CHIP))
        for name, tile in self.tiles:
            state[f"weights/{name}"] = _raw(tile).contiguous()
            if self.scheme == "mixed" and self.started:
                state[f"chi/{name}"] = self.chi[name].clone().contiguous()
                state[f"requested/{name}"] = self.requested[name].clone().contiguous()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (the resting tile weights included).

        Everything is checked before anything changes; corrupt or mismatched state raises
        :class:`~analog_snu.errors.CheckpointError`.
        """
        if not isinstance(state, Mapping) or state.get("version") != HIL_STATE_VERSION:
            got = state.get("version") if isinstance(state, Mapping) else type(state).__name__
            hint = (" (written before the optimizer learned in network units: its optimizer state cannot be "
                    "continued; train the run again with --force)") if got == 1 else ""
            raise CheckpointError(f"HIL state version must be {HIL_STATE_VERSION}, got {got!r}{hint}")
        for key in ("scheme", "program_every", "chip_seconds_per_batch", "program_all"):
            if state.get(key) != getattr(self, key):
                raise CheckpointError(
                    f"HIL state does not match this run: {key} is {state.get(key)!r} in the checkpoint, "
                    f"{getattr(self, key)!r} here"
                )
        batches = state.get("batches")
        if isinstance(batches, bool) or not isinstance(batches, int) or batches < 0:
            raise CheckpointError(f"HIL state batch counter must be an int >= 0, got {batches!r}")
        weights, chi, requested = {}, {}, {}
        for name, tile in self.tiles:
            shape = tuple(_raw(tile).shape)
            weights[name] = _expect(state, f"weights/{name}", shape, torch.float32)
            if self.scheme == "mixed" and batches > 0:
                chi[name] = _expect(state, f"chi/{name}", shape, torch.float64)
                requested[name] = _expect(state, f"requested/{name}", shape, torch.float32)
        chip_meta = state.get("chip")
        if not isinstance(chip_meta, Mapping):
            raise CheckpointError("HIL state lacks the chip's settings ('chip')")
        chip_tensors = {key: value for key, value in state.items() if key.startswith(_CHIP)}
        self.chip.load_state(chip_meta, chip_tensors, prefix=_CHIP)  # checks, then changes the chip
        self.batches = batches
        self.chi, self.requested = chi, requested
        for name, tile in self.tiles:
            _set(tile, weights[name])


#: where the chip's tensors are in the HIL state
_CHIP = "chip/"


def _shown(value: PCMDevice | str) -> str:
    return value.name if isinstance(value, PCMDevice) else value


def _raw(tile: Crossbar) -> Tensor:
    """The tile's crossbar weights (tile units), a detached CPU float32 copy."""
    return tile.read_weights()


def _set(tile: Crossbar, weights: Tensor) -> None:
    tile.write_weights(weights)


def _expect(tensors: Mapping[str, Any], key: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    if key not in tensors:
        raise CheckpointError(f"HIL state lacks tensor {key!r}")
    value = tensors[key]
    if not isinstance(value, Tensor) or tuple(value.shape) != shape or value.dtype != dtype:
        got = f"{tuple(value.shape)} {value.dtype}" if isinstance(value, Tensor) else type(value).__name__
        raise CheckpointError(f"HIL state tensor {key!r} is {got}, expected {shape} {dtype}")
    if not bool(torch.isfinite(value).all()):
        raise CheckpointError(f"HIL state tensor {key!r} holds NaN or inf")
    return value.detach().cpu().clone()
