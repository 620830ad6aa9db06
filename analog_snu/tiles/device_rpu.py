"""A :class:`~analog_snu.pcm.PCMDevice` turned into aihwkit RPU configs by :func:`device_rpu_config`
(the device config itself knows nothing of aihwkit).

- ``"inference"``: ``TorchInferenceRPUConfig`` (``simulator="torch"``) or ``InferenceRPUConfig``
  (``"cpp"``) with :class:`~analog_snu.tiles.pcm_noise.PCMNoiseModel`, the periphery
  (DAC/ADC bits, output noise and bound, weight scaling) and drift compensation; no training noise.
- ``"hwa"``: the same, plus the hardware-aware training nonidealities (additive Gaussian weight
  noise relative to ``max|W|`` on every training forward, weight clipping).
- ``"pulsed"``: :class:`PCMPulsedRPUConfig`, aihwkit's ``PCMPresetUnitCell`` (G+/G- pair of
  ``PCMPresetDevice`` with refresh) parameterised from ``device.pulsed`` and ``g_max_spread``,
  carrying a :class:`PCMNoiseModel` so that :func:`analog_snu.hardware.program` / ``drift`` can
  program and drift pulsed-trained tiles too (aihwkit itself skips them).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from analog_snu.errors import ConfigError
from analog_snu.pcm.device import MODES, PCMDevice
from analog_snu.tiles.backend import aihwkit_module
from analog_snu.tiles.pcm_noise import PCMNoiseModel
from analog_snu.tiles.spike_mvm import SpikeTorchSimulatorTile
from analog_snu.tiles.spike_tile import SpikeTorchInferenceTile
from analog_snu.tiles.tile_array import AddingTileModuleArray

__all__ = ["PCMPulsedRPUConfig", "device_rpu_config", "drift_compensation_of", "pcm_noise_model_of"]

_configs = aihwkit_module("simulator.configs")
_presets = aihwkit_module("simulator.presets")
_compensation = aihwkit_module("inference.compensation.drift")


@dataclass
class PCMPulsedRPUConfig(_configs.UnitCellRPUConfig):
    """aihwkit ``UnitCellRPUConfig`` (pulsed PCM pair with refresh) that also carries our noise model.

    The two extra fields are not passed to the C++ simulator; they describe how the trained
    tile is programmed and drifted by :mod:`analog_snu.hardware`.
    """

    pcm_noise_model: Any = None
    """:class:`PCMNoiseModel` used to program/drift this tile after training."""
    pcm_drift_compensation: str = "none"
    """``"none"``, ``"global"`` or ``"per_column"`` (applied through the tile's digital output scales)."""


def _bits_to_res(bits: int) -> float:
    """aihwkit resolution of a ``bits``-bit converter (sign included); -1 = unquantised."""
    return 1.0 / (2**bits - 2) if bits else -1.0


def _forward_io(device: PCMDevice, base: Any) -> Any:
    io = base()
    per = device.periphery
    if not per.enabled:
        io.is_perfect = True
        return io
    io.inp_res = _bits_to_res(per.dac_bits)
    io.out_res = _bits_to_res(per.adc_bits)
    io.out_noise = per.out_noise
    io.out_bound = per.out_bound
    return io


def _drift_compensation(name: str) -> Any:
    return {
        "none": None,
        "global": _compensation.GlobalDriftCompensation,
        "per_column": _compensation.PerColumnDriftCompensation,
    }[name]


def _inference_config(device: PCMDevice, hwa: bool) -> Any:
    cls = _configs.TorchInferenceRPUConfig if device.simulator == "torch" else _configs.InferenceRPUConfig
    rpu = cls()
    if device.simulator == "torch":
        # aihwkit's torch tile, with bound management per input vector and one crossbar product
        # per call for spike inputs (analog_snu.tiles.spike_mvm), keeping ADC codes rather than
        # float outputs for the backward of spike inputs (analog_snu.tiles.spike_tile)
        rpu.simulator_tile_class = SpikeTorchSimulatorTile
        rpu.tile_class = SpikeTorchInferenceTile
    rpu.tile_array_class = AddingTileModuleArray  # a layer over several tiles: no copy of each tile's output
    rpu.forward = _forward_io(device, _configs.IOParameters)
    rpu.mapping.weight_scaling_omega = device.periphery.weight_scaling_omega
    rpu.mapping.weight_scaling_columnwise = False
    rpu.noise_model = PCMNoiseModel(device)
    compensation = _drift_compensation(device.periphery.drift_compensation)
    rpu.drift_compensation = compensation() if compensation else None
    if hwa and device.hwa.enabled:
        if device.hwa.weight_noise > 0:
            rpu.modifier.type = _configs.WeightModifierType.ADD_NORMAL
            rpu.modifier.std_dev = device.hwa.weight_noise
            rpu.modifier.rel_to_actual_wmax = True
        if device.hwa.clip > 0:
            rpu.clip.type = _configs.WeightClipType.FIXED_VALUE
            rpu.clip.fixed_value = device.hwa.clip
            # Clipping acts on the mapped tile weights (max |W| = omega at initialisation); a
            # learnable digital output scale lets a layer's weight range grow past its initial
            # maximum. Without it a readout stays stuck near its small initial weights
            # (measured: 8x8-digits demo 87 % instead of 95 %).
            rpu.mapping.learn_out_scaling = True
    else:
        rpu.modifier.type = _configs.WeightModifierType.NONE
        rpu.clip.type = _configs.WeightClipType.NONE
    return rpu


def _pulsed_config(device: PCMDevice) -> PCMPulsedRPUConfig:
    if device.conductance.pairs != 1:
        raise ConfigError(
            f"mode 'pulsed' supports one G+/G- pair per weight (conductance.significance of length 1), "
            f"got {len(device.conductance.significance)} pairs {list(device.conductance.significance)}"
        )
    p = device.pulsed
    one = _presets.PCMPresetDevice(
        dw_min=p.dw_min,
        dw_min_dtod=p.dw_min_dtod,
        dw_min_std=p.dw_min_std,
        # aihwkit's preset ties the additive/slope parts of the cycle-to-cycle noise to dw_min_std.
        dw_min_std_add=p.dw_min_std / 0.6 * 0.042,
        dw_min_std_slope=p.dw_min_std / 0.6 * 0.108,
        w_max=p.w_max,
        w_max_dtod=device.conductance.g_max_spread,
        gamma_up=p.gamma,
        gamma_down=p.gamma,
        reset=p.reset,
        reset_dtod=p.reset_dtod,
    )
    cell = _presets.PCMPresetUnitCell(unit_cell_devices=[one, copy.deepcopy(one)], refresh_every=p.refresh_every)
    rpu = PCMPulsedRPUConfig(
        device=cell,
        forward=_forward_io(device, _presets.PresetIOParameters),
        backward=_forward_io(device, _presets.PresetIOParameters),
        update=_presets.PresetUpdateParameters(),
        pcm_noise_model=PCMNoiseModel(device),
        pcm_drift_compensation=device.periphery.drift_compensation,
    )
    return rpu


def device_rpu_config(device: PCMDevice, mode: str = "inference") -> Any:
    """aihwkit RPU config of ``device`` for ``mode`` (``"inference"``, ``"hwa"`` or ``"pulsed"``)."""
    if not isinstance(device, PCMDevice):
        raise ConfigError(f"device must be a PCMDevice, got {type(device).__name__}")
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if mode == "pulsed":
        return _pulsed_config(device)
    return _inference_config(device, hwa=mode == "hwa")


def pcm_noise_model_of(rpu_config: Any) -> PCMNoiseModel | None:
    """The :class:`PCMNoiseModel` an RPU config carries (inference or pulsed), else ``None``."""
    for name in ("noise_model", "pcm_noise_model"):
        model = getattr(rpu_config, name, None)
        if isinstance(model, PCMNoiseModel):
            return model
    return None


def drift_compensation_of(rpu_config: Any) -> str:
    """``"none"``, ``"global"`` or ``"per_column"`` for an RPU config (inference or ours pulsed)."""
    if isinstance(rpu_config, PCMPulsedRPUConfig):
        return rpu_config.pcm_drift_compensation
    comp = getattr(rpu_config, "drift_compensation", None)
    if comp is None:
        return "none"
    return "per_column" if isinstance(comp, _compensation.PerColumnDriftCompensation) else "global"

