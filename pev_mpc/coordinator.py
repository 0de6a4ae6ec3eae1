"""The area coordinator: dual price updates on the coupling sum_i p_i[k] <= P_ref[k].

It broadcasts prices lambda (H,) to the stations, receives their plans (and, for the dual
Newton update, each station's local price sensitivity -dp_i/dlambda summed over stations),
and updates lambda >= 0 until the area residual is within primal_tol_kw and the dual gap of the applied
plans is certified below gap_tol ('newton', 'smoothed-newton') or the price step is below price_tol
('gradient', 'nesterov'), or max_iterations rounds; a step stopped by the cap is reported not converged. A
step that Newton has not settled in model_after rounds goes on by model-market exchanges where the replies
carry bids, else, where the stations can report their QPs, by one clearing of the QPs reported once
(pev_mpc.area_market); OSQP stations do neither (Newton alone). The applied plans are always projected onto
the area limit. A site network is coordinated by `pev_mpc.network_coordinator` instead.

The state of a step is one immutable value (`area_state.AreaState`) that each phase takes and returns:
`area_state.ask` (one round), `area_state.certify`, `area_newton.newton`, `area_market.model_market`,
`area_smoothed.smoothed_newton` and `area_gradient.gradient`; `coordinate_area` runs the configured one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pev_mpc.area_gradient import dual_step_size, gradient
from pev_mpc.area_market import model_market, reported_market
from pev_mpc.area_newton import newton
from pev_mpc.area_smoothed import smoothed_newton
from pev_mpc.area_state import AreaContext, AreaState, project_to_limit, warm_start
from pev_mpc.objective import StationCosts
from pev_mpc.pool import StationPool
from pev_mpc.problem import ChargingProblem
from pev_mpc.settings import MPCSettings

__all__ = ["AreaCoordinator", "CoordinationResult", "coordinate_area", "dual_step_size", "extrapolate_prices",
           "project_to_limit", "shift_prices", "shift_steps"]


@dataclass
class CoordinationResult:
    """Outcome of one coordination (one control step)."""

    p: np.ndarray
    prices: np.ndarray
    iterations: int
    converged: bool
    residual_kw: float
    messages: int
    fallbacks: int
    missing_replies: int
    history: dict = field(default_factory=dict)


def shift_steps(values: np.ndarray, horizon: int) -> np.ndarray:
    """values (..., K) one step on along the last axis: drop the first step, repeat the last, fit to horizon."""
    shifted = np.concatenate([values[..., 1:], values[..., -1:]], axis=-1)
    if shifted.shape[-1] >= horizon:
        return shifted[..., :horizon].copy()
    return np.concatenate([shifted, np.repeat(shifted[..., -1:], horizon - shifted.shape[-1], axis=-1)], axis=-1)


def shift_prices(prices: np.ndarray | None, horizon: int) -> np.ndarray:
    """Warm start for the next control step: drop the first price, repeat the last; fit to horizon."""
    if prices is None or len(prices) == 0:
        return np.zeros(horizon)
    return shift_steps(np.maximum(np.asarray(prices, dtype=float), 0.0), horizon)


def extrapolate_prices(last: np.ndarray, before: np.ndarray | None, limit: float) -> np.ndarray:
    """Predictor for the next control step's warm start: the last prices plus their last change
    (last - before shifted by one step), each change limited to `limit` times the largest last
    price; the result is what shift_prices then shifts. Prices drift from step to step (the laxity
    and the early-delivery bonus move with time), and a warm start that follows the drift leaves the
    coordinator less to correct."""
    last = np.maximum(np.asarray(last, dtype=float), 0.0)
    if before is None or limit <= 0.0 or len(last) == 0:
        return last
    bound = limit * float(np.max(last))
    change = np.clip(last - shift_prices(before, len(last)), -bound, bound)
    return np.maximum(last + change, 0.0)


def price_update(ctx: AreaContext, lam: np.ndarray) -> tuple[AreaState, bool]:
    """Run the price update of ctx.settings.coordination.method from lam; the final state (its last round at
    the resulting prices) and whether it converged."""
    s, can, state = ctx.settings, ctx.pool.capabilities, AreaState.blank(ctx)
    method = s.coordination.method
    if method == "smoothed-newton" and can.barrier:
        return smoothed_newton(ctx, state, lam)
    if method == "newton" and s.model_after is not None and (can.bids or can.reports):
        return (model_market if can.bids else reported_market)(ctx, state, lam)
    if method in ("newton", "smoothed-newton"):
        state, outcome = newton(ctx, state, lam)
        return state, outcome == "converged"
    return gradient(ctx, state, lam, accelerated=method == "nesterov")


def coordinate_area(pool: StationPool, problem: ChargingProblem, settings: MPCSettings,
                    costs: StationCosts | None = None, warm_prices: np.ndarray | None = None) -> CoordinationResult:
    """Coordinate one control step from warm_prices (H,) (zeros if None) and return the projected plans and
    the prices. costs: the stations' objective as the coordinator values plans (default: settings.objective's)."""
    ctx = AreaContext.of(pool, problem, settings, costs)
    state, converged = price_update(ctx, warm_start(warm_prices, problem.horizon, settings))
    c = state.counts
    residual = c.trace[-1] if c.trace else np.inf
    p = project_to_limit(state.plan, ctx.lower, problem.P_ref)
    converged = converged and not state.stale.any()  # a plan that never answered the prices is no optimum
    return CoordinationResult(p=p, prices=state.last.prices, iterations=c.rounds, converged=converged,
                              residual_kw=float(residual), messages=c.messages, fallbacks=c.fallbacks,
                              missing_replies=c.missing, history={"residual_kw": list(c.trace),
                                                                  "gap_checks": c.gap_checks,
                                                                  "model_exchanges": c.exchanges,
                                                                  "model_rounds": c.model_rounds})


class AreaCoordinator:
    """Runs the price coordination of one control step against a StationPool (`coordinate_area`)."""

    def __init__(self, pool: StationPool, problem: ChargingProblem, settings: MPCSettings,
                 costs: StationCosts | None = None) -> None:
        """costs: the stations' objective as the coordinator values plans (default: settings.objective's)."""
        self.pool, self.problem, self.settings, self.costs = pool, problem, settings, costs

    def run(self, warm_prices: np.ndarray | None = None) -> CoordinationResult:
        """Coordinate from warm_prices (H,) (zeros if None) and return projected plans and prices."""
        return coordinate_area(self.pool, self.problem, self.settings, self.costs, warm_prices)
