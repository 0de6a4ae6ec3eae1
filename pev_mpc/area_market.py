"""The model market of the area coordination ('newton' with pools whose replies carry bids,
MPCSettings.model_after): Newton for model_after rounds; then each exchange broadcasts the prices that
clear the model market of the last replies (separable_qp.bid_model: every station's QP as its bid curve
and budget multiplier reveal it, the budgets that do not bind yet left out), found by the coordinator
alone (`clear_bid_model`: Newton on the model, at most model_rounds rounds, no messages). The model is
exact for every station whose budget binds, so the exchanges only have to discover the budgets that come
to bind. Converged as Newton (`area_state.certify`). Newton goes on by itself where the replies carry no
bids or miss a station, and takes over again after MODEL_EXCHANGES exchanges without convergence or once
the model's rounds leave the prices where they were."""

from __future__ import annotations

import numpy as np

from pev_mpc.area_newton import newton
from pev_mpc.area_state import AreaContext, AreaState, ask, certify, stop, tally, warm_start
from pev_mpc.problem import ChargingProblem
from pev_mpc.separable_qp import SeparableStations, bid_model
from pev_mpc.settings import MPCSettings

MODEL_EXCHANGES = 10
"""Model exchanges before the coordination hands back to Newton alone."""
MODEL_TOL = 1e-2
"""The model market is cleared to this share of primal_tol_kw and gap_tol."""


def clear_bid_model(model: SeparableStations, problem: ChargingProblem, settings: MPCSettings,
                    lam: np.ndarray) -> tuple[np.ndarray, int]:
    """The prices that clear the market of the bid model (Newton on the model from lam, to MODEL_TOL of
    the tolerances, at most model_rounds rounds) and the rounds that took."""
    inner = settings.replace(coordination="newton", model_after=None, max_iterations=settings.model_rounds,
                             primal_tol_kw=MODEL_TOL * settings.primal_tol_kw, gap_tol=MODEL_TOL * settings.gap_tol)
    ctx = AreaContext.of(model, problem, inner, model.costs)
    state, _ = newton(ctx, AreaState.blank(ctx), warm_start(lam, problem.horizon, inner))
    return state.last.prices, state.counts.rounds


def model_market(ctx: AreaContext, state: AreaState, lam: np.ndarray) -> tuple[AreaState, bool]:
    """Coordinate from lam by Newton and model-market exchanges (module doc); the final state and
    whether it converged. Its last round is at the prices it ends on."""
    s = ctx.settings
    state, outcome = newton(ctx, state, lam, rounds=s.model_after)
    if outcome != "handover":
        return state, outcome == "converged"
    while True:
        state, certified = certify(ctx, state)
        state, done = stop(ctx, state, None, certified)
        if done:
            return state, True
        if state.counts.rounds >= s.max_iterations:
            return state, False
        lam, rep = state.last.prices, state.last.replies
        if state.counts.exchanges == MODEL_EXCHANGES or rep.bids is None or not rep.answered.all():
            state, outcome = newton(ctx, state, lam)
            return state, outcome == "converged"
        prices, rounds = clear_bid_model(bid_model(ctx.problem, s, lam, rep), ctx.problem, s, lam)
        state = tally(state, model_rounds=rounds)
        if np.array_equal(prices, lam):  # the model's rounds did not get past its first reply
            state, outcome = newton(ctx, state, lam)
            return state, outcome == "converged"
        state = tally(ask(ctx, state, prices, False), exchanges=1)
