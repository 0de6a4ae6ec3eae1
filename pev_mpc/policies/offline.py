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

On a site network (``Policy.network``) the area rows become one row per constraint j
and step t: linear networks (``Network.is_linear``) keep the LP with
``sum_{cells at t} |gain_j,station| p <= limit_j``; networks with cones solve the same
two stages as an SOCP in cvxpy with Clarabel, ``||(Re(gain_j) . p_t, Im(gain_j) . p_t)||
<= limit_j`` over the plugged cells of step t (limits raised to the floors' load where
the floors alone exceed them). Either plan is then scaled per step onto the network
exactly (``network_allocation.scale_into_network``).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from pev_env.config import EnvConfig
from pev_env.network import Network
from pev_env.scenario import Scenario
from pev_env.schedule import plug_schedule
from pev_mpc.network_allocation import scale_into_network
from pev_mpc.policies.base import Observed, Policy, stats

UNMET_REL_TOL = 1e-9
"""Relative slack on the optimal unmet energy allowed in the tie-break stage."""
SOCP_UNMET_REL_TOL = 1e-7
"""The same slack for the SOCP's tie-break stage (an interior point method needs an interior)."""
_CLARABEL = {"unmet": dict(tol_gap_abs=1e-7, tol_gap_rel=1e-7, tol_feas=1e-8),
             "early": dict(tol_gap_abs=1e-6, tol_gap_rel=1e-6, tol_feas=1e-6)}
"""Clarabel's tolerances per SOCP stage. The unmet energy to 1e-7 relative (4e-6 kWh on a real day): at 1e-9
or 1e-8 the interior point stalls at a relative gap of about 1e-7 on most Caltech days and ends 'inaccurate'.
The tie-break only orders the optimal plans (and its plan is scaled onto the network afterwards); tighter it
stalls on Caltech days."""
_CLARABEL_RETRY = dict(tol_gap_abs=1e-6, tol_gap_rel=1e-6, tol_feas=1e-7)
"""Clarabel's tolerances for a second try of a stage it failed (a numerical failure, not a status: the tie-break
stage of a held-out Caltech day at 25 kW failed at the stage's own tolerances and solves at these); a stage
solved on the second try is reported inaccurate."""


def offline_plan(config: EnvConfig, scenario: Scenario, station_pev: np.ndarray,
                 network: Network | None = None) -> tuple[np.ndarray, float]:
    """Optimal station powers (n_steps, n_stations) kW and the LP's (SOCP's) total unmet energy, kWh.

    `station_pev` is the plug schedule's (n_steps, n_stations) occupancy matrix; `network` the site
    network (None: the area limit P_ref alone).
    """
    plan, unmet, _ = offline_solution(config, scenario, station_pev, network)
    return plan, unmet


def offline_solution(config: EnvConfig, scenario: Scenario, station_pev: np.ndarray,
                     network: Network | None = None) -> tuple[np.ndarray, float, bool]:
    """offline_plan's plan and unmet energy, and whether the solver reported them accurate (False: Clarabel
    ended a cone stage with its 'inaccurate' status; the HiGHS LPs are exact or raise)."""
    cells = _cells(config, scenario, station_pev)
    n_cells, m = cells.steps.size, scenario.n_pevs
    if n_cells == 0:  # no PEV is ever plugged (e.g. an episode without PEVs): nothing to plan
        return np.zeros(station_pev.shape), float(cells.req.sum()), True
    if network is not None and not network.is_linear:
        x, u_star, accurate = _socp_plan(cone_episode(config, scenario, station_pev, network, cells))
        return _place(x, cells, station_pev, config, network), u_star, accurate
    energy = cells.energy(n_cells + m)
    if network is not None:
        row, cell, gain, coupling_limit = _network_rows(network, config, station_pev, cells)
        coupling = sp.csr_matrix((np.abs(gain), (row, cell)), shape=(coupling_limit.size, n_cells + m))
    else:
        coupling = sp.csr_matrix((np.ones(n_cells), (cells.steps, np.arange(n_cells))),
                                 shape=(scenario.n_steps, n_cells + m))
        floors = np.bincount(cells.steps, weights=cells.low, minlength=scenario.n_steps)
        coupling_limit = np.maximum(config.P_ref, floors)
    unmet = sp.hstack([sp.csr_matrix((m, n_cells)), sp.identity(m, format="csr")], format="csr")
    a_ub = sp.vstack([coupling, energy, -energy - unmet], format="csr")
    b_ub = np.concatenate([coupling_limit, np.maximum(cells.req, cells.forced), -cells.req])
    bounds = np.concatenate([np.column_stack([cells.low, cells.high]), np.tile([[0.0, np.inf]], (m, 1))])
    c_unmet = np.concatenate([np.zeros(n_cells), np.ones(m)])

    best = _solve(c_unmet, a_ub, b_ub, bounds, "minimise unmet energy")
    u_star = float(best.fun)
    c_early = np.concatenate([cells.steps + 1.0, np.zeros(m)])
    a_fix = sp.vstack([a_ub, sp.csr_matrix(c_unmet)], format="csr")
    b_fix = np.append(b_ub, u_star * (1.0 + UNMET_REL_TOL) + UNMET_REL_TOL)
    plan_x = _solve(c_early, a_fix, b_fix, bounds, "earliest charging at optimal unmet").x
    return _place(plan_x[:n_cells], cells, station_pev, config, network), u_star, True


