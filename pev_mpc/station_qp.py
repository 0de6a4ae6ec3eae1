"""One station's local QP (OSQP), built once and re-solved for new prices by updating q only."""

from __future__ import annotations

import numpy as np
import osqp
import scipy.sparse as sp
from scipy.linalg import null_space

from pev_mpc.objective import StationCosts, station_costs
from pev_mpc.pool import MINIMAL, StationReplies, check_request, priced, station_rows
from pev_mpc.problem import ChargingProblem
from pev_mpc.quiet import c_stdout_silenced
from pev_mpc.settings import MPCSettings

_ACTIVE_DUAL = 1e-7  # |y| above which a constraint counts as active (sensitivity)


class StationQP:
    """min f_i(p) + lambda . p  s.t.  p_min <= p[k] <= p_max, x[k] <= s  (k < d), p[k] = 0 (k >= d).

    Knows only its own PEV (x0, r, s, d, bounds, model) and the prices it receives. Variables are
    p[0..d-1] (kW); the cap rows are c * cumsum(p) <= s - x0. A failed or timed-out solve returns
    the safe plan (its last solved plan of this control step, else p_min) and is counted.
    """

    def __init__(self, hessian: np.ndarray, linear: np.ndarray, cap_room: float, p_min: float, p_max: float,
                 c: float, horizon: int, settings: MPCSettings) -> None:
        """hessian (d, d) and linear (d,): f_i(p) = p.H p / 2 + linear.p + const over the d plugged steps;
        cap_room: energy the battery may still take (cap - x0, kWh)."""
        d = self.d = int(linear.shape[0])
        self.horizon, self.c = int(horizon), float(c)
        self.p_min, self.p_max = float(p_min), float(p_max)
        self.failures = 0
        self.last_plan: np.ndarray | None = None
        self._active = np.zeros(0, dtype=bool)
        if d == 0:
            self._solver = None
            return
        L = np.tril(np.ones((d, d)))
        self.hessian, self.q0 = hessian, linear
        self.A = np.vstack([np.eye(d), c * L])
        lower = np.concatenate([np.full(d, p_min), np.full(d, -np.inf)])
        upper = np.concatenate([np.full(d, p_max), np.full(d, cap_room)])
        self._solver = osqp.OSQP()
        opts = dict(verbose=False, eps_abs=settings.station_tol, eps_rel=settings.station_tol, polishing=True,
                    warm_starting=True, max_iter=20000)
        if settings.station_time_limit_s > 0:
            opts["time_limit"] = settings.station_time_limit_s
        self._solver.setup(sp.csc_matrix(np.triu(self.hessian)), self.q0, sp.csc_matrix(self.A), lower, upper, **opts)

    @classmethod
    def from_problem(cls, problem: ChargingProblem, i: int, settings: MPCSettings,
                     costs: StationCosts | None = None) -> "StationQP":
        """Station i of problem with the objective of settings (costs: precomputed station_costs)."""
        costs = station_costs(problem, settings) if costs is None else costs
        return cls(costs.hessian(problem, i), costs.linear_term(problem, i), costs.cap[i] - problem.x0[i],
                   problem.p_min[i], problem.p_max[i], problem.c, problem.horizon, settings)

    def safe_plan(self) -> np.ndarray:
        """(H,) fallback: the last plan solved by this QP (feasible), else p_min while plugged."""
        if self.last_plan is not None:
            return self.last_plan.copy()
        plan = np.zeros(self.horizon)
        plan[: self.d] = self.p_min
        return plan

    def solve(self, prices: np.ndarray) -> tuple[np.ndarray, bool]:
        """(H,) plan for the prices (H,) and whether the QP was solved (False: safe plan returned)."""
        plan = np.zeros(self.horizon)
        if self._solver is None:
            return plan, True
        self._solver.update(q=self.q0 + np.asarray(prices[: self.d], dtype=float))
        with c_stdout_silenced():  # OSQP prints "Polishing not needed" even when not verbose
            res = self._solver.solve(raise_error=False)
        if res.info.status_val not in (osqp.SolverStatus.OSQP_SOLVED, osqp.SolverStatus.OSQP_SOLVED_INACCURATE) \
                or not np.all(np.isfinite(res.x)):
            self.failures += 1
            return self.safe_plan(), False
        plan[: self.d] = np.clip(res.x, self.p_min, self.p_max)
        self._active = np.abs(res.y) > _ACTIVE_DUAL
        self.last_plan = plan
        return plan.copy(), True

    def sensitivity(self) -> np.ndarray:
        """(H, H) -dp/dlambda at the last solve (reduced inverse Hessian on the free directions)."""
        out = np.zeros((self.horizon, self.horizon))
        if self._solver is None:
            return out
        A = self.A[self._active[: self.A.shape[0]]] if self._active.size else self.A[:0]
        Z = null_space(A) if A.shape[0] else np.eye(self.d)
        if Z.shape[1]:
            out[: self.d, : self.d] = Z @ np.linalg.solve(Z.T @ self.hessian @ Z, Z.T)
        return out


class OSQPStations:
    """A StationPool of one StationQP per station (the reference, per-agent path)."""

    def __init__(self, problem: ChargingProblem, settings: MPCSettings) -> None:
        self.problem, self.settings = problem, settings
        self.n_stations, self.horizon = problem.n_stations, problem.horizon
        self.costs = station_costs(problem, settings)
        self.stations = [StationQP.from_problem(problem, i, settings, self.costs) for i in range(problem.n_stations)]

    capabilities = MINIMAL
    """Plans, values and the exact sensitivity."""

    def respond(self, prices: np.ndarray, want_sensitivity: bool = False, *, barrier: float = 0.0,
                smoothing: np.ndarray | None = None, exact: bool = False) -> StationReplies:
        """Every station's reply: one OSQP solve each (StationPool protocol)."""
        check_request(self, barrier, smoothing, exact)
        prices = np.asarray(prices, dtype=float)
        with c_stdout_silenced():  # once for all stations
            plans, ok = zip(*[st.solve(station_rows(prices, i)) for i, st in enumerate(self.stations)]) \
                if self.stations else ((), ())
        p = np.array(plans).reshape(self.n_stations, self.horizon)
        value = self.costs.value(self.problem, p) + priced(p, prices)
        sens = sum((st.sensitivity() for st in self.stations), np.zeros((self.horizon,) * 2)) \
            if want_sensitivity else None
        return StationReplies(p=p, value=value, answered=np.ones(self.n_stations, dtype=bool),
                              failed=~np.array(ok, dtype=bool), sensitivity=sens)
