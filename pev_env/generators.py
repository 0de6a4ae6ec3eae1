"""Scenario generators: the seed's proportional schedule and a synthetic one for scaling.

Both are vectorised over PEVs and reproducible: the same seed gives the same `Scenario`.
"""

from __future__ import annotations

import numpy as np

from pev_env.config import EnvConfig
from pev_env.limits import MAX_STATIONS, MAX_STEPS
from pev_env.scenario import Scenario


def seed_schedule(config: EnvConfig, seed: int | None, name: str = "seed") -> Scenario:
    """The seed's (PEVChargeBattery) proportional schedule with random start jitter.

    Every PEV wants `charge_time_desired` minutes. Nominal starts are spread proportionally
    over the episode and, when the last nominal session would end after it, scaled by
    total_time / (latest nominal end) as in the seed (sessions still running past the end
    are cut at the end); the start of PEV i
    is drawn uniformly between its nominal start and the next one's (the last PEV: between
    the previous one's and its own), scaled by `random_start_coeff`. The session lasts
    floor(ct / sampling_time * (1 - tol * (1 - U))) steps, i.e. between (1 - tol) * ct and
    ct minutes up to flooring, at least one step, clipped to the episode end. The seed's
    inclusive end step is used here as the exclusive departure step, so the duration in
    steps equals the drawn charging time. soc_init = round(soc_max * U * initial_charge_max, 2),
    target = soc_ref, capacity = soc_max, station = -1 (first free).
    """
    rng = np.random.default_rng(seed)
    m, n_steps = config.n_pevs, config.n_steps
    u_start, u_end, u_soc = rng.random((3, m))
    charge_time = np.full(m, config.charge_time_desired)  # minutes per PEV
    share = charge_time / charge_time.sum() if m else charge_time
    dist = np.cumsum(share) - (share[0] if m else 0.0)
    end_time = dist * config.total_time + charge_time
    if m and end_time.max() > config.total_time:
        dist = dist * (config.total_time / end_time.max())
    t_start = dist * n_steps
    gap = np.zeros(m)
    gap[:-1] = t_start[1:] - t_start[:-1]
    if m > 1:
        gap[-1] = t_start[-2] - t_start[-1]  # the last PEV jitters backwards
    start = np.floor(t_start + config.random_start_coeff * gap * u_start).astype(np.int64)
    start = np.clip(start, 0, n_steps - 1)
    steps = charge_time / config.sampling_time * (1.0 - config.charge_duration_tolerance * (1.0 - u_end))
    departure = np.clip(np.floor(start + steps).astype(np.int64), start + 1, n_steps)
    return Scenario(
        arrival=start,
        departure=departure,
        soc_init=np.round(config.soc_max * u_soc * config.initial_charge_max, 2),
        soc_target=np.full(m, config.soc_ref),
        capacity=np.full(m, config.soc_max),
        station=np.full(m, -1),
        n_stations=config.n_stations,
        n_steps=n_steps,
        name=name,
    )


