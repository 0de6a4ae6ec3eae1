"""Per-step measurement of a site network (`pev_env.network.Network`) on the plant: constraint loads,
overloads and each station's headroom, with the structure prepared once so a step costs little.

The plant measures the constraints but never enforces them (as with P_ref). A row whose gain is 1 at
every station (the area limit, a tree's feeder) loads the area power itself: its load is the area
power the plant computes, so the area network judges exactly the numbers the area metrics judge.

Tolerances (`NetworkMeter.tolerance`, in the constraint's unit): a kW row is exceeded when its load is
more than tol_kw (the plant's TOL_KW) above its limit, as the area limit; a current row (A, a phasor
magnitude whose rounding grows with its size) when more than REL_TOL x limit + tol_kw above it.
"""
from __future__ import annotations

import numpy as np

from pev_env.network import Network

REL_TOL = 1e-9
"""Relative tolerance of a current (A) constraint (of its limit), on top of the absolute one."""


class NetworkMeter:
    """Loads, largest relative overload and headroom of `network` for the applied powers of a step."""

    def __init__(self, network: Network, p_max: np.ndarray, tol_kw: float) -> None:
        self.network = network
        self.limit = network.limit
        self.tolerance = np.where(np.array(network.units) == "kW", tol_kw, REL_TOL * network.limit + tol_kw)
        """(J,) how far above its limit a load may be before the constraint counts as exceeded."""
        self._ceiling = self.limit + self.tolerance  # exceeded: load > limit + tolerance, the area test's form
        self._ones_j, self._ones_n = np.ones(network.n_constraints), np.ones(network.n_stations)
        area_rows = (network.gain == 1).all(axis=1) & (network.n_stations > 0)  # they all load the area power
        self._area_limit = float(self.limit[area_rows].min(initial=np.inf))  # their least limit (kW)
        self._area_row = int(np.argmax(area_rows)) if area_rows.any() else None
        self._other = np.flatnonzero(~area_rows)
        self._gain_other = np.ascontiguousarray(network.gain[self._other])
        # headroom of the other rows: (station, row) pairs sorted by station, reduced per station
        station, row = np.nonzero(network.loaded[self._other].T)
        self._pair_row = self._other[row]
        self._pair_mag = np.abs(network.gain[self._pair_row, station])
        self._starts = np.flatnonzero(np.diff(station, prepend=-1))
        self._stations = station[self._starts]
        self._unloaded = np.flatnonzero(~network.loaded.any(axis=0))  # no area row then
        self._p_max = np.asarray(p_max, dtype=np.float64)[self._unloaded]

    @property
    def n_constraints(self) -> int:
        return self.network.n_constraints

    def loads(self, applied_kw: np.ndarray, area_power_kw: float) -> np.ndarray:
        """(J,) loads |gain @ applied| (A or kW); the area rows take `area_power_kw` (module doc)."""
        loads = self._ones_j * area_power_kw
        if self._other.size:
            loads[self._other] = np.abs(self._gain_other @ applied_kw)
        return loads

    def overload_pct(self, loads: np.ndarray) -> float:
        """The largest 100 (load - limit) / limit over the exceeded constraints (load > limit + tolerance);
        0 when none is."""
        exceeded = loads > self._ceiling
        if not np.count_nonzero(exceeded):
            return 0.0
        limit = self.limit[exceeded]
        return 100.0 * float(((loads[exceeded] - limit) / limit).max())

    def headroom_kw(self, loads: np.ndarray) -> np.ndarray:
        """(N,) kW, `Network.headroom_kw(loads, p_max)`: for each station the least (limit - load) / |gain| over
        the constraints it loads (negative when one is exceeded), p_max where it loads none."""
        head = self._ones_n * (np.inf if self._area_row is None else self._area_limit - loads[self._area_row])
        if self._stations.size:
            room = np.minimum.reduceat((self.limit - loads)[self._pair_row] / self._pair_mag, self._starts)
            head[self._stations] = np.minimum(head[self._stations], room)
        if self._unloaded.size:
            head[self._unloaded] = self._p_max
        return head
