"""Decentralised MPC step: station QPs coordinated by area prices (dual decomposition)."""

from __future__ import annotations

import time
from dataclasses import fields

import numpy as np

from pev_mpc.batch_qp import ActiveSetStations, BatchStations
from pev_mpc.coordinator import AreaCoordinator, CoordinationResult, shift_prices
from pev_mpc.network_coordinator import coordinate, shift_multipliers
from pev_mpc.objective import objective_value, station_costs
from pev_mpc.pool import StationPool
from pev_mpc.problem import ChargingProblem, InfeasibleProblemError
from pev_mpc.separable_qp import SeparableStations, separable
from pev_mpc.settings import SMOOTHED, Centralised, Coordination, MPCSettings
from pev_mpc.solution import MPCSolution
from pev_mpc.station_qp import OSQPStations

_SAMPLE_FRACTION = 8  # a cold start's sample has max(cold_start_sample, N / 8) stations


def station_solver(problem: ChargingProblem, settings: MPCSettings) -> str:
    """settings.station_solver with 'auto' resolved: 'separable' where it applies, else 'active_set'."""
    if settings.station_solver != "auto":
        return settings.station_solver
    return "separable" if separable(problem, station_costs(problem, settings)) else "active_set"


POOLS: dict[str, type] = {"separable": SeparableStations, "active_set": ActiveSetStations, "batch": BatchStations,
                          "osqp": OSQPStations}
"""Resolved station solver (station_solver) -> its StationPool class."""
SOLVER_READS: dict[str, tuple[str, ...]] = {
    "separable": (),
    "batch": ("station_tol", "station_max_iter", "station_time_limit_s"),
    "active_set": ("station_tol", "station_max_iter", "active_set_max_sweeps", "station_time_limit_s"),
    "osqp": ("station_tol", "station_time_limit_s"),
}
"""Resolved station solver -> the `stations` fields it reads ('separable' is closed form: none; 'batch' and
'active_set' hand a station that fails to its own OSQP QP, which reads station_tol and station_time_limit_s). Under
the area limit the reported market also reads those of 'active_set' (`reported_market`)."""


def _resolved_solver(settings: MPCSettings) -> str:
    """settings.station_solver with 'auto' resolved as on every plant (`station_solver`: the deadline objective's
    QPs are separable, p_min being >= 0)."""
    solver = settings.station_solver
    if solver == "auto":
        solver = "separable" if settings.objective.name == "deadline" else "active_set"
    return solver


def reported_market(settings: MPCSettings) -> bool:
    """Whether the area coordinator clears the market of the reported station QPs with `settings`
    (`area_market.clear_reported`: 'newton' with model_after, stations that report their QPs and carry no bids,
    'batch' and 'active_set'); it solves them by the centralised QP and an `ActiveSetStations` model."""
    can = POOLS[_resolved_solver(settings)].capabilities
    return (settings.coordination.method == "newton" and settings.model_after is not None and can.reports
            and not can.bids)


def unread_station_settings(settings: MPCSettings, network: bool = False) -> tuple[str, ...]:
    """The `stations.<field>` settings that the station solver of `settings` never reads, nor (under the area
    limit, not `network`) the reported market's active-set model of the stations (`reported_market`)."""
    reads = {*SOLVER_READS[_resolved_solver(settings)],
             *(SOLVER_READS["active_set"] if not network and reported_market(settings) else ())}
    return tuple(f"stations.{name}" for name in ("station_tol", "station_max_iter", "active_set_max_sweeps",
                                                 "station_time_limit_s") if name not in reads)


def unread_centralised_settings(settings: MPCSettings, network: bool = False) -> tuple[str, ...]:
    """The `centralised.<field>` settings the decentralised MPC never reads with `settings`: it solves the
    centralised QP of the stations' reported QPs in the area's reported market (`reported_market`) and, on a site
    network (`network`), where the replies carry no bids (`network_coordinator.clear_model`)."""
    reads = (not POOLS[_resolved_solver(settings)].capabilities.bids) if network else reported_market(settings)
    return () if reads else tuple(f"centralised.{f.name}" for f in fields(Centralised))


