"""01: one SNU layer, digital and on a PCM tile, programmed and drifted.

The same weights run as a digital layer and on the inference tile of preset ``pcm_joshi2020``:
how many spikes match right after programming, one day and one year later, with and without
drift compensation.

    python examples/01_snu_layer_on_pcm.py          # add --toy for a tiny, quick run
"""

import sys

import torch

from analog_snu import SNU, device_count, drift, program
from analog_snu.pcm import preset
from analog_snu.tiles import device_rpu_config

TOY = "--toy" in sys.argv
T, N, F_IN, F_OUT = (5, 4, 16, 8) if TOY else (20, 64, 256, 128)
torch.manual_seed(0)

# Input: Bernoulli spikes, time first: (T, N, F_in).
x = torch.bernoulli(torch.full((T, N, F_IN), 0.2))

# A digital SNU layer; its output y is (T, N, F_out) spikes, the state (s_T, y_T) the last step's.
digital = SNU(F_IN, F_OUT, decay=0.8, threshold=0.5)
y_digital, _ = digital(x)
print(f"digital layer: spike rate {y_digital.mean():.3f}")

for compensation in ("global", "none"):
    # The same layer with its matrix product on a PCM tile ("inference": no training noise).
    device = preset("pcm_joshi2020").updated({"periphery": {"drift_compensation": compensation}})
    analog = SNU(F_IN, F_OUT, decay=0.8, threshold=0.5, rpu_config=device_rpu_config(device, "inference"))
    analog.weight_ih.set_weights(digital.weight_ih.weight.detach())  # copy W onto the tile
    analog.threshold.data.copy_(digital.threshold.data)
    if compensation == "global":
        print(f"PCM devices: {device_count(analog)['total']} (a G+/G- pair per weight)")

    program(analog, seed=0)  # weights -> conductances: programming noise, stuck devices (seeded)
    for seconds, label in [(0.0, "as programmed"), (86_400.0, "1 day"), (31_536_000.0, "1 year")]:
        drift(analog, seconds)  # conductances drift, fresh read noise, compensation re-estimated
        with torch.no_grad():
            y_analog, _ = analog(x)
        agree = (y_analog == y_digital).float().mean()
        print(f"compensation {compensation:6s} {label:13s}: spike rate {y_analog.mean():.3f}, "
              f"{100 * agree:.1f} % of outputs equal the digital layer's")
