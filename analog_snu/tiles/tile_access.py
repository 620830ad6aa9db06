"""Programming, drifting and restoring single aihwkit tiles with :class:`PCMNoiseModel`.

Inference tiles go through aihwkit's own ``program_weights()`` / ``drift_weights(t)`` (our
noise model fills its per-device state; aihwkit keeps the drift-compensation baseline and
factor ``alpha``). Pulsed tiles, which aihwkit never programs or drifts, are handled here:
their crossbar weights are set to the programmed/drifted weights, and drift compensation is
applied through the tile's digital output scales (``mapping_scales``), using an exact
(noise-free) identity read-out.

Random draws: ``generator`` for the devices, ``forward_seed`` for the analog forward passes
of aihwkit's compensation read-out (torch tiles draw output noise from torch's global RNG,
which is forked and seeded here; the C++ tile's own RNG cannot be seeded from Python).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from analog_snu.errors import ConfigError
from analog_snu.pcm import DRIFT_COMPENSATIONS
from analog_snu.pcm.physics import PCMTileState
from analog_snu.tiles.backend import aihwkit_module
from analog_snu.tiles.device_rpu import PCMPulsedRPUConfig, drift_compensation_of, pcm_noise_model_of
from analog_snu.tiles.pcm_noise import PCMNoiseModel

__all__ = [
    "named_layer_tiles",
    "mapping_scales_copy",
    "is_inference_tile",
    "tile_noise_model",
    "attach_noise_model",
    "program_tile",
    "drift_tile",
    "tile_snapshot",
    "restore_tile",
    "tile_compensation",
    "set_tile_compensation",
    "suspend_compensation",
    "unprogram_tile",
    "has_training_noise",
    "apply_working_compensation",
    "network_scales",
]

_inference = aihwkit_module("simulator.tiles.inference")
_compensation = aihwkit_module("inference.compensation.drift")
_layer_base = aihwkit_module("nn.modules.base").AnalogLayerBase
_tile_module = aihwkit_module("simulator.tiles.module").TileModule
_configs = aihwkit_module("simulator.configs")
_MIN_READOUT = 1e-4  # aihwkit's clamp of compensation read-outs


def named_layer_tiles(model: nn.Module) -> list[tuple[str, str, Any]]:
    """``(layer_name, tile_name, tile)`` for every analog tile, in module order.

    ``layer_name`` is the analog layer (e.g. ``"layers.0.weight_ih"``, ``"readout"``) that
    owns the tile; a layer larger than aihwkit's tile size has several tiles.
    """
    layers = [
        name for name, module in model.named_modules()
        if isinstance(module, _layer_base) and not getattr(module, "IS_CONTAINER", False)
    ]
    out = []
    for tile_name, tile in model.named_modules():
        if not isinstance(tile, _tile_module) or not hasattr(tile, "tile"):
            continue
        owners = [name for name in layers if name == "" or tile_name == name or tile_name.startswith(name + ".")]
        layer = max(owners, key=len) if owners else tile_name
        out.append((layer or "model", tile_name, tile))
    return out


def is_inference_tile(tile: Any) -> bool:
    """True for aihwkit inference/HWA tiles (C++ or torch); False for pulsed/floating-point tiles."""
    return isinstance(tile, _inference.InferenceTileWithPeriphery)


def tile_noise_model(tile: Any) -> PCMNoiseModel | None:
    """The tile's own :class:`PCMNoiseModel` (from its RPU config, or attached), else ``None``."""
    return pcm_noise_model_of(tile.rpu_config) or getattr(tile, "_pcm_noise_model", None)


def attach_noise_model(tile: Any, noise_model: PCMNoiseModel) -> PCMNoiseModel:
    """Give ``tile`` its own copy of ``noise_model`` (replacing the RPU config's noise model for
    inference tiles, as aihwkit's ``program_weights(noise_model=...)`` does)."""
    import copy

    own = copy.deepcopy(noise_model)
    own.state = None
    if is_inference_tile(tile):
        tile.rpu_config.noise_model = own
    else:
        tile._pcm_noise_model = own
    return own


def _raw_weights(tile: Any) -> Tensor:
    if getattr(tile, "analog_bias", False):
        raise ConfigError("tiles with an analog bias column are not supported; use mapping.digital_bias=True")
    return torch.as_tensor(tile.tile.get_weights()).detach().clone()


def _exact_readout(weights: Tensor, compensation: str) -> Tensor:
    # identity inputs: output = W^T (F_in, F_out); aihwkit's readouts of it.
    absolute = weights.abs().to(torch.float32)
    if compensation == "per_column":
        return absolute.mean(dim=1).clamp(min=_MIN_READOUT)
    return absolute.mean().clamp(min=_MIN_READOUT).reshape(1)


def mapping_scales_copy(tile: Any) -> Tensor | None:
    """A copy of the tile's output (mapping) scales, or ``None``.

    A copy because aihwkit's ``get_mapping_scales()`` returns the live buffer, which
    ``set_mapping_scales()`` overwrites in place: a "saved" alias would change with it.
    """
    scales = tile.get_mapping_scales()
    return None if scales is None else scales.detach().clone()


