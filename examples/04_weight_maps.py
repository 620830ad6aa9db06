"""04: export the state of every PCM device, read it as arrays, and import it into a network.

A hardware-aware digits network is programmed and drifted to one day; its weight maps (target,
programmed and current conductances of every G+/G- device, drift exponents, stuck flags) go to
an npz file with a JSON sidecar and a CSV per layer. Imported into a fresh copy of the network,
the maps give the same outputs bit for bit.

    python examples/04_weight_maps.py               # add --toy for a tiny, quick run
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from analog_snu import drift, export_weight_maps, import_weight_maps, load_run, program, train_run
from analog_snu.experiments import build_config

TOY = "--toy" in sys.argv
OUT = Path("runs/examples/04")
SIZE = {"train-limit": 48, "epochs": 1, "layers": [8]} if TOY else {"epochs": 5}

run = OUT / "digits_hwa"
config = build_config(flags={"task": "digits", "device": "pcm_joshi2020", **SIZE})
train_run(config, run, force=run.exists(), progress=False)

# The trained network from its checkpoint: tiles and digital parameters (thresholds, biases).
net, spec = load_run(run)
program(net, seed=0)
drift(net, 86_400.0)  # one day after programming
written = export_weight_maps(net, OUT / "maps.npz", csv=True)
print("wrote", written["npz"], written["json"], *written["csv"])

# The maps are plain arrays (no pickle): tile name / field.
meta = json.loads(written["json"].read_text())
with np.load(written["npz"], allow_pickle=False) as maps:
    for tile in meta["tiles"]:
        name = tile["name"]
        g_plus, stuck, nu = maps[f"{name}/g_plus"], maps[f"{name}/stuck"], maps[f"{name}/nu"]
        print(f"{name}: shape {tile['shape']}, G+ now mean {g_plus.mean():.2f} uS (max {g_plus.max():.2f}), "
              f"drift exponent nu mean {nu.mean():.3f}, stuck devices {np.count_nonzero(stuck)}")

# The maps hold the devices, not the digital parameters: take those from the run again.
twin, _ = load_run(run)
import_weight_maps(twin, OUT / "maps.npz")

fresh, _ = load_run(run)  # the same network without the maps: as trained, not programmed


def outputs(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(1)  # the tiles' read and output noise come from torch's generator
    with torch.no_grad():
        return model(torch.bernoulli(torch.full((20, 8, 64), 0.2)))  # (T, N, F_in) input spikes


print("imported network, outputs equal the exported one's:", torch.equal(outputs(twin), outputs(net)))
print("without the maps, outputs equal the exported one's:", torch.equal(outputs(fresh), outputs(net)))
