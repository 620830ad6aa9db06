"""How much of a requested weight change a mixed-precision PCM chip realises (benchmarks/RESULTS.md, HIL).

A 50x50 tile on pcm_joshi2020, programmed from uniform weights; every step requests +0.005 per
weight in a fixed direction, plus on every other step a random +-0.005 (Adam-like sign noise);
chi is transferred as SET pulses. Prints the requested and the realised mean change along the
fixed direction after 50, 200 and 600 steps, at weight ranges (headroom) 1.5 and 8.

    python benchmarks/mixed_precision_lag.py
"""
import torch

from analog_snu.pcm import preset
from analog_snu.pcm.chip import SimulatedChip

torch.manual_seed(0)
dev = preset("pcm_joshi2020")
for headroom in (1.5, 8.0):
    chip = SimulatedChip(dev, {"t": (50, 50)}, seed=0, headroom=headroom)
    w0 = (torch.rand(50, 50) * 2 - 1)
    chip.program("t", w0, force=True)
    req = w0.double().clone()
    chi = torch.zeros(50, 50, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    sign = torch.sign(torch.randn(50, 50, generator=g)).double()
    for step in range(600):
        chip.advance(1.0)
        dw = 0.005 * sign  # consistent direction per weight (Adam-like)
        if step % 2:
            dw = dw + 0.005 * torch.sign(torch.randn(50, 50, generator=g)).double()  # plus noise
        req += dw
        chi += dw
        _, chi = chip.apply_update("t", chi)
        if step in (50, 200, 599):
            nom = chip.nominal_weights("t").double()
            print(f"headroom {headroom} step {step}: requested-w0 mean {(req - w0).mul(sign).mean():.3f}, chip-w0 mean {(nom - w0).mul(sign).mean():.3f}")
