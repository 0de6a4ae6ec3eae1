"""PEVs still to come in an MPC problem: what a forecast (or foreknowledge) of arrivals adds to a step.

A coming PEV is planned like a plugged one, from its arrival on (`ChargingProblem.arrival`): it loads the
network rows of its station, so the MPC keeps room for it where it will need it. Its plan is never applied:
the policy applies the first move of the plugged PEVs only (a coming PEV's first move is 0 by construction).

`coming_pevs` reads them from the episode's own scenario (perfect foreknowledge of the next `window` steps,
the `mpc-foresight` policy: not causal, a bound for what an arrival forecast can be worth, like the offline
optimum for the whole controller), at the station and step at which the plant plugs each one in
(`pev_env.schedule.plug_schedule`: a PEV without a preferred station takes the first free one, a PEV whose
station is busy waits). `with_coming` puts any such list into a step's problem, so a forecast of
one's own plugs in the same way.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pev_env.scenario import Scenario
from pev_env.schedule import PlugSchedule, plug_schedule
from pev_mpc.problem import ChargingProblem


class ComingPEVs(NamedTuple):
    """PEVs that will plug in after the current step, in steps from now (all arrays (M,))."""

    station: np.ndarray
    """int: the station each one plugs into."""
    arrival: np.ndarray
    """int >= 1: steps until it plugs in."""
    departure: np.ndarray
    """int > arrival: steps until it leaves."""
    energy_kwh: np.ndarray
    """kWh it asks for (target less initial charge)."""


def coming_pevs(scenario: Scenario, step: int, window: int, busy_until: np.ndarray,
                schedule: PlugSchedule | None = None) -> ComingPEVs:
    """The scenario's PEVs that plug in in steps step + 1 .. step + window, at the stations the plant gives
    them (`schedule`: the scenario's `plug_schedule`, computed when None) and free by then (busy_until (N,): the
    step at which each station's current PEV leaves, `step` when free)."""
    schedule = plug_schedule(scenario) if schedule is None else schedule
    plug, station = schedule.plug_step, schedule.station
    pick = np.flatnonzero((station >= 0) & (plug > step) & (plug <= step + window))
    pick = pick[plug[pick] >= busy_until[station[pick]]]
    return ComingPEVs(station[pick].astype(np.int64), (plug[pick] - step).astype(np.int64),
                      (np.asarray(scenario.departure)[pick] - step).astype(np.int64), scenario.energy_requested[pick])


def with_coming(problem: ChargingProblem, coming: ComingPEVs) -> ChargingProblem:
    """`problem` with the coming PEVs as extra columns after its N stations, each with its station's p_max
    and network gains from its arrival to its departure or the horizon, and no floor (p_min 0: the plant's
    floor applies once it is plugged, and the step stays feasible). PEVs that arrive at or after the horizon
    are left out. The plugged stations' columns come first and unchanged: p[:N] is their plan."""
    H = problem.horizon
    keep = coming.arrival < H
    station, arrival = coming.station[keep], coming.arrival[keep]
    departure, energy = coming.departure[keep], coming.energy_kwh[keep]
    if station.size == 0:
        return problem
    d = np.minimum(departure, H)
    network = problem.network
    return ChargingProblem(
        x0=np.concatenate([problem.x0, np.zeros(station.size)]),
        r=np.concatenate([problem.r, energy]),
        s=np.concatenate([problem.s, energy]),
        d=np.concatenate([problem.d, d]),
        p_min=np.concatenate([problem.p_min, np.zeros(station.size)]),
        p_max=np.concatenate([problem.p_max, problem.p_max[station]]),
        eta=problem.eta, dt_h=problem.dt_h, P_ref=problem.P_ref, horizon=H,
        departure=np.concatenate([problem.departure, departure]),
        network=None if network is None else network.columns(np.concatenate([np.arange(problem.n_stations), station])),
        arrival=np.concatenate([problem.arrival, arrival]),
    )