def _base_scales(tile: Any) -> Tensor:
    scales = mapping_scales_copy(tile)
    return torch.ones(1) if scales is None else scales


def program_tile(tile: Any, noise_model: PCMNoiseModel, generator: torch.Generator, forward_seed: int) -> PCMTileState:
    """Program ``tile`` from its reference weights with ``noise_model``; returns the new state."""
    if is_inference_tile(tile):
        if tile.rpu_config.noise_model is not noise_model:
            tile.rpu_config.noise_model = noise_model
        with noise_model.seeded(generator), torch.random.fork_rng(devices=[]):
            torch.manual_seed(forward_seed)
            tile.program_weights()
        return noise_model.state  # type: ignore[return-value]
    if tile.reference_combined_weights is None:
        tile.reference_combined_weights = _raw_weights(tile)
    previous = noise_model.state
    base = previous.output_scales if previous is not None and previous.output_scales is not None else _base_scales(tile)
    tile.set_mapping_scales(base.clone())  # undo an earlier drift compensation
    state = noise_model.program_state(tile.reference_combined_weights, generator)
    state.output_scales = base
    compensation = tile_compensation(tile)
    tile.tile.set_weights(state.weights_programmed)
    state.weights_programmed = _raw_weights(tile).to(torch.float32)  # what the device cell holds
    state.weights_now = state.weights_programmed.clone()
    state.compensation_reference = (
        None if compensation == "none" else _exact_readout(state.weights_programmed, compensation)
    )
    noise_model.state = state
    return state


def drift_tile(tile: Any, t_seconds: float, generator: torch.Generator, forward_seed: int) -> PCMTileState:
    """Drift a programmed ``tile`` to ``t_seconds`` after programming (fresh read noise)."""
    noise_model = tile_noise_model(tile)
    if noise_model is None or noise_model.state is None:
        raise ConfigError("the tile is not programmed; call analog_snu.program(model) before drift(model, t)")
    if is_inference_tile(tile):
        with noise_model.seeded(generator), torch.random.fork_rng(devices=[]):
            torch.manual_seed(forward_seed)
            tile.drift_weights(t_seconds)
        apply_working_compensation(tile, noise_model.state)
        return noise_model.state
    state = noise_model.state
    noise_model.drift_state(state, t_seconds, generator)
    tile.tile.set_weights(state.weights_now)
    state.weights_now = _raw_weights(tile).to(torch.float32)
    if state.compensation_reference is not None:
        apply_working_compensation(tile, state)
    return state


def apply_working_compensation(tile: Any, state: PCMTileState) -> Tensor | None:
    """Set the tile's drift-compensation factor from its working devices (stuck ones excluded).

    aihwkit estimates the factor from an identity read-out of the whole tile; stuck-at-g_max
    devices do not drift and bias that estimate (on ``pcm_aged_lowyield`` global compensation
    then restores only 0.86-0.93 of the weight scale after a year). Here the factor is
    :meth:`~analog_snu.tiles.pcm_noise.PCMNoiseModel.working_compensation` of the programmed and
    current conductances: inference tiles get it as ``alpha``, pulsed tiles through their
    output scales. Returns the factor (``None`` when the tile's compensation is ``"none"``).
    """
    scheme = tile_compensation(tile)
    noise_model = tile_noise_model(tile)
    if scheme == "none" or noise_model is None:
        return None
    alpha = noise_model.working_compensation(state.g_programmed, state.g_now, state.stuck, scheme)
    if is_inference_tile(tile):
        previous = torch.as_tensor(tile.alpha)
        value = alpha.reshape(previous.shape) if previous.numel() == alpha.numel() else alpha
        tile.__dict__.pop("alpha", None)
        tile.alpha = value.to(previous.dtype).to(previous.device)
    else:
        tile.set_mapping_scales(state.output_scales * alpha)
    return alpha


def has_training_noise(tile: Any) -> bool:
    """True when the tile injects hardware-aware training noise or clips its weights (``"hwa"`` mode)."""
    rpu = tile.rpu_config
    modifier = getattr(getattr(rpu, "modifier", None), "type", None)
    clip = getattr(getattr(rpu, "clip", None), "type", None)
    return (modifier not in (None, _configs.WeightModifierType.NONE)) or (clip not in (None, _configs.WeightClipType.NONE))


