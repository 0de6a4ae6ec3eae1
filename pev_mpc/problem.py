"""One control step's charging problem (docs/FORMULATION.md, "The problem").

Horizon convention: p[i, k] for k = 0..H-1 is the power of station i during step k,
x[i, k+1] = x[i, k] + eta * dt_h * p[i, k], and p[i, k] = 0 for k >= d[i] (d = 0: no PEV).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from pev_env.arrays import real_array
from pev_env.network import Network

class InfeasibleProblemError(ValueError):
    """The constraints of a ChargingProblem admit no plan; the message names the reason."""


def _vector(name: str, value: object, n: int) -> np.ndarray:
    arr = real_array(f"ChargingProblem.{name}", value)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"ChargingProblem.{name} has shape {arr.shape}: must be a scalar or have length {n}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"ChargingProblem.{name} = {arr}: must be finite (no NaN/inf)")
    return arr


def _arrival(value: object, d: np.ndarray) -> np.ndarray:
    """Validated steps to arrival: integers in [0, d) where d > 0, 0 where d = 0."""
    if value is None:
        return np.zeros_like(d)
    arr = _vector("arrival", value, d.shape[0])
    ok = (arr == np.round(arr)) & np.where(d > 0, (arr >= 0) & (arr < d), arr == 0)
    if not np.all(ok):
        raise ValueError(f"ChargingProblem.arrival = {arr[~ok]}: must be integers in [0, d) where d = {d[~ok]} "
                         "> 0 and 0 where d = 0")
    return arr.astype(np.int64)


def _departure(value: object, d: np.ndarray, H: int) -> np.ndarray:
    """Validated steps to departure: equal to d below the horizon, >= H where d = H."""
    if value is None:
        return d.copy()
    dep = _vector("departure", value, d.shape[0])
    ok = (dep == np.round(dep)) & np.where(d < H, dep == d, dep >= H)
    if not np.all(ok):
        raise ValueError(f"ChargingProblem.departure = {dep[~ok]}: must be integers equal to d = {d[~ok]} "
                         f"where d < horizon={H} and >= horizon where d = horizon")
    return dep.astype(np.int64)


@dataclass(frozen=True, eq=False)
class ChargingProblem:
    """Data of one MPC step for N stations; arrays are normalised to float vectors on construction."""

    x0: np.ndarray
    """Current SOC per station (kWh), length N (any value where d = 0)."""
    r: np.ndarray
    """Target SOC per station (kWh), length N."""
    s: np.ndarray
    """Battery cap per station (kWh), length N; x0 <= s."""
    d: np.ndarray
    """Steps the PEV stays within the horizon (int, 0..H; 0 = no PEV), length N."""
    p_min: np.ndarray | float
    """Minimum station power while plugged (kW), scalar or length N."""
    p_max: np.ndarray | float
    """Maximum station power while plugged (kW), scalar or length N; >= p_min."""
    eta: float
    """Charging efficiency (1 - xi), in (0, 1]."""
    dt_h: float
    """Sampling time (h)."""
    P_ref: np.ndarray | float
    """Area limit per horizon step (kW), scalar or length >= H (the first H values are used)."""
    horizon: int
    """Horizon H (steps)."""
    departure: np.ndarray | None = None
    """Steps until each PEV departs (int, length N), uncapped by the horizon: = d where d < H, >= H
    where d = H; None means d (every departure within the horizon). The deadline objective ranks
    PEVs by the laxity it implies."""
    network: Network | None = None
    """The shared limits when they are more than the area limit (pev_env.network.Network over these N
    stations, the same limits at every horizon step): then every row |gain_j . p[:, k]| <= limit_j is a
    coupling constraint and P_ref is none (a network that needs the area limit has it as a row). None:
    the area limit sum_i p[i, k] <= P_ref[k] alone."""
    arrival: np.ndarray | None = None
    """Steps until each PEV plugs in (int, length N; p[i, k] = 0 for k < arrival_i): 0 for the PEVs plugged
    now, > 0 for a PEV still to come (`pev_mpc.foresight`); None: every PEV is plugged now.
    Only the separable (deadline) station QPs and the centralised MPC plan PEVs that are still to come."""

    def __post_init__(self) -> None:
        if isinstance(self.horizon, (bool, np.bool_)) or not isinstance(self.horizon, (int, np.integer)):
            raise TypeError(f"ChargingProblem.horizon = {self.horizon!r}: must be an int >= 1, not "
                            f"{type(self.horizon).__name__}")
        if self.horizon < 1:
            raise ValueError(f"ChargingProblem.horizon = {self.horizon!r}: must be an int >= 1")
        H = int(self.horizon)
        x0 = real_array("ChargingProblem.x0", self.x0)
        if x0.ndim != 1:
            raise ValueError(f"ChargingProblem.x0 has shape {x0.shape}: must be a vector of length N")
        n = x0.shape[0]
        fields = {name: _vector(name, getattr(self, name), n) for name in ("x0", "r", "s", "d", "p_min", "p_max")}
        d = fields["d"]
        if np.any(d < 0) or np.any(d > H) or np.any(d != np.round(d)):
            raise ValueError(f"ChargingProblem.d = {d}: must be integers in [0, horizon={H}]")
        fields["d"] = d.astype(np.int64)
        fields["departure"] = _departure(self.departure, fields["d"], H)
        fields["arrival"] = _arrival(self.arrival, fields["d"])
        for name in ("eta", "dt_h"):
            v = float(real_array(f"ChargingProblem.{name}", getattr(self, name)).reshape(-1)[0]) \
                if np.size(getattr(self, name)) == 1 else float("nan")
            if not (np.isfinite(v) and v > 0.0 and (name != "eta" or v <= 1.0)):
                allowed = "in (0, 1]" if name == "eta" else "> 0"
                raise ValueError(f"ChargingProblem.{name} = {v!r}: must be {allowed}")
            fields[name] = v
        bad = fields["p_max"] < fields["p_min"]
        if np.any(bad):
            raise ValueError(f"ChargingProblem.p_max = {fields['p_max'][bad]}: must be >= p_min {fields['p_min'][bad]}")
        plugged = d > 0
        over = plugged & (fields["x0"] > fields["s"])
        if np.any(over):
            raise ValueError(f"ChargingProblem.x0 = {fields['x0'][over]}: must be <= s = {fields['s'][over]} "
                             f"(stations {np.flatnonzero(over)})")
        P_ref = real_array("ChargingProblem.P_ref", self.P_ref)
        if P_ref.ndim == 0:
            P_ref = np.full(H, float(P_ref))
        if P_ref.ndim != 1 or P_ref.shape[0] < H:
            raise ValueError(f"ChargingProblem.P_ref has shape {P_ref.shape}: must be a scalar or have length >= horizon={H}")
        P_ref = P_ref[:H].copy()
        if not np.all(np.isfinite(P_ref)):
            raise ValueError(f"ChargingProblem.P_ref = {P_ref}: must be finite (no NaN/inf)")
        fields["P_ref"] = P_ref
        fields["horizon"] = H
        if self.network is not None and (not isinstance(self.network, Network) or self.network.n_stations != n):
            raise ValueError(f"ChargingProblem.network: must be a pev_env.network.Network over the {n} stations "
                             f"or None, got {self.network!r}")
        for name, value in fields.items():
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
            object.__setattr__(self, name, value)

    # ---- derived quantities -------------------------------------------------------------
    @property
    def n_stations(self) -> int:
        return int(self.x0.shape[0])

    @property
    def c(self) -> float:
        """kWh stored per kW applied over one step (eta * dt_h)."""
        return self.eta * self.dt_h

    @cached_property
    def mask(self) -> np.ndarray:
        """(N, H) bool, True where p[i, k] is a decision variable (arrival_i <= k < d_i); read-only."""
        k = np.arange(self.horizon)[None, :]
        mask = (k < self.d[:, None]) & (k >= self.arrival[:, None])
        mask.setflags(write=False)
        return mask

    def subset(self, idx: np.ndarray, P_ref: np.ndarray | None = None) -> "ChargingProblem":
        """The stations idx as a problem of their own (area limit P_ref, default unchanged)."""
        network = None if self.network is None else self.network.columns(idx)
        return ChargingProblem(x0=self.x0[idx], r=self.r[idx], s=self.s[idx], d=self.d[idx], p_min=self.p_min[idx],
                               p_max=self.p_max[idx], eta=self.eta, dt_h=self.dt_h,
                               P_ref=self.P_ref if P_ref is None else P_ref, horizon=self.horizon,
                               departure=self.departure[idx], network=network, arrival=self.arrival[idx])

    def lower_plan(self) -> np.ndarray:
        """(N, H) the station-wise minimum plan (p_min while plugged, else 0), kW."""
        return np.where(self.mask, self.p_min[:, None], 0.0)

    def upper_plan(self) -> np.ndarray:
        """(N, H) the station-wise maximum plan (p_max while plugged, else 0), kW."""
        return np.where(self.mask, self.p_max[:, None], 0.0)

    def check_feasible(self) -> None:
        """Raise InfeasibleProblemError naming the reason if no plan satisfies all constraints.

        Exact: the minimum plan is station-feasible iff any plan is, and it has the least area power.
        """
        mask, c = self.mask, self.c
        forced = mask * self.p_min[:, None]
        x_forced = self.x0[:, None] + c * np.cumsum(forced, axis=1)
        over = np.any(mask & (x_forced > self.s[:, None] + 1e-9), axis=1)
        if np.any(over):
            i = np.flatnonzero(over)
            raise InfeasibleProblemError(
                f"stations {i.tolist()}: p_min = {self.p_min[i].tolist()} kW forced over {self.d[i].tolist()} steps "
                f"exceeds the battery cap s = {self.s[i].tolist()} kWh from x0 = {self.x0[i].tolist()} kWh")
        if self.network is not None:
            over = self.network.overload(forced) > 1e-9 * self.network.limit[:, None]
            if np.any(over):
                j, k = (int(v[0]) for v in np.nonzero(over))
                raise InfeasibleProblemError(f"step {k}: the forced p_min powers exceed network constraint "
                                             f"{self.network.names[j]!r} (limit {self.network.limit[j]} "
                                             f"{self.network.units[j]})")
            return
        area = forced.sum(axis=0)
        short = area > self.P_ref + 1e-9
        if np.any(short):
            k = np.flatnonzero(short)
            raise InfeasibleProblemError(
                f"steps {k.tolist()}: area limit P_ref = {self.P_ref[k].tolist()} kW is below the forced "
                f"sum of p_min = {area[k].tolist()} kW" + (" (P_ref < 0)" if np.any(self.P_ref[k] < 0) else ""))

    def violation(self, p: np.ndarray) -> dict[str, float]:
        """Largest violation of each constraint family by plans p (N, H): kW or kWh, 0 when satisfied."""
        mask = self.mask
        x = self.x0[:, None] + self.c * np.cumsum(p, axis=1)
        return {
            "box_kw": float(max(np.max(np.where(mask, self.p_min[:, None] - p, 0.0), initial=0.0),
                                np.max(np.where(mask, p - self.p_max[:, None], 0.0), initial=0.0))),
            "outside_kw": float(np.max(np.abs(np.where(mask, 0.0, p)), initial=0.0)),
            "cap_kwh": float(np.max(np.where(mask, x - self.s[:, None], 0.0), initial=0.0)),
            "area_kw": float(np.max(p.sum(axis=0) - self.P_ref, initial=0.0)) if self.network is None else 0.0,
            "network_rel": 0.0 if self.network is None else
            float(np.max(self.network.overload(p) / self.network.limit[:, None], initial=0.0)),
        }
