"""08: your own devices: fit the PCM model to measurements and use the fitted device.

The three CSV files in ``examples/data/`` are sample measurements in the formats ``fit-device``
reads (simulated here from a known device, so the fit can be checked against it): one read per
device after programming, reads of other devices over a day, repeated reads of a third set. The
fit gives a device TOML (every parameter without data comes from ``--base``) and a report with
figures that compare the data with the fitted model.

    python examples/08_fit_device.py             # add --toy for a quick run (fewer bootstrap resamples)
"""

import sys
from pathlib import Path

from analog_snu.cli import main
from analog_snu.fitting import effective_parameters, fit_device
from analog_snu.pcm import PCMDevice, preset

TOY = "--toy" in sys.argv
DATA = Path(__file__).resolve().parent / "data"
OUT = Path("runs/examples/08")
OUT.mkdir(parents=True, exist_ok=True)
FILES = [str(DATA / f"pcm_{kind}.csv") for kind in ("programming", "drift", "read_noise")]
RESAMPLES = "8" if TOY else "200"

# The command line: measurements in, a device file and a report out.
device_file, report = OUT / "my_pcm.toml", OUT / "fit_report"
main(["fit-device", *FILES, "--out", str(device_file), "--report", str(report), "--bootstrap", RESAMPLES,
      "--name", "my_pcm", "--force"])
device = PCMDevice.from_file(device_file)  # the file works wherever --device FILE does
print(f"loaded {device.name}: drift t0 = {device.drift.t0:.3g} s, stuck at 0 µS = {device.stuck.fraction_at_zero:.3f}")

# The same from Python, and a check against the device the sample was simulated from
# (pcm_joshi2020 with drift x1.3, programming noise x1.2 and 2 % of the devices stuck at 0 µS).
fit = fit_device(FILES, base="pcm_joshi2020", bootstrap=int(RESAMPLES))
truth = effective_parameters(preset("pcm_joshi2020").updated(
    {"drift": {"scale": 1.3}, "programming": {"scale": 1.2}, "stuck": {"fraction_at_zero": 0.02}}))
print(f"{'parameter':26s} {'fitted':>10s} {'interval':>24s} {'true':>10s}")
for p in fit.parameters:
    name = p.name.split(".", 1)[1].split("[")[0]
    true = truth.coeffs[int(p.name[-2])] if "coeffs" in p.name else getattr(truth, name)
    span = f"[{p.low:.4g}, {p.high:.4g}]" if p.low is not None else "not identified alone"
    print(f"{p.name:26s} {p.value:10.4g} {span:>24s} {true:10.4g}")
print(f"report: {report / 'index.html'}")
