"""The state of one area coordination step and the phases every price update shares: asking the stations
(`ask`), the price ceiling they report once (`with_ceiling`), the certification of the dual gap
(`certify`) and the stopping test (`stop`).

A step's state is one immutable value (`AreaState`): the stations' last plans and their values, which of
them are stale, the last round (prices, replies, area residual, dual value) and the counters. Every phase
takes a state and returns the next one; nothing is kept anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from pev_mpc.objective import StationCosts, station_costs
from pev_mpc.pool import StationPool, StationReplies, ask_pool
from pev_mpc.problem import ChargingProblem
from pev_mpc.rounds import Counts, take_replies
from pev_mpc.settings import MPCSettings

ARMIJO = 1e-4
"""Share of the first-order gain a kept step must raise the dual value by."""
G_NOISE = 1e-9
"""Relative accuracy of the dual value (sum of station values solved to station_tol)."""
_BISECTION_STEPS = 60


def project_to_limit(p: np.ndarray, lower: np.ndarray, P_ref: np.ndarray) -> np.ndarray:
    """Lower every column k of p (N, H) with sum_i p[i, k] > P_ref[k] by a common offset theta_k
    (found by bisection), clipped at each station's lower bound, so the column sum meets P_ref.

    Only decreases powers, so battery caps stay satisfied; the result never exceeds P_ref when the
    lower plan itself does not.
    """
    lower = np.minimum(lower, p)
    over = p.sum(axis=0) - P_ref
    cols = np.flatnonzero(over > 0)
    if cols.size == 0:
        return p
    pc, lc, ref = p[:, cols], lower[:, cols], P_ref[cols]
    lo, hi = np.zeros(cols.size), np.max(pc - lc, axis=0)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        too_much = np.maximum(pc - mid, lc).sum(axis=0) > ref
        lo, hi = np.where(too_much, mid, lo), np.where(too_much, hi, mid)
    out = p.copy()
    out[:, cols] = np.maximum(pc - hi, lc)
    return out


def warm_start(warm: np.ndarray | None, horizon: int, settings: MPCSettings) -> np.ndarray:
    """The prices to start from: warm (H,) clipped at 0 (zeros if None), prices below price_tol (relative
    to the largest) set to 0 (solver noise)."""
    lam = np.zeros(horizon) if warm is None else np.maximum(np.asarray(warm, dtype=float), 0.0)
    if lam.shape != (horizon,):
        raise ValueError(f"warm_prices has shape {lam.shape}: must be ({horizon},)")
    lam[lam <= settings.price_tol * max(1.0, float(np.max(lam, initial=0.0)))] = 0.0
    return lam


@dataclass(frozen=True, eq=False)
class AreaContext:
    """What a coordination step works on and never changes: the pool, the problem, the settings, the
    stations' costs as the coordinator values plans, and quantities derived from the problem."""

    pool: StationPool
    problem: ChargingProblem
    settings: MPCSettings
    costs: StationCosts
    lower: np.ndarray
    """(N, H) the plan bounds."""
    upper: np.ndarray
    plugged: np.ndarray
    """(H,) stations that can draw power at each step (at least 1)."""
    kw_noise: float
    """Accuracy of the area residual: the station plans meet their budgets to solver precision."""

    @classmethod
    def of(cls, pool: StationPool, problem: ChargingProblem, settings: MPCSettings,
           costs: StationCosts | None = None) -> AreaContext:
        """costs: the stations' objective as the coordinator values plans (default: settings.objective's)."""
        return cls(pool, problem, settings, station_costs(problem, settings) if costs is None else costs,
                   problem.lower_plan(), problem.upper_plan(), np.maximum(problem.mask.sum(axis=0), 1),
                   G_NOISE * max(1.0, float(np.max(np.abs(problem.P_ref), initial=0.0))))


@dataclass(frozen=True, eq=False)
class Round:
    """The last broadcast and what it gave."""

    prices: np.ndarray
    """(H,) the prices asked."""
    replies: StationReplies
    residual: np.ndarray
    """(H,) kW: sum of the stations' plans minus P_ref."""
    dual: float
    """The dual value at the prices (stale plans valued at them)."""


@dataclass(frozen=True, eq=False)
class AreaState:
    """Everything one area coordination step knows after a round."""

    plan: np.ndarray
    """(N, H) the last plan received from each station (the lower plan before its first reply)."""
    value: np.ndarray
    """(N,) f_i of that plan as last reported."""
    stale: np.ndarray
    """(N,) bool: that plan does not answer the last prices asked."""
    counts: Counts = field(default_factory=Counts)
    ceiling: np.ndarray | None = None
    """(H,) upper bound on optimal prices, once the stations reported it."""
    last: Round | None = None
    """The last round (None before the first)."""

    @classmethod
    def blank(cls, ctx: AreaContext) -> AreaState:
        """Before the first round: the safe lower plans, all stale."""
        N = ctx.problem.n_stations
        return cls(ctx.lower.copy(), np.zeros(N), np.ones(N, dtype=bool))


