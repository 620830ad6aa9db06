"""Split names shared by every loader in :mod:`analog_snu.data`."""

__all__ = ["SPLITS"]

SPLITS = ("train", "valid", "test")
"""The three split names, in order; every loader returns a dict with exactly these keys."""
