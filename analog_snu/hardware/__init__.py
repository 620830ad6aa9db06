"""Programming, drift, device counts, weight-map data and drift studies of PCM networks (data only:
the figures are drawn by :mod:`analog_snu.reports`).

Above :mod:`analog_snu.tiles`: works on any network whose analog tiles carry a
:class:`~analog_snu.tiles.pcm_noise.PCMNoiseModel` (built with
``analog_snu.tiles.device_rpu.device_rpu_config(device, mode)``), or on stock aihwkit tiles when a
``device`` is given. The simulated chip of hardware-in-the-loop training is
:class:`analog_snu.pcm.chip.SimulatedChip`.
"""

from analog_snu.hardware.drift_study import DEFAULT_TIMES, DriftStudyResult, drift_study
from analog_snu.hardware.programming import derive_seed, device_count, drift, program, programmed_states
from analog_snu.hardware.weight_maps import import_weight_maps

__all__ = [
    "DEFAULT_TIMES",
    "DriftStudyResult",
    "drift_study",
    "derive_seed",
    "device_count",
    "drift",
    "import_weight_maps",
    "program",
    "programmed_states",
]
