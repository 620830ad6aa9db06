"""Safe, atomic checkpoints: safetensors tensors + JSON metadata, never a pickle.

One file holds everything needed to rebuild and continue a run:

- ``model/<name>``: every plain tensor of the model's state dict (digital weights,
  thresholds, decays, aihwkit's digital biases and mapping scales);
- ``tile/<name>/weight`` (``/bias``, ``/hidden``): each aihwkit tile's raw crossbar weights
  (in tile units; the scales are model tensors) and, for
  pulsed devices, its hidden device parameters;
- ``optim/<index>/<key>``: optimizer state tensors; hyper-parameters go in the JSON;
- ``rng/torch``: the global torch RNG state;
- ``<group>/<key>``: the tensors of the state dicts of the run's other training parts
  (``states``): the learning rule's under :data:`RULE_STATE` (FA/DFA feedback matrices by map
  name), the hardware hook's under :data:`HARDWARE_STATE` (the chip of a hardware-in-the-loop
  run); their JSON-able values are in the metadata's ``extra[<group>]``;
- JSON metadata (safetensors header): format version, the :class:`~analog_snu.models.ModelSpec`,
  the optimizer's param groups and scalars, and whatever the caller adds (``extra``).

Integrity: the header holds a SHA-256 (key ``analog_snu_sha256``) over every tensor's name,
dtype, shape and bytes and over the metadata JSON exactly as stored, checked on load: a flipped
bit in the tensor data and a changed number in the metadata (a stored validation loss, the
spec, the config) are refused alike; weights that are not finite are refused too. Version 2
checkpoints (older analog_snu) still load: their SHA-256, inside the JSON, covers the tensors only.
Files are written through :func:`analog_snu.files.atomic_write_bytes`: a crash leaves either
the old or the new checkpoint, whole. Loading rebuilds the model from the spec (which holds
the PCM device by value) and copies the tensors in; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_bytes
from torch import Tensor, nn

from analog_snu.errors import CheckpointError, ConfigError
from analog_snu.experiments.run_dir import CHECKPOINT_NAME
from analog_snu.files import atomic_write_bytes, load_json, read_regular_file
from analog_snu.models import ModelSpec, build_model, upgrade_stored_spec
from analog_snu.tiles.crossbar import (
    holds_tiles,
    is_model_tensor,
    is_tile_scale,
    layer_weights,
    load_tile_tensors,
    saved_like,
    set_layer_weights,
    tile_tensors,
)

__all__ = [
    "CHECKPOINT_NAME",
    "HARDWARE_STATE",
    "RULE_STATE",
    "Checkpoint",
    "checkpoint_bytes",
    "tensor_digest",
    "transfer_weights",
    "load_checkpoint",
    "load_run",
    "read_checkpoint",
    "restore_model",
    "restore_optimizer",
    "save_checkpoint",
    "model_tensors",
]

FORMAT = "analog_snu.checkpoint"
#: 2: the spec holds the PCM device by value, the config is stored, tensors carry a SHA-256;
#: 3: the SHA-256 covers the metadata too
VERSION = 3
#: versions this analog_snu reads (2: its checksum covers the tensors only)
READABLE_VERSIONS = (2, 3)
_META_KEY = "analog_snu"
_DIGEST_KEY = "analog_snu_sha256"
#: the group of the learning rule's state (named for the only rule state there is: FA/DFA feedback matrices)
RULE_STATE = "feedback"
#: the group of the hardware hook's state (hardware-in-the-loop training)
HARDWARE_STATE = "hil"
#: groups of the checkpoint's own
_OWN_GROUPS = ("model", "tile", "optim", "rng")


@dataclass
class Checkpoint:
    """A checkpoint read from disk: JSON metadata and named CPU tensors."""

    meta: dict[str, Any]
    tensors: dict[str, Tensor]

    @property
    def spec(self) -> ModelSpec:
        """The model spec stored with the weights."""
        try:
            return ModelSpec.from_dict(upgrade_stored_spec(self.meta["spec"]))
        except (KeyError, ConfigError) as exc:
            raise CheckpointError(f"checkpoint holds no valid model spec: {exc}") from exc

    def group_with_prefix(self, prefix: str) -> dict[str, Tensor]:
        """Tensors whose names start with ``prefix``, names kept whole."""
        return {name: tensor for name, tensor in self.tensors.items() if name.startswith(prefix)}

    def group(self, prefix: str) -> dict[str, Tensor]:
        """Tensors under ``prefix/`` with the prefix stripped."""
        start = len(prefix) + 1
        return {name[start:]: tensor for name, tensor in self.tensors.items() if name.startswith(prefix + "/")}

    def state(self, group: str) -> dict[str, Any]:
        """The state dict saved as ``states[group]`` (:func:`checkpoint_bytes`): its JSON values and
        its tensors (``{}`` when the checkpoint holds none)."""
        values = self.meta.get("extra", {}).get(group, {})
        if not isinstance(values, dict):
            raise CheckpointError(f"checkpoint's {group!r} state is {type(values).__name__}, not a mapping")
        return {**values, **self.group(group)}


# --- writing -------------------------------------------------------------------------------------


def tensor_digest(tensors: dict[str, Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _checkpoint_digest(tensors: dict[str, Tensor], meta_json: str) -> str:
    """SHA-256 over the tensors (:func:`tensor_digest`) and the metadata JSON as stored."""
    return hashlib.sha256(f"{tensor_digest(tensors)}\n{meta_json}".encode()).hexdigest()


@torch.no_grad()
def model_tensors(model: nn.Module) -> dict[str, Tensor]:
    """Everything needed to restore ``model``'s weights, as named CPU tensors (see the module docstring)."""
    tensors: dict[str, Tensor] = {}
    for name, value in model.state_dict().items():
        if is_model_tensor(name, value):
            tensors[f"model/{name}"] = value.detach().cpu().clone().contiguous()
    tensors.update(tile_tensors(model))
    return tensors


