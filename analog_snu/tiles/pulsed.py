"""Stock aihwkit RPU config for pulsed (in-memory) training on PCM, used until a device preset is chosen."""

from __future__ import annotations

from analog_snu.tiles.backend import aihwkit_module

__all__ = ["pcm_pulsed_rpu_config"]


def pcm_pulsed_rpu_config():
    """aihwkit's ``PCMPreset``: one PCM pair per weight with refresh (``PCMPresetUnitCell``).

    Updates are stochastic pulse trains applied in memory (fully parallel update, aihwkit's
    preset IO and update parameters); the torch optimizer only sets the learning rate.
    """
    return aihwkit_module("simulator.presets").PCMPreset()
