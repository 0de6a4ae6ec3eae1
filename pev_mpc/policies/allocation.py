"""Vectorised ways of sharing an area power budget among stations (kW).

All functions take per-station caps ``cap >= 0`` (N,) kW and a budget kW and return an
allocation ``0 <= a <= cap`` with ``a.sum() <= max(budget, 0)`` (up to float rounding).
"""
from __future__ import annotations

import numpy as np

from pev_env.allocation import priority_fill

__all__ = ["priority_fill", "scale_to_budget", "water_fill"]


def water_fill(cap: np.ndarray, budget: float) -> np.ndarray:
    """Equal share of the budget, capped per station; what a capped station leaves is redistributed."""
    n = cap.size
    if budget <= 0.0 or n == 0:
        return np.zeros_like(cap, dtype=np.float64)
    cs = np.sort(cap)
    before = np.cumsum(cs) - cs
    reach = before + cs * (n - np.arange(n))  # total allocated if the level equals cs[k]
    k = int(np.searchsorted(reach, budget, side="left"))
    if k == n:  # every cap fits in the budget
        return cap.astype(np.float64, copy=True)
    level = (budget - before[k]) / (n - k)
    return np.minimum(cap, level)


def scale_to_budget(extra: np.ndarray, budget: float) -> np.ndarray:
    """Scale `extra` down proportionally when its sum exceeds the budget (a safety projection)."""
    total = float(extra.sum())
    budget = max(budget, 0.0)
    if total <= budget:
        return extra
    return extra * (budget / total)
