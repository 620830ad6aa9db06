r"""Which fitted parameters the data fix: the curvature of the log-likelihood at its maximum.

The observed information :math:`H` (the Hessian of the negative log-likelihood, by central
differences) gives the asymptotic covariance :math:`H^{-1}`. Two parameters whose correlation
there is beyond :data:`TRADE_OFF_CORRELATION` in size trade off: the data fix a combination of
them (e.g. the drift's ``t0`` against the nu offset when every read lies in a narrow time window)
and any interval of one alone is not meaningful, however narrow a bootstrap makes it look. A
direction of (numerically) zero curvature means a parameter the data do not inform at all.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["numeric_hessian", "trade_offs", "TRADE_OFF_CORRELATION"]

#: |correlation| of two estimates above which they are reported as trading off
TRADE_OFF_CORRELATION = 0.999


def numeric_hessian(function: Callable[[np.ndarray], float], x: np.ndarray, relative: float = 1e-3) -> np.ndarray:
    """Central-difference Hessian of ``function`` at ``x`` (steps ``relative`` x max(|x|, 1e-2))."""
    x = np.asarray(x, dtype=float)
    steps = relative * np.maximum(np.abs(x), 1e-2)
    n = x.size
    hessian = np.zeros((n, n))
    center = function(x)
    for i in range(n):
        ei = np.zeros(n)
        ei[i] = steps[i]
        hessian[i, i] = (function(x + ei) - 2 * center + function(x - ei)) / steps[i] ** 2
        for j in range(i + 1, n):
            ej = np.zeros(n)
            ej[j] = steps[j]
            value = (function(x + ei + ej) - function(x + ei - ej) - function(x - ei + ej)
                     + function(x - ei - ej)) / (4 * steps[i] * steps[j])
            hessian[i, j] = hessian[j, i] = value
    return hessian


def trade_offs(hessian: np.ndarray, names: list[str],
               threshold: float = TRADE_OFF_CORRELATION) -> list[tuple[str, tuple[str, ...], float]]:
    r"""Parameters the data do not fix alone: ``(name, partners, multiple correlation)`` each.

    A parameter is predicted from the others with multiple correlation
    :math:`R_i = \sqrt{1 - 1/(R^{-1})_{ii}}`, :math:`R` the information matrix scaled to a unit
    diagonal; beyond ``threshold`` it trades off against its ``partners`` (the parameters loading
    on the same near-null directions of :math:`R`). A flat or non-positive curvature gives
    ``R = 1`` (not identified at all; ``partners`` may then be empty)."""
    hessian = np.asarray(hessian, dtype=float)
    if not np.isfinite(hessian).all():
        return [(name, (), 1.0) for name in names]
    diagonal = np.diag(hessian)
    scale = np.sqrt(np.where(diagonal > 0, diagonal, np.nan))
    found: list[tuple[str, tuple[str, ...], float]] = []
    good = np.isfinite(scale) & (scale > 1e-12 * np.nanmax(np.append(scale, 1e-300)))
    found += [(names[i], (), 1.0) for i in np.flatnonzero(~good)]
    keep = np.flatnonzero(good)
    if keep.size < 2:
        return found
    information = hessian[np.ix_(keep, keep)] / np.outer(scale[keep], scale[keep])
    eigenvalues, vectors = np.linalg.eigh((information + information.T) / 2)
    floor = 1e-12 * eigenvalues.max()
    null = eigenvalues <= floor  # flat or negative curvature: no maximum in these directions
    inverse_diag = (vectors[:, ~null] ** 2 / eigenvalues[~null]).sum(1)
    inverse_diag[(np.abs(vectors[:, null]) > 0.1).any(1)] = np.inf
    correlation = np.sqrt(np.clip(1 - 1 / np.maximum(inverse_diag, 1.0), 0.0, 1.0))
    weak = eigenvalues < (1 - threshold**2) * 2  # directions whose variance inflation is beyond the threshold's
    for a in np.flatnonzero(correlation > threshold):
        partners = {keep[b] for k in np.flatnonzero(weak) if abs(vectors[a, k]) > 0.2
                    for b in np.flatnonzero(np.abs(vectors[:, k]) > 0.2) if b != a}
        found.append((names[keep[a]], tuple(names[b] for b in sorted(partners)), float(correlation[a])))
    return found
