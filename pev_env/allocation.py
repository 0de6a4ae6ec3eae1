"""Exact, vectorised allocation of station power under a site network (`pev_env.network.Network`): the fill
primitives shared by the heuristics (`pev_mpc.policies`), the MPC's projections and the feasibility layer of the
learned agents (`pev_env.feasibility`).

Every routine rests on one closed form. For a constraint with current complex load z, limit L and a
direction g (a station's gain, or the sum of gains of stations growing together), the largest
r >= 0 with |z + g r| <= L is the larger root of

    |g|^2 r^2 + 2 Re(conj(z) g) r + |z|^2 - L^2 = 0

(`step_limit`; inf where g = 0, 0 where the constraint is already at or over its limit). The set of
feasible r is an interval containing 0 whenever |z| <= L (a disc cut by a line), so the largest
common r over all constraints is the minimum of the roots. Float rounding is guarded by computing
the roots against the limit shrunk by SHRINK (relative) and verifying the result against the true
limit (`_verified`).

On top of it: `sorted_fill` (acnportal's `SortedSchedulingAlgo` with continuous rates: EDF, LLF),
`round_robin` (acnportal's `RoundRobin`), `max_min_fill` (max-min fair progressive filling) and
`scale_into_network` (the largest common factor of the power above the floors, per step: the
projection used by the MPC's first move and the offline plan). Powers in kW, loads in the
constraints' units. `priority_fill` is the same sorted fill for the single area limit (a budget), vectorised.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pev_env.network import Network

SHRINK = 1e-12
"""Relative margin below each limit at which the closed forms aim (absorbs float rounding)."""
_VERIFY_ROUNDS = 60


def step_limit(z: np.ndarray, g: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Largest r >= 0 with |z + g r| <= limit (1 - SHRINK), elementwise (numpy broadcasting).

    z, g complex (constraint units, per kW for g), limit > 0. inf where g = 0 and |z| is within the
    limit; 0 where |z| already exceeds it. The root is taken in the cancellation-free form.
    """
    lim = np.asarray(limit, dtype=np.float64) * (1.0 - SHRINK)
    a = np.abs(g) ** 2
    b = np.real(np.conj(z) * g)  # half the linear coefficient
    c = (np.abs(z) - lim) * (np.abs(z) + lim)
    root = np.sqrt(np.maximum(b * b - a * c, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(b >= 0.0, -c / (b + root), (root - b) / a)
    r = np.where(a > 0.0, np.where(np.isnan(r), 0.0, r), np.inf)  # b = root = 0: at the limit
    return np.where(c > 0.0, 0.0, np.maximum(r, 0.0))


def _within(z: np.ndarray, limit: np.ndarray) -> np.ndarray:
    return np.abs(z) <= limit


def _verified(r: np.ndarray, ok: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """r (any shape) shrunk where `ok(r)` (same shape, bool) fails: by 2^k SHRINK (relative) for
    growing k, and to 0 if that does not help (a closed form that missed by rounding)."""
    r = np.array(r, dtype=np.float64)
    for k in range(_VERIFY_ROUNDS):
        bad = ~ok(r)
        if not bad.any():
            return r
        r[bad] *= 1.0 - min(SHRINK * 2.0 ** (k + 1), 1.0)
    r[~ok(r)] = 0.0
    return r


def largest_rate(network: Network, z: np.ndarray, i: int, cap: float) -> float:
    """Largest extra power r in [0, cap] kW that station i can add to loads z (J,) complex (= gain @ p)
    with every constraint still within its limit."""
    g = network.gain[:, i]
    loaded = g != 0
    r = min(float(cap), float(step_limit(z[loaded], g[loaded], network.limit[loaded]).min(initial=np.inf)))
    r = max(r, 0.0)
    lim = network.limit[loaded]
    return float(_verified(np.array(r), lambda x: _within(z[loaded] + g[loaded] * x, lim).all())[()])


def sorted_fill(network: Network, floor: np.ndarray, extra: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Extra powers (N,) kW above `floor`: stations in `order` (first = highest priority) each take the
    largest rate <= extra that keeps every constraint feasible given the rates already granted."""
    z = network.combine(floor)
    out = np.zeros_like(extra, dtype=np.float64)
    for i in order:
        if extra[i] > 0.0:
            out[i] = largest_rate(network, z, i, extra[i])
            z = z + network.gain[:, i] * out[i]
    return out


def round_robin(network: Network, floor: np.ndarray, extra: np.ndarray, order: np.ndarray,
                increment_kw: float) -> np.ndarray:
    """acnportal's `RoundRobin` with continuous rates: repeated passes over the queue `order`, each
    granting a station min(increment_kw, what it still needs, its largest feasible rate); a station
    granted less than the increment (its need met, or a constraint reached: the final pass to its
    largest feasible rate) leaves the queue. Returns extra powers (N,) kW above `floor`."""
    z = network.combine(floor)
    out = np.zeros_like(extra, dtype=np.float64)
    queue = [int(i) for i in order if extra[i] > 0.0]
    while queue:
        remaining = []
        for i in queue:
            want = min(increment_kw, extra[i] - out[i])
            r = largest_rate(network, z, i, want)
            out[i] += r
            z = z + network.gain[:, i] * r
            if r >= want and out[i] < extra[i]:
                remaining.append(i)
        queue = remaining
    return out


def max_min_fill(network: Network, floor: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """Max-min fair extra powers (N,) kW above `floor` (equal share as water-filling): raise a common
    level for every unfrozen station (capped at its extra) until a constraint binds, freeze the
    stations loading it, repeat. Exact: between the caps the loads move on a line, so each segment's
    reach is `step_limit` of the summed gains."""
    z = network.combine(floor)
    out = np.zeros_like(extra, dtype=np.float64)
    active = extra > 0.0
    level = 0.0
    while active.any():
        to_cap = float(extra[active].min()) - level
        direction = network.gain[:, active].sum(axis=1)
        rows = network.loaded[:, active].any(axis=1)  # the constraints the growing stations load
        reach = np.where(rows, step_limit(z, direction, network.limit), np.inf)
        r = float(_verified(np.array(min(float(reach.min()), to_cap)), lambda x: _within(
            network.combine(floor + np.where(active, np.minimum(extra, level + x), out)), network.limit).all())[()])
        level += r
        out = np.where(active, np.minimum(extra, level), out)
        z = network.combine(floor + out)
        active &= extra > level
        binding = reach <= r * (1.0 + 1e-9) + 1e-15
        if r < to_cap and binding.any():
            active &= ~network.loaded[binding].any(axis=0)
    return out


def scale_into_network(network: Network, floor: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """floor + t extra with the largest t in [0, 1] keeping every constraint within its limit, per
    column: floor, extra (N,) or (N, T) kW (t = 0 where the floors alone exceed a limit)."""
    base, move = network.combine(floor), network.combine(extra)
    limit = network.limit if base.ndim == 1 else network.limit[:, None]
    t = np.minimum(step_limit(base, move, limit).min(axis=0, initial=np.inf), 1.0)
    full = _within(base + move, limit).all(axis=0)
    t = np.where(full, 1.0, t)
    t = _verified(t, lambda x: _within(base + move * x, limit).all(axis=0) | (x == 0.0))
    return floor + extra * t


def priority_fill(cap: np.ndarray, budget: float, order: np.ndarray) -> np.ndarray:
    """Serve stations in `order` (indices, first = highest priority), each up to its cap `cap` (N,) kW, until the
    area `budget` kW is used: 0 <= a <= cap, sum(a) <= max(budget, 0) (up to float rounding)."""
    c = cap[order]
    before = np.cumsum(c) - c
    out = np.empty_like(cap, dtype=np.float64)
    out[order] = np.clip(budget - before, 0.0, c)
    return out