def synthetic(
    n_stations: int,
    n_steps: int,
    seed: int | None,
    *,
    sessions_per_station: float = 2.0,
    p_max: float = 22.0,
    eta: float = 0.9,
    dt_h: float = 5.0 / 60.0,
    capacity: float = 60.0,
    name: str | None = None,
) -> Scenario:
    """Random sessions on `n_stations` stations, for scaling studies (vectorised; N up to 1e4+).

    Station i hosts k_i sessions, k_i = 1 + Poisson(sessions_per_station - 1) capped at
    n_steps // 2, so the mean is about `sessions_per_station` per episode. The episode is cut into
    k_i equal slots per station, one session per slot: arrival uniform in the first 40 % of the
    slot, stay between 30 % and 100 % of the rest (>= 1 step), so sessions at a station never
    overlap and every PEV plugs in on arrival at its own station. soc_init is uniform in
    [0, 0.5] * capacity; the requested energy is uniform in [0.5, 1.0] of what the station
    could deliver at `p_max` over the stay (kWh, capped by the free battery room), so every
    session is feasible alone and only the area limit makes part of the need infeasible.
    """
    if not 1 <= n_stations <= MAX_STATIONS:
        raise ValueError(f"synthetic: n_stations = {n_stations}: must be in [1, {MAX_STATIONS}]")
    if not 2 <= n_steps <= MAX_STEPS:
        raise ValueError(f"synthetic: n_steps = {n_steps}: must be in [2, {MAX_STEPS}]")
    if sessions_per_station < 1:
        raise ValueError(f"synthetic: sessions_per_station = {sessions_per_station}: must be >= 1")
    rng = np.random.default_rng(seed)
    per_station = np.minimum(1 + rng.poisson(sessions_per_station - 1.0, n_stations), n_steps // 2)
    station = np.repeat(np.arange(n_stations), per_station)
    m = station.size
    first = np.cumsum(per_station) - per_station  # index of each station's first session
    slot = np.arange(m) - np.repeat(first, per_station)  # slot index within the station
    slot_len = n_steps / per_station[station]
    slot_start = np.floor(slot * slot_len).astype(np.int64)
    slot_end = np.floor((slot + 1) * slot_len).astype(np.int64)
    u_arr, u_stay, u_soc, u_energy = rng.random((4, m))
    arrival = slot_start + np.floor(0.4 * u_arr * (slot_end - slot_start - 1)).astype(np.int64)
    room = slot_end - arrival
    departure = arrival + np.maximum(1, np.floor((0.3 + 0.7 * u_stay) * room).astype(np.int64))
    soc_init = np.round(0.5 * capacity * u_soc, 2)
    deliverable = np.minimum(eta * p_max * dt_h * (departure - arrival), capacity - soc_init)
    soc_target = soc_init + (0.5 + 0.5 * u_energy) * deliverable
    return Scenario(
        arrival=arrival,
        departure=departure,
        soc_init=soc_init,
        soc_target=np.minimum(soc_target, capacity),
        capacity=np.full(m, capacity),
        station=station,
        n_stations=n_stations,
        n_steps=n_steps,
        name=name or f"synthetic-{n_stations}",
    )


def min_feasible_area_power(scenario: Scenario, p_max: float | np.ndarray, eta: float, dt_h: float) -> float:
    """kW: the least constant area limit under which every session's deliverable energy fits.

    Deliverable energy e_i = min(energy_requested_i, eta * p_max * dt_h * stay_i) (kWh), with p_max a
    scalar or per station (a session without a preferred station counts the largest). Ignoring
    the per-station cap when sharing, the least feasible constant limit is the largest density
    over windows [a, b) of the energy of sessions lying inside it: max sum e_i / (eta * (b - a) * dt_h)
    (earliest-deadline-first is optimal for one shared resource). Only windows from an arrival to a
    departure can be densest, so the windows are swept by start (latest first) over the distinct departures:
    memory O(sessions), time O(distinct arrivals x distinct departures). The sums are accumulated in the
    order of the (T+1) x (T+1) grid this replaces (energy per (arrival, departure) cell, then over later
    arrivals, then over earlier departures), so the result is the same to the last bit.
    """
    if scenario.n_pevs == 0:
        return 0.0
    rating = np.broadcast_to(np.asarray(p_max, dtype=np.float64), (scenario.n_stations,))
    session_p_max = np.where(scenario.station >= 0, rating[scenario.station], rating.max())
    energy = np.minimum(scenario.energy_requested, eta * session_p_max * dt_h * scenario.duration)
    ends, column = np.unique(scenario.departure, return_inverse=True)
    starts, row = np.unique(scenario.arrival, return_inverse=True)
    order = np.argsort(row, kind="stable")  # sessions by arrival, in scenario order within one arrival
    bounds = np.searchsorted(row[order], np.arange(starts.size + 1))
    later = np.zeros(ends.size)  # energy of the sessions arriving at or after the current start, per departure
    best = 0.0
    for k in range(starts.size - 1, -1, -1):
        cell = np.zeros(ends.size)
        sessions = order[bounds[k]:bounds[k + 1]]
        np.add.at(cell, column[sessions], energy[sessions])
        later = later + cell
        span = ends - starts[k]
        density = np.divide(np.cumsum(later), eta * dt_h * span, out=np.zeros(ends.size), where=span > 0)
        best = max(best, float(density.max()))
    return best
