"""Plug schedule: which PEV occupies which station at each step (independent of actions).

Rules, applied at the start of every step t:

1. A PEV whose departure step is t leaves its station (departure is exclusive).
2. Waiting PEVs (arrived, not departed, never plugged) are served in arrival order
   (ties: lower PEV index first):
   * PEVs with a preferred station (``scenario.station >= 0``) are served first: each free
     preferred station goes to the earliest waiting PEV that prefers it; a PEV whose
     station is busy keeps waiting for that station.
   * The remaining free stations go, lowest index first, to the waiting first-free PEVs
     (``station == -1``) in arrival order.
3. A plugged PEV stays until its departure; a PEV that is never served departs unplugged.

The schedule is computed once per scenario (a loop over steps, vector operations per
step); the plant's ``step`` only looks rows up.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pev_env.scenario import Scenario


@dataclass(frozen=True, eq=False)
class PlugSchedule:
    """Arrays over PEVs (length M) and the (n_steps, n_stations) occupancy matrix."""

    station: np.ndarray
    """int: station the PEV plugs into, -1 = never plugged."""
    plug_step: np.ndarray
    """int steps: step at which the PEV plugs in, -1 = never plugged."""
    unplug_step: np.ndarray
    """int steps, exclusive: = departure when plugged, -1 = never plugged."""
    waited_steps: np.ndarray
    """int steps: plug_step - arrival, or departure - arrival for a PEV never plugged."""
    station_pev: np.ndarray
    """int (n_steps, n_stations): PEV index plugged at each station during each step, -1 = free."""

    @property
    def plugged(self) -> np.ndarray:
        """bool per PEV: True when the PEV was plugged at some step."""
        return self.station >= 0


def plug_schedule(scenario: Scenario) -> PlugSchedule:
    """Compute the action-independent plug schedule of ``scenario`` (rules in the module doc)."""
    m, n, n_steps = scenario.n_pevs, scenario.n_stations, scenario.n_steps
    arrival, departure, preferred = scenario.arrival, scenario.departure, scenario.station
    order = np.lexsort((np.arange(m), arrival))  # arrival order, ties by index
    station = np.full(m, -1, dtype=np.int64)
    plug_step = np.full(m, -1, dtype=np.int64)
    occupant = np.full(n, -1, dtype=np.int64)
    station_pev = np.empty((n_steps, n), dtype=np.int64)
    is_waiting = np.zeros(m, dtype=bool)
    arrived_by = np.searchsorted(arrival[order], np.arange(n_steps), side="right")  # PEVs arrived at t

    for t in range(n_steps):
        busy = np.flatnonzero(occupant >= 0)
        occupant[busy[departure[occupant[busy]] <= t]] = -1
        is_waiting[order[arrived_by[t - 1] if t else 0:arrived_by[t]]] = True
        is_waiting[order[is_waiting[order] & (departure[order] <= t)]] = False
        waiting = order[is_waiting[order]]  # waiting PEVs in arrival order
        if waiting.size == 0:
            station_pev[t] = occupant
            continue
        _serve_preferred(waiting, preferred, occupant, station, plug_step, t)
        free = np.flatnonzero(occupant < 0)
        anywhere = waiting[(preferred[waiting] < 0) & (station[waiting] < 0)]
        k = min(free.size, anywhere.size)
        occupant[free[:k]] = anywhere[:k]
        station[anywhere[:k]] = free[:k]
        plug_step[anywhere[:k]] = t
        is_waiting[waiting[station[waiting] >= 0]] = False
        station_pev[t] = occupant

    plugged = station >= 0
    unplug_step = np.where(plugged, departure, -1)
    waited = np.where(plugged, plug_step, departure) - arrival
    return PlugSchedule(station, plug_step, unplug_step, waited, station_pev)


def _serve_preferred(
    waiting: np.ndarray, preferred: np.ndarray, occupant: np.ndarray, station: np.ndarray,
    plug_step: np.ndarray, t: int,
) -> None:
    """Give each free preferred station to its earliest waiting PEV (in place)."""
    wants = waiting[preferred[waiting] >= 0]
    if wants.size == 0:
        return
    target = preferred[wants]
    wants = wants[occupant[target] < 0]
    # first occurrence per station = earliest in arrival order (np.unique keeps first index)
    stations, first = np.unique(preferred[wants], return_index=True)
    chosen = wants[first]
    occupant[stations] = chosen
    station[chosen] = stations
    plug_step[chosen] = t
