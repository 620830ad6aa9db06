"""The data of exported weight maps and their import: the programmed state of every PCM device of a network.

Files (``path`` is the ``.npz``; the others sit next to it):

- ``<stem>.npz`` (numpy, loaded with ``allow_pickle=False``), per tile ``<tile>/<field>``:
  ``weights_target``, ``weights_programmed``, ``weights_now`` (F_out, F_in) float32 in tile
  units; ``g_plus_target``, ``g_minus_target``, ``g_plus_programmed``, ``g_minus_programmed``,
  ``g_plus``, ``g_minus`` (K, F_out, F_in) float64 µS (``g_plus``/``g_minus``: now);
  ``g_max_device``, ``nu`` (K, 2, F_out, F_in) float64; ``stuck`` (K, 2, F_out, F_in) int8
  (0 working, 1 at g_max, 2 at 0 µS); ``scale_ratio`` (µS per weight unit) and the periphery
  values evaluation depends on (``mapping_scales``, ``alpha``, ``drift_baseline``,
  ``output_scales``, ``compensation_reference``; absent when unset); ``network_scale_programmed``
  and ``network_scale_now`` (F_out,) or (1,) float64: per output row, the factor from tile units
  to the weights the network computes with, as programmed and now (drift compensation included;
  :func:`~analog_snu.tiles.tile_access.network_scales`), for figures; import does not need them.
- ``<stem>.json``: format and version, package/aihwkit versions, the npz's SHA-256, and per
  tile its layer, shape, device config, time since programming and seeds.
- optional ``<stem>_<layer>.csv`` (one row per weight and pair) and ``<stem>_<layer>.png``
  (heatmaps of G+ and G- now, per pair, at the layer's global indices; see
  :mod:`analog_snu.reports.map_plots`).

The files are written together (all of them or none) by :func:`analog_snu.reports.export_weight_maps`.
:func:`import_weight_maps` checks everything before it changes the model: the checksum, the
archive's member sizes against a cap before inflating them (no zip bombs), shapes and dtypes,
and physical ranges (finite, conductances and drift exponents >= 0, device maxima
> 0, stuck codes in {0, 1, 2}, a finite time >= 0, seeds ints >= 0 or null).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from analog_snu.data.cache import DEFAULT_MAX_NPZ_BYTES, load_npz
from analog_snu.errors import CheckpointError, ConfigError, DataError
from analog_snu.files import read_json_file, read_regular_file
from analog_snu.hardware.layer_maps import WEAR_FIELDS, LayerMaps, layer_maps_from_states
from analog_snu.hardware.programming import drift, seconds_after_programming
from analog_snu.pcm import PCMDevice
from analog_snu.pcm.physics import PCMTileState
from analog_snu.tiles.backend import aihwkit_version
from analog_snu.tiles.crossbar import crossbars
from analog_snu.tiles.pcm_noise import PCMNoiseModel
from analog_snu.tiles.tile_access import (
    is_inference_tile,
    named_layer_tiles,
    network_scales,
    tile_noise_model,
    tile_snapshot,
)

__all__ = ["weight_map_data", "import_weight_maps", "npz_path_for", "FORMAT", "VERSION"]

FORMAT = "analog_snu.weight_maps"
VERSION = 1
_OPTIONAL = ("mapping_scales", "alpha", "drift_baseline", "output_scales", "compensation_reference")
#: arrays written for figures, not needed by import
_FIGURES_ONLY = ("network_scale_programmed", "network_scale_now")
#: arrays every tile has in the npz
_REQUIRED = ("weights_target", "weights_programmed", "weights_now", "g_plus_target", "g_minus_target",
             "g_plus_programmed", "g_minus_programmed", "g_plus", "g_minus", "g_max_device", "nu", "stuck",
             "scale_ratio")


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("analog_snu")
    except PackageNotFoundError:
        return "unknown"


def _programmed_tiles(model: nn.Module) -> list[tuple[str, str, Any, PCMNoiseModel, PCMTileState]]:
    out = []
    tiles = named_layer_tiles(model)
    if not tiles:
        raise ConfigError("the model has no analog tiles: there are no weight maps to export")
    for layer, name, tile in tiles:
        noise_model = tile_noise_model(tile)
        if noise_model is None or noise_model.state is None:
            raise ConfigError(f"tile {name!r} is not programmed; call analog_snu.program(model, seed=...) first")
        out.append((layer, name, tile, noise_model, noise_model.state))
    return out


def _tile_arrays(state: PCMTileState, tile: Any) -> dict[str, np.ndarray]:
    arrays = {
        "weights_target": state.weights_target,
        "weights_programmed": state.weights_programmed,
        "weights_now": state.weights_now,
        "g_plus_target": state.g_target[:, 0],
        "g_minus_target": state.g_target[:, 1],
        "g_plus_programmed": state.g_programmed[:, 0],
        "g_minus_programmed": state.g_programmed[:, 1],
        "g_plus": state.g_now[:, 0],
        "g_minus": state.g_now[:, 1],
        "g_max_device": state.g_max_device,
        "nu": state.nu,
        "stuck": state.stuck,
        "scale_ratio": torch.tensor(state.scale_ratio, dtype=torch.float64),
    }
    arrays["network_scale_programmed"], arrays["network_scale_now"] = network_scales(tile, state)
    extra = dict(tile_snapshot(tile))
    extra["output_scales"] = state.output_scales
    extra["compensation_reference"] = state.compensation_reference
    for key in _OPTIONAL:
        if extra.get(key) is not None:
            arrays[key] = extra[key]
    return {key: value.detach().cpu().contiguous().numpy() for key, value in arrays.items()}


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text) or "model"


def _csv_text(layer_tiles: list[tuple[str, PCMNoiseModel, PCMTileState]]) -> str:
    lines = ["tile,pair,row,col,w_target,w_programmed,w_now,g_plus_target,g_minus_target,g_plus_programmed,"
             "g_minus_programmed,g_plus,g_minus,nu_plus,nu_minus,stuck_plus,stuck_minus"]
    for name, _, s in layer_tiles:
        pairs, rows, cols = s.g_target.shape[0], *s.shape
        for k in range(pairs):
            for i in range(rows):
                for j in range(cols):
                    lines.append(
                        f"{name},{k},{i},{j},{s.weights_target[i, j]:.9g},{s.weights_programmed[i, j]:.9g},"
                        f"{s.weights_now[i, j]:.9g},{s.g_target[k, 0, i, j]:.9g},{s.g_target[k, 1, i, j]:.9g},"
                        f"{s.g_programmed[k, 0, i, j]:.9g},{s.g_programmed[k, 1, i, j]:.9g},"
                        f"{s.g_now[k, 0, i, j]:.9g},{s.g_now[k, 1, i, j]:.9g},{s.nu[k, 0, i, j]:.6g},"
                        f"{s.nu[k, 1, i, j]:.6g},{int(s.stuck[k, 0, i, j])},{int(s.stuck[k, 1, i, j])}"
                    )
    return "\n".join(lines) + "\n"


def npz_path_for(path: str | os.PathLike) -> Path:
    """The ``.npz`` path of weight maps named ``path`` (``.npz`` appended unless it ends so)."""
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


@torch.no_grad()
def weight_map_data(model: nn.Module, path: str | os.PathLike, csv: bool = False, *, layer_maps: bool = False,
                    time: float | None = None, wear: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                    ) -> tuple[dict[Path, bytes], dict[str, Any], dict[Path, LayerMaps]]:
    """The data files of the weight maps (npz, json, csv), not written yet: ``(path -> content, which
    is which, figure path -> LayerMaps)``; the last is filled with ``layer_maps`` (the figures are
    drawn by :func:`analog_snu.reports.weight_map_files`)."""
    time = None if time is None else seconds_after_programming(time, "time")
    npz_path = npz_path_for(path)
    tiles = _programmed_tiles(model)
    if time is not None and any(state.t_now != time for *_, state in tiles):
        drift(model, time)
        tiles = _programmed_tiles(model)
    arrays: dict[str, np.ndarray] = {}
    meta_tiles = []
    by_layer: dict[str, list[tuple[str, PCMNoiseModel, PCMTileState]]] = {}
    for layer, name, tile, noise_model, state in tiles:
        for key, value in _tile_arrays(state, tile).items():
            arrays[f"{name}/{key}"] = value
        for key, value in (wear or {}).get(name, {}).items():
            arrays[f"{name}/{key}"] = np.asarray(value)
        meta_tiles.append({
            "name": name,
            "layer": layer,
            "shape": list(state.shape),
            "pairs": int(state.g_target.shape[0]),
            "tile_kind": "inference" if is_inference_tile(tile) else "pulsed",
            "device": noise_model.device.to_dict(),
            "time_since_programming_s": state.t_now,
            "program_seed": state.program_seed,
            "drift_seed": state.drift_seed,
        })
        by_layer.setdefault(layer, []).append((name, noise_model, state))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    npz_bytes = buffer.getvalue()
    first = meta_tiles[0]
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "package_version": _package_version(),
        "aihwkit_version": aihwkit_version(),
        "npz_file": npz_path.name,
        "npz_sha256": hashlib.sha256(npz_bytes).hexdigest(),
        "device": first["device"],
        "time_since_programming_s": first["time_since_programming_s"],
        "program_seed": first["program_seed"],
        "drift_seed": first["drift_seed"],
        "tiles": meta_tiles,
    }
    files: dict[Path, bytes] = {npz_path: npz_bytes,
                                npz_path.with_suffix(".json"): (json.dumps(meta, indent=2) + "\n").encode()}
    written: dict[str, Any] = {"npz": npz_path, "json": npz_path.with_suffix(".json"), "csv": [], "png": []}
    figures: dict[Path, LayerMaps] = {}
    for layer, layer_tiles in by_layer.items():
        stem = f"{npz_path.stem}_{_safe_name(layer)}"
        if csv:
            target = npz_path.with_name(stem + ".csv")
            files[target] = _csv_text(layer_tiles).encode()
            written["csv"].append(target)
        if layer_maps:
            figures[npz_path.with_name(stem + ".png")] = layer_maps_from_states(layer, layer_tiles)
    return files, written, figures


# --- import ------------------------------------------------------------------------------------------


def _read_meta(npz_path: Path) -> dict[str, Any]:
    json_path = npz_path.with_suffix(".json")
    if not os.path.lexists(json_path):
        raise CheckpointError(f"weight-map sidecar {str(json_path)!r} is missing (export writes <stem>.npz and <stem>.json)")
    try:
        meta = read_json_file(json_path, "weight-map sidecar", error=CheckpointError)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} (a corrupt sidecar)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{str(json_path)!r} is not an analog_snu weight-map sidecar (format {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"weight-map version {meta.get('version')!r} is not supported (expected {VERSION})")
    if not isinstance(meta.get("tiles"), list) or not isinstance(meta.get("npz_sha256"), str):
        raise CheckpointError(f"weight-map sidecar {str(json_path)!r} is corrupt: no tile list or checksum")
    return meta


def _read_arrays(npz_path: Path, sha256: str, max_bytes: int) -> dict[str, np.ndarray]:
    try:
        size = npz_path.stat().st_size
    except OSError as exc:
        raise CheckpointError(f"cannot read weight maps {str(npz_path)!r}: {exc.strerror or exc}") from exc
    if size > max_bytes:
        raise CheckpointError(f"weight maps {str(npz_path)!r} have {size} bytes, more than max_bytes={max_bytes}")
    raw = read_regular_file(npz_path, "weight maps", error=CheckpointError, max_bytes=max_bytes)
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise CheckpointError(f"weight maps {str(npz_path)!r} are corrupt: SHA-256 differs from the sidecar's")
    try:
        return load_npz(raw, max_bytes=max_bytes, name=repr(str(npz_path)))
    except DataError as exc:
        raise CheckpointError(f"weight maps are corrupt or too large: {exc}") from exc


def _expect(arrays: dict[str, np.ndarray], key: str, shape: tuple[int, ...], dtype: Any) -> torch.Tensor:
    if key not in arrays:
        raise CheckpointError(f"weight maps lack array {key!r}")
    value = arrays[key]
    if value.shape != shape or value.dtype != np.dtype(dtype):
        raise CheckpointError(
            f"weight-map array {key!r} has shape {value.shape} {value.dtype}, expected {shape} {np.dtype(dtype)}"
        )
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise CheckpointError(f"weight-map array {key!r} holds NaN or inf")
    return torch.from_numpy(value.copy())


def _check_range(name: str, value: torch.Tensor, what: str, *, positive: bool = False) -> torch.Tensor:
    bad = value <= 0 if positive else value < 0
    if bool(bad.any()):
        raise CheckpointError(
            f"weight-map array {name!r} holds {int(bad.sum())} value(s) {'<= 0' if positive else '< 0'} "
            f"(min {float(value.min()):g}); {what} must be {'> 0' if positive else '>= 0'}"
        )
    return value


def _where(name: str) -> str:
    return "weight-map sidecar" if name == "(file)" else f"tile {name!r}"


def _check_entry(name: str, entry: dict[str, Any]) -> tuple[float, int | None, int | None]:
    t_now = entry.get("time_since_programming_s", 0.0)
    if (isinstance(t_now, bool) or not isinstance(t_now, (int, float)) or not math.isfinite(t_now)
            or math.copysign(1.0, t_now) < 0):  # -0.0 too: a negative time, whatever its size
        raise CheckpointError(f"{_where(name)}: time_since_programming_s must be a finite number >= 0, got {t_now!r}")
    seeds = []
    for key in ("program_seed", "drift_seed"):
        seed = entry.get(key)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise CheckpointError(f"{_where(name)}: {key} must be an int >= 0 or null, got {seed!r}")
        seeds.append(seed)
    return float(t_now), seeds[0], seeds[1]


def _state_from_arrays(arrays: dict[str, np.ndarray], name: str, shape: tuple[int, int], pairs: int,
                       entry: dict[str, Any]) -> tuple[PCMTileState, dict[str, Any]]:
    dev_shape = (pairs, 2, *shape)
    half = (pairs, *shape)

    def get(key: str, shp: tuple[int, ...], dtype: Any) -> torch.Tensor:
        return _expect(arrays, f"{name}/{key}", shp, dtype)

    def pair(prefix: str, suffix: str) -> torch.Tensor:
        plus, minus = get(f"g_plus{suffix}", half, np.float64), get(f"g_minus{suffix}", half, np.float64)
        _check_range(f"{name}/g_plus{suffix}", plus, "conductances (µS)")
        _check_range(f"{name}/g_minus{suffix}", minus, "conductances (µS)")
        return torch.stack([plus, minus], 1)

    t_now, program_seed, drift_seed = _check_entry(name, entry)

    stuck = get("stuck", dev_shape, np.int8)
    if not bool(((stuck >= 0) & (stuck <= 2)).all()):
        raise CheckpointError(f"weight-map array {name}/stuck holds flags other than 0, 1, 2")
    state = PCMTileState(
        weights_target=get("weights_target", shape, np.float32),
        scale_ratio=float(_check_range(f"{name}/scale_ratio", get("scale_ratio", (), np.float64), "µS per weight unit",
                                       positive=True)),
        g_max_device=_check_range(f"{name}/g_max_device", get("g_max_device", dev_shape, np.float64),
                                  "device maximum conductances (µS)", positive=True),
        g_target=pair("g", "_target"),
        g_programmed=pair("g", "_programmed"),
        nu=_check_range(f"{name}/nu", get("nu", dev_shape, np.float64), "drift exponents"),
        stuck=stuck,
        g_now=pair("g", ""),
        weights_programmed=get("weights_programmed", shape, np.float32),
        weights_now=get("weights_now", shape, np.float32),
        t_now=t_now,
        program_seed=program_seed,
        drift_seed=drift_seed,
    )
    snapshot: dict[str, Any] = {}
    for key in _OPTIONAL:
        full = f"{name}/{key}"
        if full in arrays:
            value = arrays[full]
            if value.ndim > 1 or value.size not in (1, shape[0]) or not np.isfinite(value).all():
                raise CheckpointError(
                    f"weight-map array {full!r} has shape {value.shape}, expected (), (1,) or ({shape[0]},) finite values"
                )
            snapshot[key] = torch.from_numpy(value.copy())
    state.output_scales = snapshot.pop("output_scales", None)
    state.compensation_reference = snapshot.pop("compensation_reference", None)
    snapshot.setdefault("mapping_scales", None)
    return state, snapshot


@torch.no_grad()
def import_weight_maps(model: nn.Module, path: str | os.PathLike, *,
                       max_bytes: int = DEFAULT_MAX_NPZ_BYTES) -> dict[str, PCMTileState]:
    """Restore the programmed/drifted state exported by :func:`analog_snu.reports.export_weight_maps` into ``model``.

    The model must have the same analog tiles (names and shapes) and device configs (a tile
    built from a stock aihwkit config adopts the file's device). Evaluation afterwards is
    bit-identical to evaluation of the exported model (same forward-noise seed). Nothing is
    changed when any check fails (:class:`~analog_snu.errors.CheckpointError`), including a
    physically impossible value (see the module docstring) or an archive whose members declare
    more than ``max_bytes`` uncompressed.
    """
    npz_path = npz_path_for(path)
    meta = _read_meta(npz_path)
    arrays = _read_arrays(npz_path, meta["npz_sha256"], max_bytes)
    tiles = crossbars(model)
    names = [crossbar.name for crossbar in tiles]
    saved_names = [entry.get("name") for entry in meta["tiles"] if isinstance(entry, dict)]
    if names != saved_names:
        raise CheckpointError(f"weight maps hold tiles {saved_names[:6]}, the model has {names[:6]} (another architecture?)")
    known = {f"{name}/{key}" for name in names for key in (*_REQUIRED, *_OPTIONAL, *_FIGURES_ONLY, *WEAR_FIELDS)}
    unknown = sorted(set(arrays) - known)
    if unknown:
        raise CheckpointError(f"weight maps hold array(s) {unknown[:5]} that no export writes (a changed or "
                              "foreign file?); refusing them")
    if meta["tiles"]:  # the file-level copy of the first tile's time and seeds must be valid and agree
        summary = _check_entry("(file)", meta)
        if summary != _check_entry(names[0], meta["tiles"][0]):
            raise CheckpointError(f"weight-map sidecar: time_since_programming_s / program_seed / drift_seed "
                                  f"{summary} differ from tile {names[0]!r}'s")
    plans = []
    for crossbar, entry in zip(tiles, meta["tiles"]):
        name = crossbar.name
        shape = tuple(crossbar.weights().shape)
        saved_shape = entry.get("shape")
        if not isinstance(saved_shape, list) or tuple(saved_shape) != shape:
            shown = tuple(saved_shape) if isinstance(saved_shape, list) else saved_shape
            raise CheckpointError(f"tile {name!r}: weight maps have shape {shown}, the model {shape}")
        try:
            device = PCMDevice.from_dict(entry["device"])
        except (KeyError, ConfigError, TypeError) as exc:
            raise CheckpointError(f"tile {name!r}: the weight maps' device config is invalid: {exc}") from exc
        noise_model = crossbar.noise_model
        if noise_model is not None and noise_model.device != device:
            raise CheckpointError(
                f"tile {name!r}: the weight maps were programmed with device {device.name!r}, the model's tile "
                f"uses device {noise_model.device.name!r} with other parameters; rebuild the model with that device"
            )
        pairs = entry.get("pairs")
        if pairs != device.conductance.pairs:
            raise CheckpointError(f"tile {name!r}: {pairs!r} pairs in the file, {device.conductance.pairs} in its device config")
        state, snapshot = _state_from_arrays(arrays, name, shape, pairs, entry)
        plans.append((crossbar, noise_model, device, state, snapshot))
    model.eval()
    restored = {}
    for (crossbar, noise_model, device, state, snapshot), name in zip(plans, names):
        if noise_model is None:
            noise_model = crossbar.attach_noise_model(PCMNoiseModel(device))
        crossbar.restore(noise_model, state, snapshot)
        restored[name] = state
    return restored
