r"""A crossbar's simulated periphery as compiled CPU loops (numba): one pass per tile call, forward and backward.

aihwkit's torch tile simulates the output side of an analog matrix-vector product as a chain of
tensor operations over the whole (M, F_out) output block: a normal draw per output, a scaled
add, a divide, a round, a multiply, two comparisons, a clamp, then, if a vector saturated, the
same again on the vectors converted once more, and finally the digital scalings (mapping scale,
learned output scale). On a CPU each operation is a pass over memory and the draws come from a
separate kernel; :func:`spike_rounds` does the whole output stage of one vector in registers,
vector by vector, with the normal draws made in the loop (below), and decides bound management
per vector as it goes:

- round :math:`k` of vector :math:`m` converts :math:`q_k\,p_m` (:math:`p = W x` the crossbar
  product, :math:`q_k` the DAC's value of a 1 at input scale :math:`2^{-k}`), adds output noise
  :math:`\sigma_j \xi` (:math:`\xi \sim \mathcal N(0, 1)`), quantises to the ADC code
  :math:`c = \mathrm{rint}(v / \Delta)` and tests :math:`|c \Delta| \le b` for every output;
- a vector that fails is converted again at round :math:`k + 1` with fresh draws; the last
  allowed round is kept whatever it gives;
- the output is :math:`\mathrm{clip}(c \Delta, \pm b)\, s_m` times the column factors in order
  (:math:`s_m` the vector's final rescaling: noise-management scale times ``out_scale`` times
  :math:`2^k`).

For soft (non-spike) inputs the input stage is not a scalar: :func:`general_inputs` does aihwkit's
per-vector noise management and DAC, the caller one GEMM per round (on the vectors still
converting), and :func:`general_output_round` the same conversion per vector as
:func:`spike_rounds` (its pieces, :func:`_quantise` and :func:`_write_row`, are shared), listing the
vectors that must run again; :func:`general_input_gradients` is that input stage's gradient.

Every floating-point operation is the one aihwkit's tensors do, in the same type and order, so
with the noise off the codes and outputs are aihwkit's bit for bit; with noise on they have its
distribution (the draws differ). :func:`spike_rows_backward` and :func:`input_gradients` are the
straight-through gradients of the same stage (see :mod:`analog_snu.tiles.fused_periphery`).
Arrays are numpy views of CPU tensors; per-column vectors are (F_out,), per-row ones (M,).

**Normal draws.** The simulated periphery needs one normal draw per output per conversion (about
a million per training step of the benchmark network). Drawn one at a time through numpy's
``Generator`` in a numba loop they cost about 2.5 ns each, most of it the call through the bit
generator's function pointer; drawn by torch they need a separate pass over memory. Here a draw is:

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
(:mod:`analog_snu.tiles.fused_periphery`), so ``torch.manual_seed`` fixes the draws. (They live in
this file because numba's cache of a compiled function is not renewed when a function it calls
from another file changes.)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["add_normal", "binary_state", "fill_normals", "general_input_gradients", "general_inputs",
           "general_output_round", "input_gradients", "new_streams", "spike_rounds",
           "spike_rows_backward", "ziggurat_tables"]

# -- normal draws -----------------------------------------------------------------------------------

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


# -- the periphery ----------------------------------------------------------------------------------

NOT_BINARY, ALL_ZERO, BINARY = 0, 1, 2
"""What :func:`binary_state` finds: some entry is neither 0 nor 1; every entry is 0; 0/1 with some 1."""


@njit(cache=True, nogil=True, fastmath={"reassoc", "nsz"})
def _dot(a, b):  # pragma: no cover
    """``sum_i a_i b_i`` in float64, summed in any order (so the compiler vectorises it). Shape: (F,) each."""
    total = 0.0
    for i in range(a.shape[0]):
        total += np.float64(a[i]) * np.float64(b[i])
    return total


@njit(cache=True, nogil=True)
def binary_state(values, rows, width, row_stride, first_ones):  # pragma: no cover
    """:data:`NOT_BINARY`, :data:`ALL_ZERO` or :data:`BINARY` for the 2-D array whose row ``m`` is
    ``values[m * row_stride : m * row_stride + width]`` (stops after the first row with a non-0/1 entry).

    ``values`` is 1-D and contiguous, so a column slice of a wider array (a layer split over tiles)
    is read in place at full vector speed: given as a strided 2-D array, numba compiles its rows
    as arrays of unknown stride and does not vectorise (measured: (1280, 392) of 784, 315 -> 33 us).
    ``first_ones`` (M,) int64, unless empty, gets the column of each row's first 1 (-1: none),
    valid when the answer is not :data:`NOT_BINARY`.
    """
    zero = values.dtype.type(0.0)
    one = values.dtype.type(1.0)
    want_first = first_ones.shape[0] > 0
    any_one = False
    for m in range(rows):
        row = values[m * row_stride : m * row_stride + width]
        ones = False
        others = False
        for i in range(width):  # branch-free: the compiler vectorises this loop
            value = row[i]
            ones |= value == one
            others |= (value != one) & (value != zero)
        if others:
            return NOT_BINARY
        any_one |= ones
        if want_first:
            first = -1
            if ones:
                for i in range(width):
                    if row[i] == one:
                        first = i
                        break
            first_ones[m] = first
    return BINARY if any_one else ALL_ZERO


@njit(cache=True, nogil=True)
def add_normal(weight, sigma, key, stream, out):  # pragma: no cover
    """``out = weight + sigma * xi``, one standard normal ``xi`` per entry (``sigma`` in the array's type).

    ``key``, ``stream``: the draws (:func:`new_streams`). Shape: 2-D.
    """
    rows, width = weight.shape
    normals = np.empty(width, dtype=weight.dtype)
    rejected = np.empty(width, dtype=np.uint8)
    start = np.uint64(0)
    for m in range(rows):
        start = fill_normals(key, start, normals, stream, rejected)
        w_row = weight[m]
        o_row = out[m]
        for i in range(width):
            o_row[i] = w_row[i] + sigma * normals[i]


@njit(cache=True, nogil=True)
def spike_rounds(product, q_of_round, out_factor_of_round, sigma, noisy, step, bound, codes_limit, row_scale,
                 factors, key, stream, codes, rounds, scale, out):  # pragma: no cover
    """Output stage with per-vector bound management, then the digital scalings (module docstring).

    ``product`` (M, F_out): the crossbar product at input scale 1; ``q_of_round`` (K,): the
    input factor of each allowed round (one entry: no bound management); ``out_factor_of_round``
    (K,): ``out_scale * 2^k``; ``sigma`` (F_out,): output noise per column, used when ``noisy``;
    ``step``, ``bound``: the ADC step and the output bound; ``codes_limit``: codes are clamped to
    +-L for int16 storage (L * step > bound, so no output changes); ``row_scale`` (M,): the
    noise-management scale; ``factors`` (C, F_out): column factors applied in order.
    Fills ``codes`` (M, F_out) int16, ``rounds`` (M,) (each vector's last round), ``scale`` (M,)
    (its final rescaling) and ``out`` (M, F_out), which may be ``product`` itself (a row of the
    product is read before that row's output is written).
    """
    rows, width = product.shape
    last = q_of_round.shape[0] - 1
    limit = product.dtype.type(codes_limit)
    noise = np.zeros(width, dtype=product.dtype)  # one conversion's output noise
    values = np.empty(width, dtype=product.dtype)  # its ADC codes, as floats
    rejected = np.empty(width, dtype=np.uint8)
    start = np.uint64(0)
    for m in range(rows):
        p = product[m]
        k = 0
        while True:
            if noisy:  # (drawn here, not in a helper: measured 7-9 % slower through one)
                start = fill_normals(key, start, noise, stream, rejected)
                for j in range(width):
                    noise[j] = noise[j] * sigma[j]
            outside = _quantise(p, q_of_round[k], noise, step, bound, values)
            if outside == 0 or k == last:
                break
            k += 1
        rounds[m] = k
        s = row_scale[m] * out_factor_of_round[k]
        scale[m] = s
        _write_row(values, step, bound, limit, s, factors, codes[m], out[m])


@njit(cache=True, nogil=True)
def _quantise(p, q, noise, step, bound, values):  # pragma: no cover
    """One conversion's ADC codes (as floats) of ``p q + noise`` into ``values``; returns how many
    outputs lie past the bound. Shape: (F_out,) each."""
    outside = 0
    for j in range(p.shape[0]):  # branch-free: the compiler vectorises this loop
        c = np.rint((p[j] * q + noise[j]) / step)
        values[j] = c
        value = c * step
        outside += not (value <= bound and value >= -bound)
    return outside


@njit(cache=True, nogil=True)
def _write_row(values, step, bound, limit, s, factors, c_row, o_row):  # pragma: no cover
    """A vector's final conversion: its int16 codes (clamped at +-``limit``) and its output
    ``clip(c step, +-bound) s`` times the column factors (C, F_out) in order."""
    width = values.shape[0]
    for j in range(width):
        c = values[j]
        c_row[j] = np.int16(min(max(c, -limit), limit))
        o_row[j] = min(max(c * step, -bound), bound) * s
    for f in range(factors.shape[0]):
        factor = factors[f]
        for j in range(width):
            o_row[j] = o_row[j] * factor[j]


_BLOCK = 16
"""Rows of the gradient :func:`spike_rows_backward` forms before writing them as columns (transposed)."""


@njit(cache=True, nogil=True)
def spike_rows_backward(grad_out, codes, step, bound, strict, scale, factors, alpha_grad, rounds, out_factor_of_round,
                        q_of_round, with_q, grad, transposed, grad_alpha, grad_final):  # pragma: no cover
    """Gradient at the crossbar output of :func:`spike_rounds`, the learned output scale's and the final rescaling's.

    ``factors`` (C, F_out) as in the forward; with ``alpha_grad`` the last one is the learned
    output scale and its gradient, summed over the vectors, goes to ``grad_alpha`` (F_out,)
    float64. ``strict``: the clip passes no gradient at the bound itself (``torch.clamp``'s
    rule in this torch version), else it does. ``rounds`` (M,): each vector's last round k (from
    :func:`spike_rounds`), which picks from the per-round tables (K,) ``out_factor_of_round``
    (``out_scale * 2^k``, for ``grad_final`` (M,) = d loss / d (noise-management scale) through the
    final rescaling; empty: not wanted) and ``q_of_round``: with ``with_q`` the gradient is also
    multiplied by each vector's input factor (the weight gradient's operand, when no input
    gradient needs the plain one). Fills ``grad``: (M, F_out), or with ``transposed`` (F_out, M),
    the layout the weight gradient's product takes without a copy (rows are formed ``_BLOCK`` at a
    time and written as columns, a cache line per column).
    """
    rows, width = grad_out.shape
    cast = grad_out.dtype.type
    zero = cast(0.0)
    one = cast(1.0)
    n_factors = factors.shape[0]
    n_before = n_factors - 1 if alpha_grad else n_factors  # factors applied before the learned one
    want_final = grad_final.shape[0] > 0
    y = np.empty(width, dtype=grad_out.dtype)  # the clipped ADC outputs of a vector
    slope = np.empty(width, dtype=grad_out.dtype)  # the clip's derivative, 1 or 0
    before = np.empty(width, dtype=grad_out.dtype)  # the output before the learned scale
    block = np.empty((_BLOCK if transposed else 0, width), dtype=grad_out.dtype)
    for m in range(rows):
        s = scale[m]
        g_row = grad_out[m]
        c_row = codes[m]
        out_row = block[m % _BLOCK] if transposed else grad[m]
        for j in range(width):
            value = cast(c_row[j]) * step
            inside = (value < bound and value > -bound) if strict else (value <= bound and value >= -bound)
            slope[j] = one if inside else zero
            y[j] = min(max(value, -bound), bound)
            out_row[j] = g_row[j]
        if alpha_grad:
            for j in range(width):
                before[j] = y[j] * s
            for f in range(n_before):
                factor = factors[f]
                for j in range(width):
                    before[j] = before[j] * factor[j]
            for j in range(width):
                grad_alpha[j] += out_row[j] * before[j]
        for f in range(n_factors - 1, -1, -1):  # d/d(output before the factors): the factors in reverse order
            factor = factors[f]
            for j in range(width):
                out_row[j] = out_row[j] * factor[j]
        if want_final:
            grad_final[m] = cast(_dot(out_row, y)) * out_factor_of_round[rounds[m]]
        if with_q:
            q = q_of_round[rounds[m]]
            for j in range(width):
                out_row[j] = out_row[j] * s * slope[j] * q
        else:
            for j in range(width):
                out_row[j] = out_row[j] * s * slope[j]
        if transposed and (m % _BLOCK == _BLOCK - 1 or m == rows - 1):  # the block's rows as columns
            first = m - m % _BLOCK
            count = m - first + 1
            for j in range(width):
                column = grad[j]
                for r in range(count):
                    column[first + r] = block[r, j]


@njit(cache=True, nogil=True)
def input_gradients(grad_w_operand, grad_at_input, x, rounds, q_of_round, dq_of_round, reduction_of_round, row_scale,
                    grad_final, grad_scale, scale_to_input):  # pragma: no cover
    """The input's and the noise-management scale's gradients from ``grad_at_input`` = G W, in one pass.

    Each vector's ``q``, ``dq`` and ``f`` come from the per-round tables (K,) at its last round
    ``rounds`` (M,). ``grad_at_input`` (M, F_in) becomes the input gradient ``G W dq`` in place; ``grad_scale``
    (M,) gets ``-sum_i x_i (G W)_i / (row_scale^2 f) + grad_final`` (the scale enters the
    product as 1 / row_scale: ``sum_j G_j (W x)_j = sum_i x_i (G W)_i``) when it is not empty;
    ``grad_w_operand`` (M, F_out), the gradient G at the crossbar output, is multiplied by each
    vector's input factor ``q`` in place (the weight gradient is ``(q G)^T x``).
    ``scale_to_input`` (M,) int64, unless empty: the scale is the row's maximum (noise
    management), so its gradient also reaches the input at the column of the row's maximum
    (-1: none): added there, as autograd adds the maximum's gradient (a tensor of zeros holding
    it at that column) to the input gradient, including the ``+ 0`` that turns a -0 into +0.
    """
    rows, width = grad_at_input.shape
    want_scale = grad_scale.shape[0] > 0
    to_input = scale_to_input.shape[0] > 0
    zero = grad_at_input.dtype.type(0.0)
    for m in range(rows):
        gw = grad_at_input[m]
        k = rounds[m]
        dq = dq_of_round[k]
        if want_scale:
            xr = x[m]
            r = row_scale[m]
            grad_scale[m] = grad_final.dtype.type(_dot(xr, gw)) / (r * r * -reduction_of_round[k]) + grad_final[m]
        if to_input:
            column = scale_to_input[m]
            at_column = gw[column] * dq + grad_scale[m] if column >= 0 else zero
            for i in range(width):
                gw[i] = gw[i] * dq + zero
            if column >= 0:
                gw[column] = at_column
        else:
            for i in range(width):
                gw[i] = gw[i] * dq
        q = q_of_round[k]
        g = grad_w_operand[m]
        for j in range(g.shape[0]):
            g[j] = g[j] * q


# -- the general (soft-input) periphery --------------------------------------------------------------


@njit(cache=True, nogil=True)
def general_inputs(x, rows, reduction, res, bound, find_scale, nm, first_max, z):  # pragma: no cover
    """aihwkit's input stage for the vectors ``x[rows]`` at bound-management reduction ``f``: ``z = DAC(x s)``.

    ``s = (1 / nm) / f`` per vector (aihwkit's operations in the array's type), ``nm`` the vector's
    abs-max noise-management scale: with ``find_scale`` it is found here (0, a silent vector, is
    set to 1 as aihwkit does) and written to ``nm`` (M,), with the column of the row's first
    maximum of |x| in ``first_max`` (M,) (-1 for a silent vector), else read from ``nm``. The DAC:
    ``rint(v / res) res``, clipped at +-``bound``. Returns whether any vector is not silent.
    Shape: x (M, F_in), rows (R,) int64, z (R, F_in).
    """
    zero = x.dtype.type(0.0)
    one = x.dtype.type(1.0)
    width = x.shape[1]
    any_signal = False
    for r in range(rows.shape[0]):
        m = rows[r]
        xr = x[m]
        if find_scale:
            top = zero
            for i in range(width):  # branch-free: vectorised
                top = max(top, abs(xr[i]))
            first = -1
            if top > zero:
                any_signal = True
                for i in range(width):
                    if abs(xr[i]) == top:
                        first = i
                        break
            first_max[m] = first
            nm[m] = top if top > zero else one
        s = (one / nm[m]) / reduction
        zr = z[r]
        for i in range(width):
            v = np.rint((xr[i] * s) / res) * res
            zr[i] = min(max(v, -bound), bound)
    return any_signal


@njit(cache=True, nogil=True)
def general_output_round(product, rows, k, last, reduction, out_scale, nm, sigma, noisy, step, bound, codes_limit,
                         factors, key, start, stream, codes, rounds, scale, out, failed):  # pragma: no cover
    """Round ``k`` of the output stage for the vectors ``rows`` (R,) whose crossbar products are ``product`` (R, F_out).

    Each vector is converted as in :func:`spike_rounds` (output noise drawn from draw ``start`` of
    ``key``, ADC codes, bound test); one that fits, or any when ``last``, gets its int16 codes,
    ``rounds`` = k, its final rescaling ``scale`` = ``out_scale / ((1 / nm) / f)`` (aihwkit's
    ``out_scale / scale``) and its output (clipped ADC value times that, times the column
    ``factors`` (C, F_out) in order) at its row of the (M, ...) arrays; one that does not is listed
    in ``failed``. Returns (number failed, next draw).
    """
    width = product.shape[1]
    one = product.dtype.type(1.0)
    limit = product.dtype.type(codes_limit)
    noise = np.zeros(width, dtype=product.dtype)
    values = np.empty(width, dtype=product.dtype)
    rejected = np.empty(width, dtype=np.uint8)
    start = np.uint64(start)
    n_failed = 0
    for r in range(rows.shape[0]):
        if noisy:  # (as in spike_rounds)
            start = fill_normals(key, start, noise, stream, rejected)
            for j in range(width):
                noise[j] = noise[j] * sigma[j]
        outside = _quantise(product[r], one, noise, step, bound, values)
        m = rows[r]
        if outside and not last:
            failed[n_failed] = m
            n_failed += 1
            continue
        rounds[m] = k
        s = out_scale / ((one / nm[m]) / reduction)
        scale[m] = s
        _write_row(values, step, bound, limit, s, factors, codes[m], out[m])
    return n_failed, start


@njit(cache=True, nogil=True)
def general_input_gradients(grad_at_input, x, rounds, reduction_of_round, nm, first_max, res, bound,
                            grad_final):  # pragma: no cover
    """The input gradient of :func:`general_inputs` from ``grad_at_input`` = G W (M, F_in), in place.

    aihwkit's straight-through gradients: ``G W`` times ``s`` where the DAC did not clip (its
    ``where(|v| <= bound, v, clamp(v).detach())``), and the noise-management scale's:
    ``d/d nm = -(sum_i x_i (G W)_i [not clipped]) / f / nm^2 + grad_final`` (the second
    term through the final rescaling, (M,)), added at the row's first maximum of |x| times its sign
    (autograd's abs and max); a silent vector's scale, set to 1, passes none.
    """
    width = x.shape[1]
    zero = x.dtype.type(0.0)
    one = x.dtype.type(1.0)
    for m in range(x.shape[0]):
        gr = grad_at_input[m]
        xr = x[m]
        reduction = reduction_of_round[rounds[m]]
        r = nm[m]
        s = (one / r) / reduction
        total = 0.0
        for i in range(width):
            v = np.rint((xr[i] * s) / res) * res
            g = gr[i] if abs(v) <= bound else zero
            total += np.float64(g) * np.float64(xr[i])
            gr[i] = g * s
        column = first_max[m]
        if column >= 0:
            inv = one / r
            grad_nm = -(x.dtype.type(total) / reduction) * (inv * inv) + grad_final[m]
            gr[column] = gr[column] + (grad_nm if xr[column] > zero else -grad_nm)