def _optimizer_payload(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"optim/{index}/{key}"] = value.detach().cpu().clone().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _to_json(meta: dict[str, Any]) -> str:
    def refuse(value: Any) -> Any:
        if isinstance(value, tuple):
            return list(value)
        raise CheckpointError(f"cannot store {type(value).__name__} value {value!r} in checkpoint metadata (JSON only)")

    try:
        return json.dumps(meta, default=refuse, sort_keys=True, allow_nan=False)
    except ValueError as exc:
        raise CheckpointError(f"cannot store checkpoint metadata: {exc} (a NaN or infinite metric?)") from None


def checkpoint_bytes(
    model: nn.Module,
    spec: ModelSpec,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
    save_rng: bool = True,
    states: dict[str, dict[str, Any]] | None = None,
) -> bytes:
    """The checkpoint file :func:`save_checkpoint` writes, as bytes (to write it together with other files)."""
    tensors = model_tensors(model)
    extra = dict(extra or {})
    for group, state in (states or {}).items():
        if group in _OWN_GROUPS or group in extra:
            raise CheckpointError(f"state group {group!r} collides with the checkpoint's own groups or extra")
        values = {key: value for key, value in state.items() if not isinstance(value, Tensor)}
        if values:
            extra[group] = values
        for key, value in state.items():
            if isinstance(value, Tensor):
                tensors[f"{group}/{key}"] = value.detach().cpu().contiguous()
    meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, "spec": spec.to_dict(), "extra": extra}
    if optimizer is not None:
        optim_tensors, meta["optimizer"] = _optimizer_payload(optimizer)
        tensors.update(optim_tensors)
    if save_rng:
        tensors["rng/torch"] = torch.get_rng_state().clone()
    meta_json = _to_json(meta)  # JSON first: a metadata error must not leave a half-made file behind
    return safetensors_bytes(tensors, metadata={_META_KEY: meta_json,
                                                _DIGEST_KEY: _checkpoint_digest(tensors, meta_json)})


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    spec: ModelSpec,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
    save_rng: bool = True,
    states: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Write model weights, spec, optimizer and RNG state to ``path`` atomically (safetensors).

    ``states``: the state dicts of other training parts by group name (:data:`RULE_STATE`,
    :data:`HARDWARE_STATE`), tensors and JSON values, covered by the same SHA-256; read back
    with :meth:`Checkpoint.state`.
    """
    atomic_write_bytes(path, checkpoint_bytes(model, spec, optimizer=optimizer, extra=extra, save_rng=save_rng,
                                              states=states))


# --- reading -------------------------------------------------------------------------------------


def _header_metadata(data: bytes, path: Path) -> dict[str, Any]:
    """The ``__metadata__`` of a safetensors file (8-byte little-endian header length, JSON header)."""
    size = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    if not 0 < size <= len(data) - 8:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint (header length {size})")
    try:
        header = load_json(data[8:8 + size], f"{path} header", error=CheckpointError)
    except CheckpointError as exc:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({exc})") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint file (safetensors + JSON); a missing, foreign, corrupt or edited file raises CheckpointError."""
    path = Path(path)
    if not os.path.lexists(path):
        raise CheckpointError(f"no checkpoint at {path}")
    data = read_regular_file(path, "checkpoint", error=CheckpointError)
    metadata = _header_metadata(data, path)
    try:
        tensors = safetensors_load(data)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({exc})") from exc
    meta_json = metadata.get(_META_KEY)
    try:
        meta = load_json(meta_json, "metadata", error=CheckpointError) if isinstance(meta_json, str) else None
    except CheckpointError:  # not JSON, or JSON with a key twice
        meta = None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} holds no analog_snu metadata; is it an analog_snu checkpoint?")
    if meta.get("format") != FORMAT or meta.get("version") not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path} has format {meta.get('format')!r} version {meta.get('version')!r}; this analog_snu reads "
            f"{FORMAT!r} versions {list(READABLE_VERSIONS)}: evaluate or resume it with the analog_snu that wrote "
            "it, or train the run again"
        )
    if meta["version"] == 2:
        intact = set(metadata) == {_META_KEY} and meta.get("sha256") == tensor_digest(tensors)
    else:
        intact = set(metadata) == {_META_KEY, _DIGEST_KEY} and "sha256" not in meta \
            and metadata[_DIGEST_KEY] == _checkpoint_digest(tensors, meta_json)
    if not intact:
        raise CheckpointError(f"{path} is corrupt or was edited: its tensor data or metadata do not match the "
                              "SHA-256 stored with it")
    for name, tensor in tensors.items():
        if name.startswith(("model/", "tile/")) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path} holds non-finite values in {name!r}; it cannot be evaluated or resumed")
    return Checkpoint(meta, tensors)


