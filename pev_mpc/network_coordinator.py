"""Price coordination on a network: one multiplier per constraint and horizon step.

The coupling is the network of the problem (`ChargingProblem.network`): |g_j . p[:, k]| <= L_j for every
constraint j and step k, with complex gains g (three-phase phasor sums are second-order cones). The dual
(docs/FORMULATION.md, "Networks") has a complex multiplier y[j, k] per constraint and step (a 2-vector; a
linear row's is mu e^{i theta_j} with mu >= 0), the Lagrangian term Re(conj(y_jk) g_j . p_k) - L_j |y_jk|,
so station i sees one real price per step,

    pi[i, k] = sum_j Re(conj(g_ji) y_jk),

solves its own QP min f_i(p_i) + pi_i . p_i and replies as under the area limit. The dual value

    g(y) = sum_i [f_i(p_i) + pi_i . p_i] - sum_jk L_j |y_jk|

bounds the optimum from below, and the plans projected onto the network are feasible: their objective
minus g(y) certifies the step (`certify`).

The step is coordinated by model-market exchanges: the replies reveal each station's QP (its bid curve and
budget multiplier, `separable_qp.bid_model`; the budgets that do not bind yet are left out), the
coordinator clears the market of that model under the network itself (the centralised QP of the model, no
messages) and broadcasts the prices of its multipliers; the next replies certify them or reveal the
budgets that came to bind. A revealed budget is kept for the rest of the step, so every exchange's model
is at least as exact as the last one's. A pool whose replies carry no bids (the tracking objective's SOC
chains) is modelled by the objective's station QPs, which the stations report once. The clearing's plan
is a candidate next to the replies (the better of the two, projected, is applied), each row fitted by its
station to its own budget (a model with a budget left out may plan past it): stations respond steeply to
prices when their regularisation is small, and the cleared multipliers are accurate to about 1e-6, so the
replies can overshoot where the model's plan does not.

The state of a step is one immutable value (`StepState`) that each phase takes and returns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pev_env.network import Network
from pev_mpc.coordinator import CoordinationResult, shift_steps
from pev_mpc.network_allocation import dual_penalty, scale_into_network, station_prices
from pev_mpc.network_market import MarketError, clear_separable_market, polish
from pev_mpc.objective import StationCosts, station_costs
from pev_mpc.pool import StationPool
from pev_mpc.problem import ChargingProblem
from pev_mpc.rounds import Counts, take_replies
from pev_mpc.separable_qp import SeparableStations, bid_model
from pev_mpc.settings import MPCSettings

MAX_EXCHANGES = 12
"""Model exchanges after which a step stops unconverged (each is one round)."""
READS: tuple[str, ...] = ("coordination.max_iterations", "coordination.gap_tol")
"""The coordination settings (MPCSettings `section.field`) this coordinator reads: the other coordination fields
(the area coordinator's method, tolerances, model-market schedule and warm start) have no effect on a network."""
GAP_FLOOR = 1e-5
"""Relative dual gap certified at the least (MPCSettings.gap_tol when larger): the interior-point
clearing of the model gives multipliers to about 1e-6 relative on degenerate phasor networks, and the
replies of stations with a small regularisation move a lot with such errors (docs/FORMULATION.md,
"Networks"); 1e-5 of the deadline objective is about 1e-3 kWh of unmet energy on a real day."""


def shift_multipliers(y: np.ndarray | None, network: Network, horizon: int) -> np.ndarray:
    """Warm start for the next control step: drop the first step's multipliers, repeat the last; fit to
    horizon (zeros without a previous step or when the network changed shape)."""
    J = network.n_constraints
    y = None if y is None else np.asarray(y)
    if y is None or y.ndim != 2 or y.shape[0] != J or y.shape[1] == 0:
        return np.zeros((J, horizon), dtype=np.complex128)
    return shift_steps(y, horizon)


def project_to_network(p: np.ndarray, lower: np.ndarray, network: Network) -> np.ndarray:
    """The power above `lower` in every column of p (N, H) scaled by the largest common factor in [0, 1]
    under which every constraint holds (`network_allocation.scale_into_network`): only lowers powers, so
    battery caps stay satisfied; a column within the limits is unchanged."""
    cols = np.flatnonzero(np.any(network.overload(p) > 0.0, axis=0))
    if cols.size == 0:
        return p
    lower = np.minimum(lower[:, cols], p[:, cols])
    out = p.copy()
    out[:, cols] = scale_into_network(network, lower, p[:, cols] - lower)
    return out


@dataclass(frozen=True, eq=False)
class StepState:
    """Everything one control step's coordination knows after a round."""

    y: np.ndarray
    """(J, H) complex multipliers last broadcast (as station prices)."""
    plan: np.ndarray
    """(N, H) the stations' replies to them (kW)."""
    value: np.ndarray
    """(N,) f_i of each plan."""
    bids_model: SeparableStations | None
    """The stations' QPs as the replies reveal them (None: the replies carry no bids)."""
    known_cap: np.ndarray
    """(N,) SOC caps the replies revealed so far (a budget binds at its planned energy); inf: unknown."""
    stale: np.ndarray
    """(N,) bool: the station's plan does not answer y (its reply was lost)."""
    cleared: np.ndarray | None = None
    """(N, H) the plan of the last clearing (the model's optimum), a candidate next to the replies."""
    counts: Counts = Counts()
    """Rounds, messages, exchanges; trace: the projection's shed per certification (kW, the largest over
    the horizon)."""


@dataclass(frozen=True, eq=False)
class Certificate:
    """The verdict on a state: its feasible (projected) plans and how far they can be from the optimum."""

    projected: np.ndarray
    """(N, H) the plans projected onto the network (kW)."""
    shed_kw: float
    """Largest power the projection removed at one step (kW)."""
    gap: float
    """Objective of the projected plans minus the dual value (>= 0 up to solver accuracy)."""
    certified: bool


def ask(pool: StationPool, problem: ChargingProblem, settings: MPCSettings, y: np.ndarray,
        state: StepState | None) -> StepState:
    """One round: broadcast the prices of y, collect the replies. A station that does not answer keeps its
    last plan (the round is then not certifiable: `certify` requires every plan to answer y)."""
    network = problem.network
    prices = station_prices(network, y)
    rep = pool.respond(prices, False)
    N = problem.n_stations
    last = state or StepState(y, problem.lower_plan(), np.zeros(N), None, np.full(N, np.inf), ~rep.answered)
    plan, value, counts = take_replies(last.plan, last.value, rep, prices, last.counts)
    model, known = None, last.known_cap
    if rep.bids is not None and rep.answered.all():
        model = bid_model(problem, settings, prices, rep, known)
        known = model.costs.cap
    return replace(last, y=y, plan=plan, value=value, bids_model=model, known_cap=known, stale=~rep.answered,
                   counts=counts)


def certify(state: StepState, problem: ChargingProblem, costs: StationCosts, settings: MPCSettings) -> Certificate:
    """Project the plans onto the network and bound their suboptimality by the dual gap (module doc).
    Certified: gap <= max(gap_tol, GAP_FLOOR) * max(1, |g|) with every plan answering the last
    multipliers (a lost reply: the dual value is no bound, and the step is asked again)."""
    network = problem.network
    lower = problem.lower_plan()
    projected = project_to_network(state.plan, lower, network)
    shed = float(np.max((state.plan - projected).sum(axis=0), initial=0.0))
    primal = float(costs.value(problem, projected).sum())
    if state.cleared is not None:  # the better of it (each row within its station's budget) and the replies
        cleared = project_to_network(fit_budgets(state.cleared, lower, problem, costs), lower, network)
        value = float(costs.value(problem, cleared).sum())
        if value < primal:
            projected, primal = cleared, value
    prices = station_prices(network, state.y)
    dual = float(state.value.sum() + np.sum(state.plan * prices) - dual_penalty(network, state.y))
    gap = primal - dual
    certified = not state.stale.any() and gap <= max(settings.gap_tol, GAP_FLOOR) * max(1.0, abs(dual))
    return Certificate(projected, shed, gap, certified)


def fit_budgets(plan: np.ndarray, lower: np.ndarray, problem: ChargingProblem, costs: StationCosts) -> np.ndarray:
    """The cleared plan as the stations accept it: each checks its row against its own energy budget (the SOC
    cap of its QP; one message each way, as when the stations value the projected plans) and scales the
    power above `lower` down to fit where it would pass it. A model with a budget left out may plan a
    station past it, grossly or by the clearing's residue on a budget at the edge."""
    rows = np.where(problem.mask, plan, 0.0)
    energy = problem.x0 + problem.c * rows.sum(axis=1)
    over = np.flatnonzero(energy > costs.cap + 1e-9 * np.maximum(1.0, np.abs(costs.cap)))
    if over.size == 0:
        return plan
    c = np.broadcast_to(np.asarray(problem.c, dtype=float), energy.shape)[over]
    base = np.where(problem.mask, np.minimum(lower, plan), 0.0)[over]
    room = costs.cap[over] - problem.x0[over] - c * base.sum(axis=1)
    extra = c * (rows[over] - base).sum(axis=1)
    factor = np.clip(np.divide(room, extra, out=np.zeros_like(room), where=extra > 0.0), 0.0, 1.0)
    out = plan.copy()
    out[over] = np.where(problem.mask[over], base + factor[:, None] * (rows[over] - base), plan[over])
    return out


def clear_model(state: StepState, problem: ChargingProblem, settings: MPCSettings,
                costs: StationCosts) -> tuple[np.ndarray, np.ndarray | None]:
    """The multipliers (J, H) that clear the market of the stations' model under the network, and the
    model's optimal plan: the revealed QPs (separable: `network_market`, Clarabel on the arrays, the
    multipliers polished), or, where the replies carry no bids, the objective's station QPs, which the
    stations report once (the centralised QP with those costs)."""
    if state.bids_model is not None:
        model = state.bids_model
        plan, y = clear_separable_market(problem, model.costs)
        return polish(model, problem.network, y), plan
    from pev_mpc.centralised import solve_centralised

    try:
        cleared = solve_centralised(problem, settings, costs=costs)
    except RuntimeError as exc:                              # the solver's status named
        raise MarketError(f"network model market: {exc}") from exc
    return np.asarray(cleared.prices, dtype=np.complex128), cleared.p


def coordinate(pool: StationPool, problem: ChargingProblem, settings: MPCSettings,
               warm: np.ndarray | None = None) -> CoordinationResult:
    """Coordinate one control step on problem.network from the multipliers `warm` (J, H) (zeros if None):
    ask, certify, clear the model market and ask again, until certified, MAX_EXCHANGES exchanges or
    max_iterations rounds. Returns the projected plans and the multipliers (CoordinationResult.prices)."""
    network = problem.network
    J, H = network.n_constraints, problem.horizon
    y = np.zeros((J, H), dtype=np.complex128) if warm is None else np.asarray(warm, dtype=np.complex128)
    if y.shape != (J, H):
        raise ValueError(f"warm multipliers have shape {y.shape}: must be ({J}, {H})")
    costs = station_costs(problem, settings)
    state = ask(pool, problem, settings, y, None)
    failure = ""
    while True:
        verdict = certify(state, problem, costs, settings)
        # the stations value the projected plans, and check the cleared plan against their budgets
        checks = 2 * problem.n_stations * (1 + (state.cleared is not None))
        state = replace(state, counts=state.counts.add(trace=(verdict.shed_kw,), messages=checks, gap_checks=1))
        c = state.counts
        if verdict.certified or failure or c.exchanges >= MAX_EXCHANGES or c.rounds >= settings.max_iterations:
            break
        if not state.stale.any():
            try:
                y, cleared = clear_model(state, problem, settings, costs)
            except MarketError as exc:  # the step ends on the replies so far, reported not converged
                failure = str(exc)
                break
            state = replace(state, counts=c.add(exchanges=1), cleared=cleared)
        state = ask(pool, problem, settings, y, state)  # a lost reply: the same multipliers again
    c = state.counts
    return CoordinationResult(p=verdict.projected, prices=state.y, iterations=c.rounds,
                              converged=verdict.certified, residual_kw=verdict.shed_kw, messages=c.messages,
                              fallbacks=c.fallbacks, missing_replies=c.missing,
                              history={"shed_kw": list(c.trace), "model_exchanges": c.exchanges, "gap": verdict.gap,
                                       "market_error": failure})
