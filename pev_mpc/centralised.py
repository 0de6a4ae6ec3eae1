"""Centralised MPC step: the coupled QP in one cvxpy problem (DPP Parameters, cached per shape)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from pev_mpc.problem import ChargingProblem
from pev_mpc.settings import MPCSettings
from pev_mpc.solution import MPCSolution

_SOLVER_OPTIONS = {
    "CLARABEL": dict(tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9),
    "OSQP": dict(eps_abs=1e-8, eps_rel=1e-8, polishing=True, max_iter=200000),
}


@dataclass(frozen=True, eq=False)
class _Model:
    problem: cp.Problem
    p: cp.Variable
    params: dict[str, cp.Parameter]
    coupling: cp.Constraint


def _build(n: int, H: int, c: float, settings: MPCSettings) -> _Model:
    """The QP in (p, e), e[i, k] = energy added after step k (kWh); data enter as Parameters."""
    par = {name: cp.Parameter((n, H), name=name) for name in ("lo", "hi", "cap", "target")}
    par["mask"] = cp.Parameter((n, H), nonneg=True, name="mask")
    par["delta"] = cp.Parameter(n, name="delta")
    par["P_ref"] = cp.Parameter(H, name="P_ref")
    p, e = cp.Variable((n, H), name="p"), cp.Variable((n, H), name="e")
    coupling = cp.sum(p, axis=0) <= par["P_ref"]
    constraints = [e[:, 0] == c * p[:, 0], p >= par["lo"], p <= par["hi"], e <= par["cap"], coupling]
    if H > 1:
        constraints.append(e[:, 1:] == e[:, :-1] + c * p[:, 1:])
    objective = (settings.tracking_weight * cp.sum_squares(cp.multiply(par["mask"], e) - par["target"])
                 + settings.terminal_weight * cp.sum_squares(par["delta"] - e[:, H - 1])
                 + settings.power_reg * cp.sum_squares(p))
    return _Model(cp.Problem(cp.Minimize(objective), constraints), p, par, coupling)


_CACHE: dict[tuple, _Model] = {}


def _model(problem: ChargingProblem, settings: MPCSettings, reuse: bool) -> _Model:
    key = (problem.n_stations, problem.horizon, problem.c, settings.tracking_weight, settings.terminal_weight,
           settings.power_reg)
    if not reuse:
        return _build(*key[:3], settings)
    if key not in _CACHE:
        _CACHE[key] = _build(*key[:3], settings)
    return _CACHE[key]


def solve_centralised(problem: ChargingProblem, settings: MPCSettings, reuse: bool = True) -> MPCSolution:
    """Minimise sum_i f_i subject to all constraints in one QP; prices are the coupling duals.

    reuse=True keeps one compiled cvxpy problem per (N, H, model, weights) and only updates its
    Parameters; reuse=False rebuilds and recompiles it (as ad-hoc scripts do).
    Raises InfeasibleProblemError if the constraints admit no plan.
    """
    start = time.perf_counter()
    problem.check_feasible()
    model = _model(problem, settings, reuse)
    mask = problem.mask.astype(float)
    delta = problem.r - problem.x0
    values = {"lo": mask * problem.p_min[:, None], "hi": mask * problem.p_max[:, None],
              "cap": np.broadcast_to((problem.s - problem.x0)[:, None], mask.shape).copy(),
              "target": mask * delta[:, None], "mask": mask, "delta": delta, "P_ref": problem.P_ref}
    for name, value in values.items():
        model.params[name].value = value
    solver = settings.centralised_solver
    model.problem.solve(solver=solver, **_SOLVER_OPTIONS[solver])
    status = model.problem.status
    converged = status == cp.OPTIMAL
    if model.p.value is None:
        raise RuntimeError(f"centralised QP not solved: solver {solver} returned status {status!r}")
    p = np.clip(model.p.value, values["lo"], values["hi"])
    prices = np.maximum(np.asarray(model.coupling.dual_value, dtype=float).reshape(problem.horizon), 0.0)
    stats = model.problem.solver_stats
    return MPCSolution(p=p, prices=prices, objective=problem.objective(p, settings),
                       iterations=int(stats.num_iters or 0), converged=converged, residual_kw=0.0, messages=0,
                       solve_time_s=time.perf_counter() - start)