@torch.no_grad()
def restore_model(model: nn.Module, checkpoint: Checkpoint) -> None:
    """Copy the checkpoint's weights into ``model`` (built from the same spec); names and shapes must match."""
    saved = checkpoint.group("model")
    targets = {name: value for name, value in model.state_dict(keep_vars=True).items()
               if is_model_tensor(name, value)}
    missing, unexpected = sorted(set(targets) - set(saved)), sorted(set(saved) - set(targets))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint does not match the model (a different config?): missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    for name, target in targets.items():
        saved[name] = saved_like(name, saved[name], target)
        if tuple(target.shape) != tuple(saved[name].shape):
            raise CheckpointError(
                f"checkpoint tensor {name!r} has shape {tuple(saved[name].shape)}, the model expects "
                f"{tuple(target.shape)} (a different config?)"
            )
    for name, target in targets.items():
        target.data.copy_(saved[name])
    load_tile_tensors(model, checkpoint.tensors)


def restore_optimizer(optimizer: torch.optim.Optimizer, checkpoint: Checkpoint) -> None:
    """Load the checkpoint's optimizer state into ``optimizer`` (built over the restored model)."""
    payload = checkpoint.meta.get("optimizer")
    if payload is None:
        raise CheckpointError("checkpoint holds no optimizer state")
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in checkpoint.group("optim").items():
        index, key = name.split("/", 1)
        state.setdefault(int(index), {})[key] = tensor
    for index, entries in payload["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": payload["param_groups"]})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"optimizer state does not fit this optimizer (a different config?): {exc}") from exc


def restore_rng(checkpoint: Checkpoint) -> None:
    """Set the global torch RNG to the checkpoint's state."""
    if "rng/torch" not in checkpoint.tensors:
        raise CheckpointError("checkpoint holds no RNG state")
    torch.set_rng_state(checkpoint.tensors["rng/torch"])


def load_checkpoint(path: str | os.PathLike, tile_kind: str | None = None) -> tuple[nn.Module, ModelSpec, Checkpoint]:
    """Rebuild the model from the checkpoint's spec and load its weights.

    ``tile_kind`` rebuilds it on other tiles (``"inference"`` for a pulsed-trained model), from the
    spec with that tile kind, copying the logical weights instead of the raw tile state.
    """
    checkpoint = read_checkpoint(path)
    spec = checkpoint.spec
    model = build_model(spec)
    restore_model(model, checkpoint)
    if tile_kind is not None and tile_kind != spec.tile_kind:
        target = build_model(spec.replace(tile_kind=tile_kind))
        transfer_weights(model, target)
        model = target
    model.eval()
    return model, spec, checkpoint


@torch.no_grad()
def transfer_weights(source: nn.Module, target: nn.Module) -> None:
    """Copy the logical weights of ``source`` into ``target``: same architecture, other tiles.

    Works from analog or digital layers to analog ones (a digital run deployed on PCM): every
    analog layer of ``target`` takes the weights of the module of the same name in ``source``;
    plain tensors (thresholds, decays, digital biases) are copied by name, tile scales are not.
    """
    source_state = {k: v for k, v in source.state_dict().items() if is_model_tensor(k, v)}
    for name, value in target.state_dict(keep_vars=True).items():
        if is_model_tensor(name, value) and name in source_state and not is_tile_scale(name):
            value.data.copy_(source_state[name])
    source_modules = dict(source.named_modules())
    for name, module in target.named_modules():
        if not holds_tiles(module):  # containers (SNU, SNUNetwork) are analog too, but hold no tile themselves
            continue
        origin = source_modules.get(name)
        if origin is None:
            raise CheckpointError(f"cannot move the weights onto tiles: the source model has no layer {name!r}")
        if holds_tiles(origin):
            weight, bias = layer_weights(origin)
        elif isinstance(getattr(origin, "weight", None), Tensor):
            weight, bias = origin.weight.detach().clone(), getattr(origin, "bias", None)
            bias = None if bias is None else bias.detach().clone()
        else:
            raise CheckpointError(f"cannot move layer {name!r} ({type(origin).__name__}) onto analog tiles")
        set_layer_weights(module, weight, bias)


def load_run(run_dir: str | os.PathLike) -> tuple[nn.Module, ModelSpec]:
    """The trained model of a run directory (its latest checkpoint), in eval mode, and its spec."""
    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"{run_dir} holds no {CHECKPOINT_NAME}; is it a run directory of `analog-snu train`?")
    model, spec, _ = load_checkpoint(path)
    return model, spec
