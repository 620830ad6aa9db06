"""Seeds derived from a run's seed: one well-mixed stream per purpose (programming, drift, the chip)."""

from __future__ import annotations

import numpy as np

__all__ = ["derive_seed"]


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (numpy ``SeedSequence``: well mixed, platform independent)."""
    words = np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])