def unread_coordination_settings(settings: MPCSettings) -> tuple[str, ...]:
    """The `coordination.<field>` settings that the area coordinator never reads with `settings`
    (`coordinator.price_update` on the capabilities of the resolved station solver): 'smoothed-newton' and its
    fields where the stations cannot smooth (it is then Newton alone, without the model market), model_after and
    model_rounds where the replies neither carry bids nor report the QPs ('osqp'), model_rounds with model_after
    None, gap_tol with 'gradient' / 'nesterov' (they stop on the price step)."""
    can = POOLS[_resolved_solver(settings)].capabilities
    method = settings.coordination.method
    smoothed = [f"coordination.{f.name}" for f in fields(Coordination) if f.metadata.get("applies") == SMOOTHED["applies"]]
    unread = {
        "smoothed-newton": ["coordination.method", *smoothed] if not can.barrier else [],
        "newton": (["coordination.model_after", "coordination.model_rounds"] if not (can.bids or can.reports) else
                   ["coordination.model_rounds"] if settings.model_after is None else []),
        "gradient": ["coordination.gap_tol"], "nesterov": ["coordination.gap_tol"],
    }
    return tuple(unread[method])


def make_station_pool(problem: ChargingProblem, settings: MPCSettings) -> StationPool:
    """The stations of the problem: closed form ('separable'), vectorised active set ('active_set'),
    vectorised interior point ('batch') or one StationQP each ('osqp'); see station_solver."""
    solver = station_solver(problem, settings)
    if solver != "separable" and problem.arrival.any():
        raise ValueError(f"MPCSettings.stations.station_solver = {settings.station_solver!r} ({solver}): a problem with PEVs "
                         "still to come (ChargingProblem.arrival > 0) needs the 'separable' station solver "
                         "(objective 'deadline', p_min >= 0)")
    return POOLS[solver](problem, settings)


def sample_prices(problem: ChargingProblem, settings: MPCSettings) -> MPCSolution | None:
    """Cold-start prices: coordinate an evenly spaced sample of the stations under the area limit
    scaled by the sample's share (recursively cold-started), or None if the problem is small
    enough (N <= cold_start_sample) or the scaled sample problem is infeasible."""
    n, size = problem.n_stations, settings.cold_start_sample
    if size == 0 or n <= size:
        return None
    size = max(size, n // _SAMPLE_FRACTION)
    idx = np.unique(np.linspace(0, n - 1, size).round().astype(np.int64))
    sub = problem.subset(idx, P_ref=problem.P_ref * (idx.size / n))
    try:
        return solve_decentralised(sub, settings)
    except InfeasibleProblemError:
        return None


def solve_decentralised(problem: ChargingProblem, settings: MPCSettings, warm_prices: np.ndarray | None = None,
                        pool: StationPool | None = None) -> MPCSolution:
    """Solve one control step by price coordination.

    warm_prices: the previous control step's prices (any length); they are shifted by one step
    here (drop the first, repeat the last). Without them, prices coordinated on a sample of the
    stations are the warm start (see MPCSettings.cold_start_sample; history['cold_start_iterations']
    counts its rounds, messages include its messages). pool: the stations (default: make_station_pool).
    With problem.network the coordination keeps one multiplier per constraint and step
    (pev_mpc.network_coordinator); warm_prices are then the last step's (J, H) multipliers.
    Raises InfeasibleProblemError if the constraints admit no plan.
    """
    start = time.perf_counter()
    problem.check_feasible()
    if warm_prices is not None and not np.all(np.isfinite(np.asarray(warm_prices, dtype=np.complex128))):
        raise ValueError(f"solve_decentralised: warm_prices = {warm_prices!r:.80}: must be finite (or None)")
    pool = make_station_pool(problem, settings) if pool is None else pool
    if problem.network is not None:
        out = coordinate(pool, problem, settings, shift_multipliers(warm_prices, problem.network, problem.horizon))
        return _solution(problem, settings, out, start)
    warm, extra = None, None
    if warm_prices is not None:
        warm = shift_prices(warm_prices, problem.horizon)
    else:
        extra = sample_prices(problem, settings)
        warm = None if extra is None else extra.prices
    out = AreaCoordinator(pool, problem, settings).run(warm)
    if extra is not None:
        out.history["cold_start_iterations"] = extra.iterations + extra.history.get("cold_start_iterations", 0)
        out.messages += extra.messages
    return _solution(problem, settings, out, start)


def _solution(problem: ChargingProblem, settings: MPCSettings, out: CoordinationResult, start: float) -> MPCSolution:
    """The MPCSolution of a coordination that started at perf_counter() = start."""
    return MPCSolution(p=out.p, prices=out.prices, objective=objective_value(problem, settings, out.p),
                       iterations=out.iterations, converged=out.converged and out.fallbacks == 0,
                       residual_kw=out.residual_kw, messages=out.messages,
                       solve_time_s=time.perf_counter() - start, fallbacks=out.fallbacks,
                       missing_replies=out.missing_replies, history=dict(out.history))