@dataclass(frozen=True)
class Cells:
    """The plugged (step, station) cells of an episode's plug schedule, in row-major order, and its PEVs."""

    steps: np.ndarray
    """int (cells,): each cell's step."""
    stations: np.ndarray
    """int (cells,): each cell's station."""
    pev: np.ndarray
    """int (cells,): the PEV plugged in each cell."""
    low: np.ndarray
    """kW (cells,): the station's p_min."""
    high: np.ndarray
    """kW (cells,): the station's p_max."""
    req: np.ndarray
    """kWh (M,): each PEV's requested energy, (target - soc_init)+."""
    forced: np.ndarray
    """kWh (M,): the p_min energy the plant applies to each PEV anyway."""
    gain: float
    """kWh per kW of a cell: eta dt_h."""

    def energy(self, columns: int) -> sp.csr_matrix:
        """(M, columns) map of the cells' powers (the first columns) to the PEVs' energies, kWh."""
        n_cells = self.steps.size
        return sp.csr_matrix((np.full(n_cells, self.gain), (self.pev, np.arange(n_cells))),
                             shape=(self.req.size, columns))


def _cells(config: EnvConfig, scenario: Scenario, station_pev: np.ndarray) -> Cells:
    if scenario.n_stations != config.n_stations:
        raise ValueError(
            f"scenario.n_stations = {scenario.n_stations}: must equal config.n_stations = {config.n_stations}"
        )
    steps, stations = np.nonzero(station_pev >= 0)
    pev = station_pev[steps, stations]
    low, high = config.station_p_min[stations], config.station_p_max[stations]
    gain = config.eta * config.dt_h
    forced = np.bincount(pev, weights=low, minlength=scenario.n_pevs) * gain
    return Cells(steps, stations, pev, low, high, scenario.energy_requested, forced, gain)


