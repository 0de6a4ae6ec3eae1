"""Roots of sums of clipped linear functions: the piecewise-linear equations of the station replies."""

from __future__ import annotations

import numpy as np


def clipped_sum_root(a: np.ndarray, two_eps: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                     budget: np.ndarray) -> np.ndarray:
    """(n,) mu >= 0 with sum_k clip(-(a + mu) / two_eps, lo, hi) = budget per row (arrays (n, m); two_eps > 0
    broadcasts), for rows whose sum at mu = 0 exceeds the budget (sum lo <= budget). Exact: the sum falls
    piecewise linearly in mu, with slope changes at mu = -a - two_eps hi (a term leaves hi) and
    -a - two_eps lo (it reaches lo); one sort of the 2 m breakpoints per row."""
    n, m = a.shape
    points = np.concatenate([-a - two_eps * hi, -a - two_eps * lo], axis=1)
    inverse = np.broadcast_to(1.0 / two_eps, a.shape)
    slope_change = np.concatenate([-inverse, inverse], axis=1)
    # any order of tied breakpoints gives the same sums; flat indices spare take_along_axis's index arrays
    order = np.argsort(points, axis=1) + 2 * m * np.arange(n)[:, None]
    v = points.ravel()[order]
    slope = np.cumsum(slope_change.ravel()[order], axis=1)  # on (v[j], v[j+1])
    total = np.empty_like(v)  # the sum at each breakpoint
    total[:, 0] = hi.sum(axis=1)
    total[:, 1:] = total[:, :1] + np.cumsum(slope[:, :-1] * np.diff(v, axis=1), axis=1)
    below = total <= budget[:, None]
    j = np.where(below.any(axis=1), np.argmax(below, axis=1), v.shape[1] - 1)  # first breakpoint at or below
    rows = np.arange(n)
    prev = np.maximum(j - 1, 0)
    drop = -slope[rows, prev]
    step = np.divide(total[rows, prev] - budget, drop, out=np.zeros(n), where=drop > 0)
    return np.maximum(np.where(j > 0, v[rows, prev] + step, v[rows, j]), 0.0)
