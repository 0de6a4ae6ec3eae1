"""Decentralised MPC step: station QPs coordinated by area prices (dual decomposition)."""

from __future__ import annotations

import time

import numpy as np

from pev_mpc.batch_qp import BatchStations
from pev_mpc.coordinator import AreaCoordinator, StationPool, shift_prices
from pev_mpc.problem import ChargingProblem
from pev_mpc.settings import MPCSettings
from pev_mpc.solution import MPCSolution
from pev_mpc.station_qp import OSQPStations


def make_station_pool(problem: ChargingProblem, settings: MPCSettings) -> StationPool:
    """The stations of the problem: one vectorised batch ('batch') or one StationQP each ('osqp')."""
    if settings.station_solver == "osqp":
        return OSQPStations(problem, settings)
    return BatchStations(problem, settings)


def solve_decentralised(problem: ChargingProblem, settings: MPCSettings, warm_prices: np.ndarray | None = None,
                        pool: StationPool | None = None) -> MPCSolution:
    """Solve one control step by price coordination.

    warm_prices: the previous control step's prices (any length); they are shifted by one step
    here (drop the first, repeat the last). pool: the stations (default: make_station_pool).
    Raises InfeasibleProblemError if the constraints admit no plan.
    """
    start = time.perf_counter()
    problem.check_feasible()
    pool = make_station_pool(problem, settings) if pool is None else pool
    warm = None if warm_prices is None else shift_prices(warm_prices, problem.horizon)
    out = AreaCoordinator(pool, problem, settings).run(warm)
    return MPCSolution(p=out.p, prices=out.prices, objective=problem.objective(out.p, settings),
                       iterations=out.iterations, converged=out.converged, residual_kw=out.residual_kw,
                       messages=out.messages, solve_time_s=time.perf_counter() - start, fallbacks=out.fallbacks,
                       missing_replies=out.missing_replies, history=out.history)
