r"""Standard normal draws inside compiled loops (numba): numpy's ziggurat on a counter-based 64-bit generator.

The simulated periphery needs one normal draw per output per conversion (about a million per
training step of the benchmark network). Drawn one at a time through numpy's ``Generator`` in a
numba loop they cost about 2.5 ns each, most of it the call through the bit generator's
function pointer; drawn by torch they need a separate pass over memory. Here a draw is:

- 64 random bits ``r = mix(key + n * gamma)``: draw ``n`` of the SplitMix64 sequence that
  starts at ``key`` (Steele, Lea & Flood 2014; it passes BigCrush), a pure function of the
  counter ``n``, so a loop over a vector's outputs has no serial dependency and compiles to
  vector instructions;
- the 256-layer ziggurat of Marsaglia & Tsang (2000) exactly as numpy's
  ``random_standard_normal`` uses it: the low 8 bits pick a layer, the next bit the sign, the
  next 52 bits a uniform; ``x = U x_i`` is accepted at once where it lies under the layer below
  (about 99 % of draws), else the wedge (or, in layer 0, the tail beyond :math:`r = 3.654`) test
  decides, with further uniforms from a second, sequential SplitMix64 stream.

:func:`fill_normals` makes the fast pass for a whole vector and then repairs the few rejected
entries, which keeps the common path branch-free. Every key comes from torch's generator
(:mod:`analog_snu.tiles.fused_periphery`), so ``torch.manual_seed`` fixes the draws.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["fill_normals", "new_streams", "ziggurat_tables"]

_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's increment (odd, 2^64 / golden ratio)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S8, _S9, _S11, _S27, _S30, _S31 = (np.uint64(s) for s in (8, 9, 11, 27, 30, 31))
_LOW8 = np.uint64(0xFF)
_ONE = np.uint64(1)
_MASK52 = np.uint64((1 << 52) - 1)
_R = 3.6541528853610088  # x of the base layer's right edge
_INV_R = 1.0 / _R
_AREA = 4.92867323399e-3  # area of each of the 256 layers (the base layer with the tail included)


def ziggurat_tables(layers: int = 256, r: float = _R, area: float = _AREA, bits: int = 52):
    """``(k, w, f)`` of the normal ziggurat as numpy builds them (Marsaglia & Tsang 2000, its ``ki/wi/fi_double``).

    Layer i > 0 spans ``[0, x_i]`` (x increasing with i, ``x_255 = r``), layer 0 is the base with
    the tail. ``w_i = x_i / 2^bits`` turns the uniform integer into x, ``k_i = (x_{i-1} / x_i) 2^bits``
    is the fast-accept threshold (0 for the top layer), ``f_i = exp(-x_i^2 / 2)``.
    Shape: (layers,) each; k uint64, w and f float64.
    """
    scale = float(2**bits)
    k = np.zeros(layers, dtype=np.uint64)
    w = np.zeros(layers)
    f = np.zeros(layers)
    x = r
    q = area / math.exp(-0.5 * x * x)
    k[0] = np.uint64(int(x / q * scale))
    w[0] = q / scale
    w[-1] = x / scale
    f[0] = 1.0
    f[-1] = math.exp(-0.5 * x * x)
    top = x
    for i in range(layers - 2, 0, -1):
        x = math.sqrt(-2.0 * math.log(area / x + math.exp(-0.5 * x * x)))
        k[i + 1] = np.uint64(int(x / top * scale))
        top = x
        f[i] = math.exp(-0.5 * x * x)
        w[i] = x / scale
    return k, w, f


_K, _W, _F = ziggurat_tables()


def _mix_int(z: int) -> int:
    """:func:`_mix` on a Python integer (modulo 2^64)."""
    mask = 2**64 - 1
    z &= mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def new_streams(seed: int) -> tuple[np.uint64, np.ndarray]:
    """``(key, stream)`` for :func:`fill_normals` from an integer seed: the counter stream's key and the
    sequential stream ``[key', 0]`` (uint64 (2,)) for rejected draws, keyed apart from the first."""
    key = seed % 2**64
    return np.uint64(key), np.array([_mix_int(key ^ 0xD1B54A32D192ED03), 0], dtype=np.uint64)


@njit(inline="always")
def _mix(z):  # pragma: no cover
    """SplitMix64's output function (a bijection of 64-bit words)."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(inline="always")
def _bits(key, n):  # pragma: no cover
    """Draw ``n`` (uint64) of the stream ``key``: 64 random bits."""
    return _mix(key + n * _GAMMA)


@njit(cache=True, nogil=True)
def _next_uniform(stream):  # pragma: no cover
    """A uniform in [0, 1) from the sequential stream ``stream = [key, counter]`` (uint64 (2,)), advancing it."""
    stream[1] += _ONE
    return np.float64(np.int64(_bits(stream[0], stream[1]) >> _S11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True)
def _rejected_draw(r, stream):  # pragma: no cover
    """The normal that numpy's ziggurat returns for 64 random bits ``r`` whose fast test failed,
    and for the bits after them (from ``stream``) when a layer's test rejects again."""
    while True:
        idx = np.intp(r & _LOW8)
        rabs = (r >> _S9) & _MASK52
        x = np.float64(np.int64(rabs)) * _W[idx]
        if (r >> _S8) & _ONE:
            x = -x
        if rabs < _K[idx]:
            return x
        if idx == 0:  # the tail beyond r (Marsaglia 1964), its sign from another bit of r
            while True:
                xx = -_INV_R * math.log1p(-_next_uniform(stream))
                yy = -math.log1p(-_next_uniform(stream))
                if yy + yy > xx * xx:
                    return -(_R + xx) if (rabs >> _S8) & _ONE else _R + xx
        if (_F[idx - 1] - _F[idx]) * _next_uniform(stream) + _F[idx] < math.exp(-0.5 * x * x):
            return x
        stream[1] += _ONE
        r = _bits(stream[0], stream[1])


@njit(cache=True, nogil=True)
def fill_normals(key, start, out, stream, rejected):  # pragma: no cover
    """Standard normals into ``out`` (1-D) from draws ``start, start + 1, ...`` of stream ``key``; returns the next start.

    ``stream`` ([key, counter], uint64 (2,)): the sequential stream for the rare draws the fast
    test rejects (about 1 %), advanced as used; ``rejected``: uint8 scratch, at least as long as ``out``.
    """
    key = np.uint64(key)  # (a Python int would come in as int64, and int64 with uint64 makes float64)
    start = np.uint64(start)
    n = out.shape[0]
    cast = out.dtype.type
    count = 0
    for i in range(n):  # the fast path, branch-free: the compiler vectorises it
        r = _bits(key, start + np.uint64(i))
        idx = np.intp(r & _LOW8)
        rabs = (r >> _S9) & _MASK52
        x = np.float64(np.int64(rabs)) * _W[idx]
        sign = (r >> _S8) & _ONE
        out[i] = cast(-x if sign else x)
        bad = rabs >= _K[idx]
        rejected[i] = bad
        count += bad
    if count:
        for i in range(n):
            if rejected[i]:
                out[i] = cast(_rejected_draw(_bits(key, start + np.uint64(i)), stream))
    return start + np.uint64(n)
