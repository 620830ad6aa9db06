"""Dataset loaders and spike encodings (offline, no downloads)."""

from analog_snu.data.digits import DigitsSplit, load_digits
from analog_snu.data.encoding import rate_encode

__all__ = ["DigitsSplit", "load_digits", "rate_encode"]
