"""Named PCM device presets, each with where its numbers come from.

Add a preset by adding an entry to :data:`PRESETS`; :func:`preset` returns a fresh
:class:`~analog_snu.pcm.device.PCMDevice` (frozen, so entries cannot be mutated).
:func:`resolve_device` is the one way from a user's ``--device`` value (a preset name or a
``.toml``/``.json`` device file) to a :class:`PCMDevice`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analog_snu.errors import ConfigError
from analog_snu.pcm._files import FILE_SUFFIXES
from analog_snu.pcm.device import PCMDevice

__all__ = ["Preset", "PRESETS", "preset", "list_presets", "preset_info", "resolve_device"]


@dataclass(frozen=True)
class Preset:
    """A registry entry: the device fields (as a nested dict over the defaults) and provenance."""

    fields: dict[str, Any]
    """Changes over the :class:`PCMDevice` defaults (nested dict)."""
    source: str
    """Citation(s) for the numbers."""
    conditions: str
    """What the numbers describe, how they were obtained, and what is assumed."""


_IDEAL_OFF = {
    "programming": {"enabled": False},
    "read_noise": {"enabled": False},
    "drift": {"enabled": False},
    "stuck": {"enabled": False, "fraction_at_gmax": 0.0, "fraction_at_zero": 0.0},
    "periphery": {
        "enabled": False,
        "dac_bits": 0,
        "adc_bits": 0,
        "out_noise": 0.0,
        "weight_scaling_omega": 0.0,
        "drift_compensation": "none",
    },
    "hwa": {"enabled": False, "weight_noise": 0.0, "clip": 0.0},
}

#: The PCMDevice defaults are the statistics of aihwkit's PCMLikeNoiseModel (Joshi et al. 2020).
_JOSHI2020: dict[str, Any] = {"conductance": {"g_max": 25.0}}

#: name -> preset. Keys are lowercase, ``pcm_<firstauthor><year>`` for fitted devices.
PRESETS: dict[str, Preset] = {
    "pcm": Preset(
        fields={**_JOSHI2020, "simulator": "cpp"},
        source=(
            "aihwkit 1.2.0 stock PCM HWA config, as in its examples: InferenceRPUConfig (C++ tile) with "
            "PCMLikeNoiseModel(g_max=25) and GlobalDriftCompensation, weight_scaling_omega 1.0, 7-bit DAC / "
            "9-bit ADC, output noise 0.02, fixed weight clip 1.0 with learn_out_scaling, additive Gaussian "
            "weight noise 3.8 % of max|W| (rel_to_actual_wmax); pulsed training: aihwkit PCMPreset "
            "(PCMPresetUnitCell of two PCMPresetDevice with refresh). Statistics as pcm_joshi2020."
        ),
        conditions=(
            "The same device as pcm_joshi2020 simulated on aihwkit's C++ tile (simulator 'cpp'): the "
            "settings of aihwkit's HWA examples expressed as PCMDevice fields. Differences from the "
            "former inline aihwkit config: programming, drift and read noise come from our PCMNoiseModel "
            "(the PCMLikeNoiseModel equations with per-device state, seeded), inference tiles carry no "
            "weight noise or clipping, and pulsed tiles use the periphery fields (7/9 bits, output "
            "noise 0.02, bound 12) instead of PresetIOParameters (7/9 bits, output noise 0.1, bound 20) "
            "and g_max_spread 0 instead of PCMPresetDevice's w_max_dtod 0.1 (set conductance.g_max_spread "
            "= 0.1 for that, which also spreads g_max when programming)."
        ),
    ),
    "pcm_joshi2020": Preset(
        fields=_JOSHI2020,
        source=(
            "Statistics of aihwkit 1.2.0 PCMLikeNoiseModel (programming-noise polynomial, drift-exponent "
            "mean/std vs ln(G/g_max), 1/f read noise), fitted on doped-Ge2Sb2Te5 mushroom PCM: "
            "Nandakumar et al., ICECS 2019, doi:10.1109/ICECS46596.2019.8964852, and used in Joshi et al., "
            "'Accurate deep neural network inference using computational phase-change memory', "
            "Nat. Commun. 11, 2473 (2020), doi:10.1038/s41467-020-16108-9. HWA weight noise 3.8 % of max|W| "
            "(Joshi et al. 2020). Pulsed device: aihwkit PCMPresetDevice / PCMPresetUnitCell "
            "(Nandakumar et al., Front. Neurosci. 14:406, 2020, doi:10.3389/fnins.2020.00406)."
        ),
        conditions=(
            "g_max 25 µS, one G+/G- pair per weight, t0 = 20 s, t_read = 250 ns; drift compensated "
            "globally per tile. Periphery as in aihwkit's HWA examples: 7-bit DAC, 9-bit ADC, output "
            "noise 0.02, output bound 12, weights scaled to max|W| = 1. No stuck devices, no g_max spread."
        ),
    ),
    "ideal": Preset(
        fields=_IDEAL_OFF,
        source="No measurement: every nonideality switched off.",
        conditions=(
            "Exact weights, no programming/read noise, no drift, no stuck devices, no g_max spread, ideal "
            "periphery (no DAC/ADC, no output noise or bounds), no weight scaling, no HWA noise. A tile "
            "built from it computes exactly what nn.Linear computes; use it as the digital reference."
        ),
    ),
    "pcm_aged_lowyield": Preset(
        fields={
            "conductance": {"g_max": 20.0, "g_max_spread": 0.1},
            "programming": {"scale": 2.0},
            "read_noise": {"scale": 2.0},
            "drift": {"scale": 1.5},
            "stuck": {"fraction_at_gmax": 0.01, "fraction_at_zero": 0.04},
            "periphery": {"out_noise": 0.04, "drift_compensation": "per_column"},
        },
        source=(
            "Stress-test preset derived from pcm_joshi2020; not a fit to one measurement. Scale factors "
            "chosen as round multiples of the Joshi/Nandakumar statistics."
        ),
        conditions=(
            "An aged, low-yield array: g_max reduced to 20 µS with 10 % device-to-device spread; programming "
            "and read noise doubled; drift exponents x1.5; 5 % of devices stuck (1 % at g_max, 4 % at "
            "0 µS, i.e. 95 % yield); output noise 0.04; per-column drift compensation."
        ),
    ),
}


def list_presets() -> list[str]:
    """Names of all presets, sorted."""
    return sorted(PRESETS)


def _entry(name: str) -> Preset:
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; valid presets: {list_presets()}")
    return PRESETS[name]


def preset(name: str) -> PCMDevice:
    """The :class:`PCMDevice` of preset ``name`` (see :func:`list_presets`)."""
    entry = _entry(name)
    return PCMDevice(name=name).updated(entry.fields)


def preset_info(name: str) -> dict[str, str]:
    """Provenance of preset ``name``: ``{"name", "source", "conditions"}``."""
    entry = _entry(name)
    return {"name": name, "source": entry.source, "conditions": entry.conditions}


def resolve_device(value: str | os.PathLike[str] | PCMDevice) -> PCMDevice:
    """A :class:`PCMDevice` from a device, a preset name or a ``.toml``/``.json`` device file path.

    Raises:
        ConfigError: ``value`` is neither (the message lists the presets), or the file is
            missing, unreadable, not valid TOML/JSON, or holds an invalid device (named).
    """
    if isinstance(value, PCMDevice):
        return value
    if isinstance(value, str) and value in PRESETS:
        return preset(value)
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if path.suffix.lower() in FILE_SUFFIXES:
            return PCMDevice.from_file(path)
        raise ConfigError(
            f"device {str(value)!r} is neither a preset nor a device file ({' or '.join(FILE_SUFFIXES)}); "
            f"valid presets: {list_presets()}"
        )
    raise ConfigError(
        f"device must be a PCMDevice, a preset name {list_presets()} or a .toml/.json file path, "
        f"got {type(value).__name__}"
    )
