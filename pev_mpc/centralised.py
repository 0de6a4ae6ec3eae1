"""Centralised MPC step: the coupled QP in one cvxpy problem (DPP Parameters, cached per shape)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from pev_mpc.objective import CvxpyCosts, station_costs
from pev_mpc.problem import ChargingProblem
from pev_mpc.settings import MPCSettings
from pev_mpc.solution import MPCSolution

_SOLVER_OPTIONS = {
    "CLARABEL": dict(tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10, tol_ktratio=1e-8),
    "OSQP": dict(eps_abs=1e-8, eps_rel=1e-8, polishing=True, max_iter=200000),
}


@dataclass(frozen=True, eq=False)
class _Model:
    problem: cp.Problem
    p: cp.Variable
    params: dict[str, cp.Parameter]
    costs: CvxpyCosts
    coupling: cp.Constraint


def _build(n: int, H: int) -> _Model:
    """The QP in (p, e), e[i, k] = energy added after step k (in kWh per unit of c); every datum,
    c and the objective's weights included, enters as a Parameter."""
    par = {name: cp.Parameter((n, H), name=name) for name in ("lo", "hi", "room")}
    par["c"] = cp.Parameter(nonneg=True, name="c")
    par["P_ref"] = cp.Parameter(H, name="P_ref")
    p, e = cp.Variable((n, H), name="p"), cp.Variable((n, H), name="e")
    costs = CvxpyCosts.create(n, H)
    coupling = cp.sum(p, axis=0) <= par["P_ref"]
    constraints = [e[:, 0] == par["c"] * p[:, 0], p >= par["lo"], p <= par["hi"], e <= par["room"], coupling]
    if H > 1:
        constraints.append(e[:, 1:] == e[:, :-1] + par["c"] * p[:, 1:])
    objective, definitions = costs.expression(p, e)
    return _Model(cp.Problem(cp.Minimize(objective), constraints + definitions), p, par, costs, coupling)


_CACHE: dict[tuple[int, int], _Model] = {}


def _model(problem: ChargingProblem, reuse: bool) -> _Model:
    key = (problem.n_stations, problem.horizon)
    if not reuse:
        return _build(*key)
    if key not in _CACHE:
        _CACHE[key] = _build(*key)
    return _CACHE[key]


def solve_centralised(problem: ChargingProblem, settings: MPCSettings, reuse: bool = True) -> MPCSolution:
    """Minimise sum_i f_i subject to all constraints in one QP; prices are the coupling duals.

    reuse=True keeps one compiled cvxpy problem per (N, H) and only updates its Parameters (data,
    objective and weights); reuse=False rebuilds and recompiles it (as ad-hoc scripts do).
    Raises InfeasibleProblemError if the constraints admit no plan.
    """
    start = time.perf_counter()
    problem.check_feasible()
    costs = station_costs(problem, settings)
    H = problem.horizon
    if problem.n_stations == 0:
        return MPCSolution(p=np.zeros((0, H)), prices=np.zeros(H), objective=0.0, iterations=0, converged=True,
                           solve_time_s=time.perf_counter() - start)
    model = _model(problem, reuse)
    mask = problem.mask
    room = costs.cap - problem.x0
    values = {"lo": problem.lower_plan(), "hi": problem.upper_plan(),
              # the cap binds only while plugged (a free station's SOC may exceed its cap)
              "room": np.where(mask, room[:, None], np.maximum(room, 0.0)[:, None]),
              "c": problem.c, "P_ref": problem.P_ref}
    for name, value in values.items():
        model.params[name].value = value
    model.costs.assign(problem, costs)
    solver = settings.centralised_solver
    model.problem.solve(solver=solver, **_SOLVER_OPTIONS[solver])
    status = model.problem.status
    converged = status == cp.OPTIMAL
    if model.p.value is None:
        raise RuntimeError(f"centralised QP not solved: solver {solver} returned status {status!r}")
    p = np.clip(model.p.value, values["lo"], values["hi"])
    prices = np.maximum(np.asarray(model.coupling.dual_value, dtype=float).reshape(H), 0.0)
    stats = model.problem.solver_stats
    return MPCSolution(p=p, prices=prices, objective=float(costs.value(problem, p).sum()),
                       iterations=int(stats.num_iters or 0), converged=converged, residual_kw=0.0, messages=0,
                       solve_time_s=time.perf_counter() - start)