def _network_rows(network: Network, config: EnvConfig, station_pev: np.ndarray,
                  cells: Cells) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The network rows (constraint j, step t) that plugged cells load: each nonzero's row and cell, its
    (complex) gain, and each row's limit (A; raised to the floors' load where the floors alone exceed it)."""
    n_steps = station_pev.shape[0]
    floor = np.where(station_pev >= 0, config.station_p_min, 0.0)
    limits = np.maximum(network.limit[:, None], network.loads(floor.T))  # (J, n_steps)
    g = network.gain[:, cells.stations]  # (J, cells)
    j, cell = np.nonzero(g)
    used, row = np.unique(j * n_steps + cells.steps[cell], return_inverse=True)  # constraint (j, t) of each nonzero
    return row, cell, g[j, cell], limits.ravel()[used]


def _place(x: np.ndarray, cells: Cells, station_pev: np.ndarray, config: EnvConfig,
           network: Network | None) -> np.ndarray:
    """The (n_steps, n_stations) plan of the cells' powers x, clipped to the bounds and scaled per step
    onto the area limit (network None) or the network."""
    plan = np.zeros(station_pev.shape)
    plan[cells.steps, cells.stations] = np.clip(x, cells.low, cells.high)
    plugged = station_pev >= 0
    if network is None:
        return _within_area(plan, plugged, config)
    floor = plugged * config.station_p_min
    return scale_into_network(network, floor.T, (plan - floor).T).T


@dataclass(frozen=True)
class ConeEpisode:
    """A whole episode on a network with cones as a cvxpy model: the powers `x` (kW) of the plugged cells
    (`cells`, row-major), the unmet energy `u` (kWh) per PEV, and the constraints binding them (bounds,
    unmet and no charging past the target, and one cone per network row and step)."""

    x: cp.Expression
    u: cp.Variable
    constraints: list[cp.Constraint]
    cells: Cells


def cone_episode(config: EnvConfig, scenario: Scenario, station_pev: np.ndarray, network: Network,
                 cells: Cells | None = None, shared: cp.Expression | None = None) -> ConeEpisode:
    """The offline optimum's model of one episode on `network` (the plug schedule's `station_pev`), for its
    stages here and for bounds built on several episodes (benchmarks/causal_bound.py). `shared`: the powers of
    the cells of the episode's first steps, another episode's variables, whose bounds and cones that episode's
    model holds (a row of one step holds only cells of that step); the other cells are new variables."""
    cells = cells or _cells(config, scenario, station_pev)
    n_cells, m = cells.steps.size, scenario.n_pevs
    k = 0 if shared is None else shared.size
    row, cell, gain, limit = _network_rows(network, config, station_pev, cells)
    if k:
        keep = cell >= k
        used, row = np.unique(row[keep], return_inverse=True)
        cell, gain, limit = cell[keep], gain[keep], limit[used]
    shape = (limit.size, n_cells)
    re = sp.csr_matrix((gain.real, (row, cell)), shape=shape)
    im = sp.csr_matrix((gain.imag, (row, cell)), shape=shape)
    energy = cells.energy(n_cells)
    fresh = cp.Variable(n_cells - k) if k < n_cells else None
    x = shared if fresh is None else fresh if not k else cp.hstack([shared, fresh])
    u = cp.Variable(m, nonneg=True)
    delivered = energy @ x
    constraints = [u >= cells.req - delivered, delivered <= np.maximum(cells.req, cells.forced)]
    if fresh is not None:
        constraints += [fresh >= cells.low[k:], fresh <= cells.high[k:]]
    if limit.size:
        constraints.append(cp.SOC(limit, cp.vstack([re @ x, im @ x]), axis=0))
    return ConeEpisode(x, u, constraints, cells)


def least_unmet(model: ConeEpisode) -> tuple[float, bool]:
    """The first stage on `model` (Clarabel): the least unmet energy (kWh), and whether Clarabel reported it
    accurate; `model.x` holds the plan."""
    stage = cp.Problem(cp.Minimize(cp.sum(model.u)), model.constraints)
    accurate = _solve_socp(stage, "unmet")
    return float(stage.value), accurate


def _socp_plan(model: ConeEpisode) -> tuple[np.ndarray, float, bool]:
    """The two stages on a network with cones, as SOCPs (Clarabel): cell powers x (kW) of the earliest plan
    at the optimal unmet energy, that unmet energy (kWh), and whether both stages were accurate."""
    x, u, constraints, steps = model.x, model.u, model.constraints, model.cells.steps
    n_steps = int(steps.max(initial=0)) + 1
    u_star, accurate = least_unmet(model)
    plan = np.asarray(x.value, dtype=np.float64)
    early = cp.Problem(cp.Minimize((steps + 1.0) / n_steps @ x),
                       constraints + [cp.sum(u) <= u_star * (1.0 + SOCP_UNMET_REL_TOL) + SOCP_UNMET_REL_TOL])
    try:
        accurate = _solve_socp(early, "early") and accurate
    except RuntimeError:      # the tie-break only orders optimal plans: keep the first stage's, reported inaccurate
        return plan, u_star, False
    return np.asarray(x.value, dtype=np.float64), u_star, accurate


def _solve_socp(problem: cp.Problem, stage: str) -> bool:
    """Solve one cone stage; True if Clarabel reports it optimal, False if only 'inaccurate' or solved on a
    second try with _CLARABEL_RETRY after Clarabel failed (then reported in the results, not printed); raises
    RuntimeError on any other status or a second failure."""
    for options, first in ((_CLARABEL[stage], True), (_CLARABEL_RETRY, False)):
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Solution may be inaccurate", category=UserWarning)
                problem.solve(solver=cp.CLARABEL, **options)
        except cp.error.SolverError:
            continue
        if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise RuntimeError(f"OfflineOptimal SOCP ({stage}) failed: solver status {problem.status!r}")
        return first and problem.status == cp.OPTIMAL
    raise RuntimeError(f"OfflineOptimal SOCP ({stage}) failed: Clarabel failed at {_CLARABEL[stage]} and at "
                       f"{_CLARABEL_RETRY}")


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
    """Replays the whole-episode LP (SOCP) plan (needs the scenario at reset: perfect foresight)."""

    name = "offline-optimal"
    causal = False

    def _reset(self, config: EnvConfig, scenario: Scenario | None, seed: int | None) -> None:
        if scenario is None:
            raise ValueError("OfflineOptimal.reset: scenario = None: a Scenario is required (perfect foresight)")
        start = time.perf_counter()
        station_pev = plug_schedule(scenario).station_pev
        self.plan, self.unmet_bound_kwh, self.accurate = offline_solution(config, scenario, station_pev,
                                                                           self.network)
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
        # an inaccurate plan counts once, at the first step, in nonconverged_steps
        return self.plan[t].copy(), {"plan_time_s": self.plan_time_s, "step": t, "converged": self.accurate or t > 0}