@torch.no_grad()
def network_scales(tile: Any, state: PCMTileState | None = None) -> tuple[Tensor, Tensor]:
    """The factors from the tile's weights to the weights the network computes with, per output
    row (shape ``(F_out,)``, or ``(1,)`` when one factor serves all rows), float64:
    ``(as programmed, now)``.

    A tile's output is its crossbar product times its digital periphery: the input range, the
    mapping scales and the learned output scales (aihwkit's ``TileWithPeriphery``), and, in
    evaluation, the drift-compensation factor (``alpha`` of an inference tile; folded into the
    mapping scales of a pulsed tile, whose scales before compensation ``state`` holds). "As
    programmed" leaves the compensation out; "now" includes it, as the tile applies it.
    """
    common = torch.ones(1, dtype=torch.float64)
    for part in (getattr(tile, "input_range", None), tile.get_learned_out_scales()):
        if part is not None:
            common = common * torch.as_tensor(part).detach().cpu().double().reshape(-1)
    mapping = mapping_scales_copy(tile)
    now = common if mapping is None else common * mapping.cpu().double().reshape(-1)
    if is_inference_tile(tile):
        alpha = getattr(tile, "alpha", None)
        compensated = alpha is not None and tile_compensation(tile) != "none"
        return now, (now * torch.as_tensor(alpha).detach().cpu().double().reshape(-1) if compensated else now)
    base = state.output_scales if state is not None and state.output_scales is not None else mapping
    programmed = common if base is None else common * base.cpu().double().reshape(-1)
    return programmed, now


def tile_snapshot(tile: Any) -> dict[str, Tensor | None]:
    """Periphery values that evaluation depends on besides the crossbar weights."""
    snapshot: dict[str, Tensor | None] = {"mapping_scales": mapping_scales_copy(tile)}
    if is_inference_tile(tile):
        snapshot["alpha"] = torch.as_tensor(tile.alpha).detach().clone()
        baseline = tile.drift_baseline
        snapshot["drift_baseline"] = None if baseline is None else torch.as_tensor(baseline).detach().clone()
    return snapshot  # every entry is already a copy


@torch.no_grad()
def restore_tile(tile: Any, noise_model: PCMNoiseModel, state: PCMTileState, snapshot: dict[str, Tensor | None]) -> None:
    """Put ``tile`` into a programmed/drifted ``state`` (inverse of what program/drift did)."""
    noise_model.state = state
    tile.reference_combined_weights = state.weights_target.clone()
    tile.tile.set_weights(state.weights_now.clone())
    scales = snapshot.get("mapping_scales")
    tile.set_mapping_scales(None if scales is None else scales.clone())
    if is_inference_tile(tile):
        tile.programmed_weights = state.weights_programmed.clone()
        tile.drift_noise_parameters = list(state.nu.flatten(0, 1).to(torch.float32).unbind(0))
        baseline = snapshot.get("drift_baseline")
        tile.drift_baseline = None if baseline is None else baseline.clone()
        alpha = snapshot.get("alpha")
        if alpha is not None:
            tile.__dict__.pop("alpha", None)
            tile.alpha = alpha.clone()


def tile_compensation(tile: Any) -> str:
    """The tile's drift compensation: ``"none"``, ``"global"`` or ``"per_column"``."""
    if is_inference_tile(tile) or isinstance(tile.rpu_config, PCMPulsedRPUConfig):
        return drift_compensation_of(tile.rpu_config)
    return getattr(tile, "_pcm_drift_compensation", "none")


def set_tile_compensation(tile: Any, scheme: str) -> str:
    """Switch the tile's drift compensation to ``scheme`` (takes effect at the next programming);
    returns the previous scheme."""
    if scheme not in DRIFT_COMPENSATIONS:
        raise ConfigError(f"compensation must be one of {list(DRIFT_COMPENSATIONS)}, got {scheme!r}")
    previous = tile_compensation(tile)
    if is_inference_tile(tile):
        classes = {"none": None, "global": _compensation.GlobalDriftCompensation,
                   "per_column": _compensation.PerColumnDriftCompensation}
        tile.rpu_config.drift_compensation = classes[scheme]() if classes[scheme] else None
    elif isinstance(tile.rpu_config, PCMPulsedRPUConfig):
        tile.rpu_config.pcm_drift_compensation = scheme
    else:
        tile._pcm_drift_compensation = scheme
    return previous


def suspend_compensation(tile: Any):
    """Evaluate without drift compensation: sets the tile's compensation factor to 1 and returns
    a function that puts it back."""
    if is_inference_tile(tile):
        alpha = torch.as_tensor(tile.alpha).detach().clone()
        tile.alpha = torch.ones_like(alpha)

        def restore() -> None:
            tile.alpha = alpha

        return restore
    scales = mapping_scales_copy(tile)
    state = getattr(tile_noise_model(tile), "state", None)
    if state is not None and state.output_scales is not None:
        tile.set_mapping_scales(state.output_scales.clone())

    def restore_scales() -> None:
        tile.set_mapping_scales(None if scales is None else scales.clone())

    return restore_scales


@torch.no_grad()
def unprogram_tile(tile: Any) -> None:
    """Put the reference (trained) weights back on the tile and forget the programmed state."""
    noise_model = tile_noise_model(tile)
    state = getattr(noise_model, "state", None)
    if tile.reference_combined_weights is not None:
        tile.tile.set_weights(tile.reference_combined_weights)
    if is_inference_tile(tile):
        tile.programmed_weights = None
        tile.drift_noise_parameters = None
        tile.drift_baseline = None
        tile.alpha = torch.ones_like(torch.as_tensor(tile.alpha))
    elif state is not None and state.output_scales is not None:
        tile.set_mapping_scales(state.output_scales.clone())
    tile.reference_combined_weights = None
    if noise_model is not None:
        noise_model.state = None
