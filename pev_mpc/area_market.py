"""The model markets of the area coordination ('newton', MPCSettings.model_after).

Pools whose replies carry bids (`model_market`): Newton for model_after rounds; then each exchange
broadcasts the prices that clear the model market of the last replies (separable_qp.bid_model: every
station's QP as its bid curve and budget multiplier reveal it, the budgets that do not bind yet left out),
found by the coordinator alone (`clear_model`: Newton on the model, at most model_rounds rounds, no
messages). The model is exact for every station whose budget binds, so the exchanges only have to discover
the budgets that come to bind. Converged as Newton (`area_state.certify`). Newton goes on by itself where
the replies carry no bids or miss a station, and takes over again after MODEL_EXCHANGES exchanges without
convergence or once the model's rounds leave the prices where they were.

Pools whose replies carry no bids but are their QPs' exact optima (`reported_market`,
PoolCapabilities.reports: the active-set and interior-point stations of the tracking objective's SOC
chains, also through Ray): Newton for model_after rounds; then each station reports its QP once (one
message), the coordinator clears the market of those QPs itself (`clear_reported`: the centralised QP with
their costs, polished by Newton on them; no messages) and broadcasts its prices, and Newton goes on from
the replies, which certify at once unless a station's reply differs from its report."""

from __future__ import annotations

import numpy as np

from pev_mpc.area_newton import newton
from pev_mpc.area_state import AreaContext, AreaState, ask, certify, stop, tally, warm_start
from pev_mpc.batch_qp import ActiveSetStations
from pev_mpc.centralised import solve_centralised
from pev_mpc.objective import StationCosts
from pev_mpc.pool import StationPool
from pev_mpc.problem import ChargingProblem
from pev_mpc.separable_qp import bid_model
from pev_mpc.settings import MPCSettings

MODEL_EXCHANGES = 10
"""Model exchanges before the coordination hands back to Newton alone."""
MODEL_TOL = 1e-2
"""The model market is cleared to this share of primal_tol_kw and gap_tol."""


def clear_model(model: StationPool, costs: StationCosts, problem: ChargingProblem, settings: MPCSettings,
                lam: np.ndarray) -> tuple[np.ndarray, int]:
    """The prices that clear the market of a model of the stations, solved by the coordinator (Newton on
    the model from lam, to MODEL_TOL of the tolerances, at most model_rounds rounds), and the rounds that
    took (they send no messages)."""
    inner = settings.replace(coordination="newton", model_after=None, max_iterations=settings.model_rounds,
                             primal_tol_kw=MODEL_TOL * settings.primal_tol_kw, gap_tol=MODEL_TOL * settings.gap_tol)
    ctx = AreaContext.of(model, problem, inner, costs)
    state, _ = newton(ctx, AreaState.blank(ctx), warm_start(lam, problem.horizon, inner))
    return state.last.prices, state.counts.rounds


def clear_reported(ctx: AreaContext, lam: np.ndarray) -> tuple[np.ndarray, int]:
    """The prices that clear the market of the station QPs as reported (those the stations solve, of
    settings.objective): the centralised QP with their costs (from lam where its solver fails), polished by
    `clear_model` on the same QPs solved by the coordinator (the interior point's prices are accurate to
    about 1e-8, and stations with a small regularisation respond steeply to such errors); and the model
    rounds."""
    model = ActiveSetStations(ctx.problem, ctx.settings)
    try:
        lam = np.maximum(np.asarray(solve_centralised(ctx.problem, ctx.settings, costs=model.costs).prices), 0.0)
    except RuntimeError:  # the solver's status: the polish starts from the last prices
        pass
    return clear_model(model, model.costs, ctx.problem, ctx.settings, lam)


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
        model = bid_model(ctx.problem, s, lam, rep)
        prices, rounds = clear_model(model, model.costs, ctx.problem, s, lam)
        state = tally(state, model_rounds=rounds)
        if np.array_equal(prices, lam):  # the model's rounds did not get past its first reply
            state, outcome = newton(ctx, state, lam)
            return state, outcome == "converged"
        state = tally(ask(ctx, state, prices, False), exchanges=1)


def reported_market(ctx: AreaContext, state: AreaState, lam: np.ndarray) -> tuple[AreaState, bool]:
    """Coordinate from lam by Newton and, after model_after rounds, one clearing of the reported station QPs
    (module doc, `clear_reported`); the final state and whether it converged."""
    state, outcome = newton(ctx, state, lam, rounds=ctx.settings.model_after)
    if outcome != "handover":
        return state, outcome == "converged"
    prices, rounds = clear_reported(ctx, state.last.prices)
    state = tally(state, messages=ctx.problem.n_stations, exchanges=1, model_rounds=rounds)
    state, outcome = newton(ctx, state, prices)
    return state, outcome == "converged"
