"""02: your own PCM device as a file, used for training and for evaluation.

Start from a preset, change what your devices do differently, save it as TOML, and pass the
file wherever a preset name goes (``--device my_pcm.toml``). Here: a device with twice the
drift and 1 % of its devices stuck at 0 µS, against the preset it came from.

    python examples/02_custom_device.py             # add --toy for a tiny, quick run
"""

import json
import sys
import textwrap
from pathlib import Path

from analog_snu.cli import main
from analog_snu.pcm import PCMDevice, list_presets, preset, preset_info

TOY = "--toy" in sys.argv
OUT = Path("runs/examples/02")
OUT.mkdir(parents=True, exist_ok=True)
TRAIN = ["--train-limit", "48", "--epochs", "1", "--layers", "8", "--quiet"] if TOY else ["--epochs", "5"]

# Where a preset's numbers come from.
print("presets:", list_presets())
print(textwrap.fill(preset_info("pcm_joshi2020")["source"], 100), "\n")

# A variant: fields are nested as in the config (see docs/guide/devices.md or the API reference).
mine = preset("pcm_joshi2020").updated({
    "name": "my_pcm",
    "drift": {"scale": 2.0},                 # every device's drift exponent nu x2
    "stuck": {"fraction_at_zero": 0.01},     # 1 % of the devices never conduct
})
path = mine.save(OUT / "my_pcm.toml")        # .toml or .json; validated strictly when read back
assert PCMDevice.from_file(path) == mine
print(f"wrote {path}: {len(path.read_text().splitlines())} lines of TOML, every field with its value\n")

# Train hardware-aware on the file's device, then evaluate the network on both devices.
run = OUT / "digits_my_pcm"
main(["train", "--task", "digits", "--device", str(path), "--out", str(run), "--force", *TRAIN])
for device in (str(path), "pcm_joshi2020"):
    main(["eval", str(run), "--device", device, "--drift-times", "86400", "31536000"])

for result in sorted((run / "eval").glob("*.json")):
    data = json.loads(result.read_text())
    drifted = ", ".join(f"{v:.3f} at {t}" for t, v in data["drift"].items())
    print(f"{result.name}: as trained {data['as_trained']:.3f}; after programming and drift: {drifted}")