def tally(state: AreaState, **increments: int | tuple[float, ...]) -> AreaState:
    """The state with counters raised by increments (trace: the entries appended)."""
    return replace(state, counts=state.counts.add(**increments))


def _record(state: AreaState, rep: StationReplies, prices: np.ndarray) -> AreaState:
    """Keep the plans that arrived; count the round, its messages and failures."""
    plan, value, counts = take_replies(state.plan, state.value, rep, prices, state.counts)
    return replace(state, plan=plan, value=value, stale=~rep.answered, counts=counts)


def ask(ctx: AreaContext, state: AreaState, prices: np.ndarray, want_sensitivity: bool, barrier: float = 0.0,
        smoothing: np.ndarray | None = None, exact: bool = False) -> AreaState:
    """One round: broadcast prices (and a barrier > 0 for smoothed replies); the state with the replies.

    A station that does not answer keeps its last plan, valued at the new prices; the round is then
    repeated once (same prices) before the coordinator acts on it.
    """
    rep = ask_pool(ctx.pool, prices, want_sensitivity, barrier, smoothing, exact)
    if not rep.answered.all() and state.counts.rounds + 1 < ctx.settings.max_iterations:
        state = _record(state, rep, prices)
        rep = ask_pool(ctx.pool, prices, want_sensitivity, barrier, smoothing, exact)
    state = _record(state, rep, prices)
    P_ref = ctx.problem.P_ref
    r = state.plan.sum(axis=0) - P_ref
    g = float(state.value.sum() + np.sum(state.plan @ prices) - prices @ P_ref)
    return replace(state, last=Round(prices, rep, r, g))


def with_ceiling(ctx: AreaContext, state: AreaState) -> AreaState:
    """The state with the (H,) upper bound on optimal prices: each station reports once the largest
    marginal value of its energy per step (H numbers)."""
    if state.ceiling is not None:
        return state
    raw = ctx.costs.price_ceiling(ctx.problem)
    ceiling = np.where(raw > 0.0, raw * 1.01 + 1e-6, 0.0)  # zero: no station values power at k
    return replace(tally(state, messages=ctx.problem.n_stations), ceiling=ceiling)


def kkt_residual(prices: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(H,) kW: |r| where the price is positive, the overload r^+ where it is zero."""
    return np.where(prices > 0, np.abs(r), np.maximum(r, 0.0))


def residual(prices: np.ndarray, r: np.ndarray) -> float:
    """The largest KKT residual (kW)."""
    return float(kkt_residual(prices, r).max(initial=0.0))


def smoothing(ctx: AreaContext, prices: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(H,) kW sent with the next prices: the KKT residual per station that can draw power at each
    step, at least the pool's `capabilities.slack_share` of |r|: for stations whose
    steps are coupled by their SOC chain (tracking), unused capacity at a zero price counts a little."""
    share = ctx.pool.capabilities.slack_share
    return np.maximum(kkt_residual(prices, r), share * np.abs(r)) / ctx.plugged


def stop(ctx: AreaContext, state: AreaState, step: np.ndarray | None, gap_ok: bool = False) -> tuple[AreaState, bool]:
    """Residual of the last round within tolerance and either (gap_ok) the dual gap certified or the price
    step small (step None: only the certificate counts); the state with the residual traced."""
    s, last = ctx.settings, state.last
    res = residual(last.prices, last.residual)
    scale = max(1.0, float(np.max(last.prices, initial=0.0)))
    small_step = step is not None and float(np.max(np.abs(step), initial=0.0)) <= s.price_tol * scale
    return tally(state, trace=(res,)), res <= s.primal_tol_kw and (gap_ok or small_step)


def certify(ctx: AreaContext, state: AreaState) -> tuple[AreaState, bool]:
    """Whether the dual gap of the applied (projected) plans of the last round is below
    gap_tol * max(1, |g|); the state with the messages that took.

    g (concave) bounds the optimum from below, and the projected plans are feasible, so their
    objective minus g bounds their suboptimality. First the bound that needs no evaluation:
    lowering column k by its overload costs at most ceiling[k] per kW, so the gap is at most
    sum_k ceiling[k] r[k]^+ - lambda . r; if that does not certify, the stations value the projected
    plans (one more message each way per station, a gap check) and the exact gap decides.
    Needs the ceiling (`with_ceiling`).
    """
    s, lam, r, g = ctx.settings, state.last.prices, state.last.residual, state.last.dual
    tol = s.gap_tol * max(1.0, abs(g))
    if float(np.sum(state.ceiling * np.maximum(r, 0.0) - lam * r)) <= tol:
        return state, True
    if residual(lam, r) > s.primal_tol_kw:
        return state, False
    projected = project_to_limit(state.plan, ctx.lower, ctx.problem.P_ref)
    state = tally(state, messages=2 * ctx.problem.n_stations, gap_checks=1)
    return state, float(ctx.costs.value(ctx.problem, projected).sum()) - g <= tol
