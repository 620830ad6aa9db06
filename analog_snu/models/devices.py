"""Device name + training mode -> aihwkit RPU config (``None`` for digital).

``"digital"`` needs no tiles; ``"pcm"`` means aihwkit's stock PCM configs
(:func:`~analog_snu.tiles.pcm_hwa_rpu_config`, :func:`~analog_snu.tiles.pcm_pulsed_rpu_config`);
any other name is looked up in :mod:`analog_snu.device_models` (``preset(name).rpu_config(mode)``).
"""

from __future__ import annotations

import importlib
from typing import Any

from analog_snu.errors import ConfigError
from analog_snu.tiles import pcm_hwa_rpu_config, pcm_pulsed_rpu_config

__all__ = ["STOCK_DEVICES", "list_devices", "resolve_rpu_config", "device_preset_dict"]

#: names that need no preset registry
STOCK_DEVICES = ("digital", "pcm")
#: our training mode -> the preset's rpu_config mode
_PRESET_MODES = {"hwa": "hwa", "pulsed": "pulsed", "inference": "inference"}


def _preset_registry():
    """``(preset, list_presets)`` from analog_snu.device_models, or ``None`` before it exists."""
    try:
        module = importlib.import_module("analog_snu.device_models")
    except ImportError:
        return None
    preset, list_presets = getattr(module, "preset", None), getattr(module, "list_presets", None)
    if preset is None or list_presets is None:
        return None
    return preset, list_presets


def list_devices() -> list[str]:
    """Every valid ``device`` name: the stock ones, then the presets."""
    registry = _preset_registry()
    return list(STOCK_DEVICES) + (sorted(registry[1]()) if registry else [])


def _check_device(device: str) -> None:
    if device not in list_devices():
        raise ConfigError(f"unknown device {device!r}; valid devices: {list_devices()}")


def resolve_rpu_config(device: str, training: str) -> Any:
    """The aihwkit RPU config for ``device`` trained as ``training``.

    ``training`` is ``"digital"`` (returns ``None``), ``"hwa"``, ``"pulsed"``, or
    ``"inference"`` (the deployment config used to program and drift a pulsed-trained model).
    """
    _check_device(device)
    if training == "digital":
        if device != "digital":
            raise ConfigError(f"training 'digital' needs device 'digital', got device {device!r}")
        return None
    if training not in _PRESET_MODES:
        raise ConfigError(f"training must be one of ['digital', 'hwa', 'pulsed'], got {training!r}")
    if device == "digital":
        raise ConfigError(f"training {training!r} needs a PCM device ('pcm' or a preset), got device 'digital'")
    if device == "pcm":
        return pcm_pulsed_rpu_config() if training == "pulsed" else pcm_hwa_rpu_config()
    preset, _ = _preset_registry()
    return preset(device).rpu_config(_PRESET_MODES[training])


def device_preset_dict(device: str) -> dict:
    """The preset's parameters as a JSON-ready dict (empty for the stock devices), for the run record."""
    _check_device(device)
    if device in STOCK_DEVICES:
        return {}
    preset, _ = _preset_registry()
    config = preset(device)
    to_dict = getattr(config, "to_dict", None)
    return to_dict() if callable(to_dict) else {"name": device}
