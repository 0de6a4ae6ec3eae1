"""OfflineOptimal: perfect foresight of every session, one linear program per episode.

The plan is the lower bound on unmet energy under the area limit.  Variables are the
powers of the plugged (step, station) cells of the action-independent plug schedule
(the PEV in each cell is known) and the unmet energy ``u_j`` per PEV:

    minimise   sum_j u_j
    subject to u_j >= req_j - eta dt_h sum_{cells of j} p,   u_j >= 0
               eta dt_h sum_{cells of j} p <= max(req_j, forced_j)   (no charging past the target;
                                              forced_j = the p_min energy the plant applies anyway)
               sum_{cells at t} p <= max(P_ref, sum of floors at t)     every step t
               p_min_i <= p <= p_max_i on plugged cells of station i (per-station bounds)

with ``req_j = (target - soc_init)+``.  Since the target is <= capacity the battery
cap never binds.  Stage 2 (lexicographic tie-break) fixes ``sum u <= U* (1 + 1e-9)
+ 1e-9`` and minimises ``sum (t + 1) p``: among the optimal plans, charge as early as
possible and no more than needed.  Both stages are sparse LPs solved by HiGHS
(``scipy.optimize.linprog``), which builds much faster than a modelling layer.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from pev_env.config import EnvConfig
from pev_env.scenario import Scenario
from pev_env.schedule import plug_schedule
from pev_mpc.policies.base import Observed, Policy, stats

UNMET_REL_TOL = 1e-9
"""Relative slack on the optimal unmet energy allowed in the tie-break stage."""


def offline_plan(config: EnvConfig, scenario: Scenario, station_pev: np.ndarray) -> tuple[np.ndarray, float]:
    """Optimal station powers (n_steps, n_stations) kW and the LP's total unmet energy, kWh.

    `station_pev` is the plug schedule's (n_steps, n_stations) occupancy matrix.
    """
    if scenario.n_stations != config.n_stations:
        raise ValueError(
            f"scenario.n_stations = {scenario.n_stations}: must equal config.n_stations = {config.n_stations}"
        )
    steps, stations = np.nonzero(station_pev >= 0)
    pev = station_pev[steps, stations]
    n_cells, m, n_steps = steps.size, scenario.n_pevs, scenario.n_steps
    gain = config.eta * config.dt_h
    req = scenario.energy_requested
    low, high = config.station_p_min[stations], config.station_p_max[stations]  # per cell
    forced = np.bincount(pev, weights=low, minlength=m) * gain
    floors = np.bincount(steps, weights=low, minlength=n_steps)
    cells = np.arange(n_cells)

    area = sp.csr_matrix((np.ones(n_cells), (steps, cells)), shape=(n_steps, n_cells + m))
    energy = sp.csr_matrix((np.full(n_cells, gain), (pev, cells)), shape=(m, n_cells + m))
    unmet = sp.hstack([sp.csr_matrix((m, n_cells)), sp.identity(m, format="csr")], format="csr")
    a_ub = sp.vstack([area, energy, -energy - unmet], format="csr")
    b_ub = np.concatenate([np.maximum(config.P_ref, floors), np.maximum(req, forced), -req])
    bounds = np.concatenate([np.column_stack([low, high]), np.tile([[0.0, np.inf]], (m, 1))])
    c_unmet = np.concatenate([np.zeros(n_cells), np.ones(m)])

    best = _solve(c_unmet, a_ub, b_ub, bounds, "minimise unmet energy")
    u_star = float(best.fun)
    c_early = np.concatenate([steps + 1.0, np.zeros(m)])
    a_fix = sp.vstack([a_ub, sp.csr_matrix(c_unmet)], format="csr")
    b_fix = np.append(b_ub, u_star * (1.0 + UNMET_REL_TOL) + UNMET_REL_TOL)
    plan_x = _solve(c_early, a_fix, b_fix, bounds, "earliest charging at optimal unmet").x

    plan = np.zeros((n_steps, config.n_stations))
    plan[steps, stations] = np.clip(plan_x[:n_cells], low, high)
    return _within_area(plan, station_pev >= 0, config), u_star


def _solve(c: np.ndarray, a_ub: sp.csr_matrix, b_ub: np.ndarray, bounds: np.ndarray, stage: str) -> Any:
    result = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if result.status != 0:
        raise RuntimeError(f"OfflineOptimal LP ({stage}) failed: {result.message}")
    return result


def _within_area(plan: np.ndarray, plugged: np.ndarray, config: EnvConfig) -> np.ndarray:
    """Scale each step's power above the floors onto P_ref (removes LP tolerance excesses)."""
    floor = plugged * config.station_p_min
    extra = plan - floor
    total = extra.sum(axis=1)
    budget = np.maximum(config.P_ref - floor.sum(axis=1), 0.0)
    factor = np.divide(budget, total, out=np.ones_like(total), where=total > budget)
    return floor + extra * factor[:, None]


class OfflineOptimal(Policy):
    """Replays the whole-episode LP plan (needs the scenario at reset: perfect foresight)."""

    name = "offline-optimal"

    def _reset(self, config: EnvConfig, scenario: Scenario | None, seed: int | None) -> None:
        if scenario is None:
            raise ValueError("OfflineOptimal.reset: scenario = None: a Scenario is required (perfect foresight)")
        start = time.perf_counter()
        station_pev = plug_schedule(scenario).station_pev
        self.plan, self.unmet_bound_kwh = offline_plan(config, scenario, station_pev)
        self.plan_time_s = time.perf_counter() - start
        self._plugged = station_pev >= 0
        self._t = 0
        self.last_stats = stats(self.plan_time_s, plan_time_s=self.plan_time_s)

    def _act(self, ob: Observed) -> tuple[np.ndarray, dict[str, Any]]:
        t = self._t
        if t >= self.plan.shape[0]:
            raise RuntimeError(f"OfflineOptimal: step {t} is past the episode end ({self.plan.shape[0]} steps)")
        if not np.array_equal(ob.plugged, self._plugged[t]):
            raise RuntimeError(
                f"OfflineOptimal: observed plugged stations {np.flatnonzero(ob.plugged).tolist()} at step {t} "
                f"differ from the scenario's schedule {np.flatnonzero(self._plugged[t]).tolist()}"
            )
        self._t += 1
        return self.plan[t].copy(), {"plan_time_s": self.plan_time_s, "step": t}
