"""The projected dual Newton of the area prices on 0 <= lambda <= ceiling with barrier-smoothed
sensitivities (`newton`), its trials and their acceptance.

The step solves (S_FF + delta I) step_F = r_F on the free prices F (positive price or overload),
S = sum_i -dp_i/dlambda as reported by the stations, which smooth it with the last round's
|residual| (docs/FORMULATION.md): at a kink of the piecewise-quadratic dual, where the exact S is
singular, the smoothed S still tells how far the nearest station bound is. Where the pool also
reports the exact S and bid curves (Bids), two steps use them:
- the exact Newton step on the free prices some station responds to, once the exact S is
  regular there (it lands on the optimum as soon as the active bounds are right);
- a free price no station responds to moves at least to where its step clears on the
  stations' bid curves (`area_steps.clear_rigid`); the exact step leaves such prices to this alone.
Both hold each station's budget multiplier, so where budgets couple the steps they can
mislead: after a rejected exact step, or two kept exact or bid steps in a row that left the
KKT residual where it was, smoothed steps follow until the residual halves. A kept smoothed
step that raised the dual far more than its quadratic model predicted (a nearly linear stretch,
e.g. a direction no station responds to before its budget multiplier is crossed) makes the
next smoothed step longer.

A step is kept (`judge`, `accept`) only if it raises the dual value enough (Armijo), or, below the
accuracy of the dual value, does not lower it and halves the KKT residual (an exact step must do one
of the two), or, once the residual is within primal_tol_kw but the gap not yet certified, for a
smoothed step whose first-order gain r . move is itself below that accuracy, does not lower it and
does not raise the KKT residual beyond the accuracy of the plans (the next step is then longer: an
Armijo test in the noise of g would only shrink such steps to nothing; such a step that is rejected
overshot a breakpoint: past it a station responds, so the next trial is the exact step from the
rejected prices, which lands on the breakpoint where that response is linear, and the one after it
half the rejected step); any other rejected step's plans are discarded and delta is raised so that the
next step is at most half as long (`on_rejection`). Converged: residual within primal_tol_kw and the
dual gap of the applied plans certified below gap_tol * |g| (`area_state.certify`). A small Newton
step alone is no certificate here: on a nearly piecewise-linear dual it can be small far from the
optimum.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from pev_mpc.area_state import (ARMIJO, G_NOISE, AreaContext, AreaState, ask, certify, residual, smoothing, stop,
                                with_ceiling)
from pev_mpc.area_steps import exact_regular, exact_trial, newton_step, responding

_DAMPING_DOWN = 0.1
_DAMPING_UP = 8.0
_EXPAND_RATIO = 1.5  # a kept smoothed step that raised the dual this much more than the model predicted ...
_EXPAND = 4.0        # ... makes the next smoothed step this much longer
_STALL = 0.99        # a kept exact or bid step whose KKT residual is above this share of the last stalls

Outcome = Literal["converged", "capped", "handover"]
"""How `newton` ended: certified; at max_iterations or the rejection cap; at the round cap with every reply
in, carrying bids where the pool bids (a model market takes over: `area_market`)."""


@dataclass(frozen=True, eq=False)
class Search:
    """The Newton loop's own variables between trials."""

    floor: float
    """Damping of exact steps (a tiny share of the largest sensitivity)."""
    delta: float
    """Damping of smoothed steps."""
    flat: bool = False
    """The kept replies carry only the (singular) exact sensitivity."""
    streak: bool = True
    """The last trial was kept (only then does the damping shrink, or do bids move prices)."""
    exact_below: float = np.inf
    """Exact steps are tried while the KKT residual is below this."""
    stalled: int = 0
    """Kept exact or bid steps in a row that left the residual where it was."""
    length: float = 1.0
    """Multiplies smoothed steps (grows along nearly linear stretches of the dual)."""
    pivot: np.ndarray | None = None
    """Next trial prices, from the far side of an overshot breakpoint."""
    rejected: int = 0
    """Rejected trials that count towards the rejection cap."""


@dataclass(frozen=True, eq=False)
class Proposal:
    """The prices of one trial and the kind of step that gave them."""

    prices: np.ndarray
    exact: bool
    jumped: bool
    """The bids moved a rigid price."""
    from_pivot: bool

    @property
    def smooth(self) -> bool:
        return not (self.exact or self.jumped)


@dataclass(frozen=True, eq=False)
class Verdict:
    """How a trial's round compares with the kept one."""

    move: np.ndarray
    res: float
    res_new: float
    predicted: float
    """The quadratic model's gain of the move."""
    gain: float
    armijo: bool
    closer: bool
    flat_trial: bool
    drift: bool

    @property
    def kept(self) -> bool:
        return self.armijo or self.closer or self.drift


def newton(ctx: AreaContext, state: AreaState, lam: np.ndarray, rejections: int | None = None,
           rounds: int | None = None) -> tuple[AreaState, Outcome]:
    """Newton from lam (module doc) until certified, max_iterations rounds in all, `rejections` rejected
    steps or `rounds` rounds in all (None: no limit; with a pool that bids, only on replies that carry bids).
    The returned state's last round is at the prices it ends on."""
    state = with_ceiling(ctx, state)
    state, search = opening(ctx, state, np.minimum(lam, state.ceiling))
    while True:
        state, outcome = settle(ctx, state, search, rejections, rounds)
        if outcome is not None:
            return state, outcome
        proposal, search = propose(ctx, state, search)
        tried = trial(ctx, state, proposal)
        verdict = judge(ctx, state, tried, proposal)
        if verdict.kept:
            state, search = tried, accept(search, verdict, proposal)
        else:
            state, search = on_rejection(ctx, state, tried, search, proposal, verdict)


def opening(ctx: AreaContext, state: AreaState, lam: np.ndarray) -> tuple[AreaState, Search]:
    """The first round at lam (no residual known yet: the exact sensitivity) and the loop's variables.
    Where no station responds to some free price (every bound there rigid) and no bids say how far
    its next bound is, the exact Newton step is undefined: unless the round is certified, the stations
    are asked again (same prices) for the smoothed sensitivity."""
    state = ask(ctx, state, lam, True)
    r, rep = state.last.residual, state.last.replies
    free = (lam > 0) | (r > 0)
    flat = np.any(free) and np.min(np.diag(rep.sensitivity)[free]) <= 0.0
    if flat:
        regular = exact_regular(rep, free & responding(ctx, rep))
        if not regular and residual(lam, r) <= ctx.settings.primal_tol_kw:
            state, regular = certify(ctx, state)
        if not regular:
            state = ask(ctx, state, lam, True, smoothing=smoothing(ctx, lam, r))
            flat = False
    floor = 1e-9 * max(float(np.max(np.diag(state.last.replies.sensitivity), initial=0.0)), 1e-12)
    return state, Search(floor=floor, delta=floor, flat=flat)


def settle(ctx: AreaContext, state: AreaState, search: Search, rejections: int | None,
           rounds: int | None) -> tuple[AreaState, Outcome | None]:
    """The stopping tests at the kept round (the state with its certification and trace)."""
    state, certified = certify(ctx, state)
    state, done = stop(ctx, state, None, certified)
    if done:
        return state, "converged"
    n, rep = state.counts.rounds, state.last.replies
    if n >= ctx.settings.max_iterations or (rejections is not None and search.rejected >= rejections):
        return state, "capped"
    # a pool that bids hands over on replies that carry bids; one that never bids reports its QPs instead
    if rounds is not None and n >= rounds and rep.answered.all() and (rep.bids is not None
                                                                      or not ctx.pool.capabilities.bids):
        return state, "handover"
    return state, None


def propose(ctx: AreaContext, state: AreaState, search: Search) -> tuple[Proposal, Search]:
    """The next trial: the pivot if one is due, else the exact step (where fresh and regular), the bids'
    step or the damped smoothed step (times the search's length)."""
    if search.pivot is not None:  # the exact step from past a breakpoint that a flat trial overshot
        return Proposal(search.pivot, True, False, True), replace(search, pivot=None)
    lam, r, rep = state.last.prices, state.last.residual, state.last.replies
    free, responds = (lam > 0) | (r > 0), responding(ctx, rep)
    fresh = search.streak and residual(lam, r) < search.exact_below  # the exact and bid steps may be tried
    exact = fresh and exact_regular(rep, free & responds)
    damping = search.floor if exact else search.delta
    step, jumped = newton_step(ctx, lam, r, rep, free, responds, damping, exact, fresh)
    smooth = not (exact or jumped)
    new = np.clip(lam + (search.length if smooth else 1.0) * step, 0.0, state.ceiling)
    return Proposal(new, exact, jumped, False), search


def trial(ctx: AreaContext, state: AreaState, proposal: Proposal) -> AreaState:
    """Ask the stations at the proposed prices (the smoothing from the kept round, the exact
    sensitivity too)."""
    lam, r = state.last.prices, state.last.residual
    return ask(ctx, state, proposal.prices, True, smoothing=smoothing(ctx, lam, r), exact=True)


def judge(ctx: AreaContext, kept: AreaState, tried: AreaState, proposal: Proposal) -> Verdict:
    """Compare the trial's round with the kept one (module doc: when a step is kept)."""
    lam, r, g, rep = kept.last.prices, kept.last.residual, kept.last.dual, kept.last.replies
    new, r_new, g_new = tried.last.prices, tried.last.residual, tried.last.dual
    move = new - lam
    predicted = float(r @ move) - 0.5 * float(move @ rep.sensitivity @ move)
    res, res_new = residual(lam, r), residual(new, r_new)
    armijo = g_new >= g + ARMIJO * float(r @ move) - 1e-12 * abs(g)
    # below the noise of g (station tolerances), a step that does not lower g and shrinks the
    # KKT residual is kept too (an exact step must do one of them)
    closer = g_new >= g - G_NOISE * abs(g) and res_new < 0.5 * res
    if proposal.exact and g_new - g <= G_NOISE * abs(g):
        armijo = False
    # feasible within tolerance but not yet certified: a smoothed step whose first-order gain g
    # cannot resolve (a nearly flat stretch of the dual, e.g. a tiny overload that only a
    # far-away budget multiplier clears) is judged by the KKT residual: kept if that does not
    # grow beyond the accuracy of the plans, and the next step is longer
    flat_trial = proposal.smooth and res <= ctx.settings.primal_tol_kw and abs(float(r @ move)) <= G_NOISE * abs(g)
    drift = flat_trial and g_new >= g - G_NOISE * abs(g) and res_new <= res + ctx.kw_noise
    return Verdict(move, res, res_new, predicted, g_new - g, armijo, closer, flat_trial, drift)


def accept(search: Search, verdict: Verdict, proposal: Proposal) -> Search:
    """The search after a kept trial: the damping shrinks after a streak, smoothed steps grow along
    nearly linear stretches, and stalled exact or bid steps hand back to smoothed ones."""
    stalled, exact_below = search.stalled, search.exact_below
    if (verdict.armijo or verdict.closer) and (proposal.exact or proposal.jumped):
        # the bids hold each station's budget multiplier: where the budget couples the steps
        # they can mislead, and a kept step may then barely move; two such steps in a row hand
        # back to smoothed steps until the residual halves
        stalled = stalled + 1 if verdict.res_new >= _STALL * verdict.res else 0
        if stalled >= 2:
            exact_below, stalled = 0.5 * verdict.res_new, 0
    expand = verdict.drift or (proposal.smooth and search.streak and verdict.predicted > 0
                               and verdict.gain > _EXPAND_RATIO * verdict.predicted)
    length = search.length * _EXPAND if expand else max(1.0, search.length / _EXPAND)
    delta = search.delta * (_DAMPING_DOWN if search.streak else 1.0)  # right after a rejection: keep the damping
    return replace(search, stalled=stalled, exact_below=exact_below, length=length, delta=delta, flat=False,
                   streak=True)


def on_rejection(ctx: AreaContext, kept: AreaState, tried: AreaState, search: Search, proposal: Proposal,
                 verdict: Verdict) -> tuple[AreaState, Search]:
    """The kept round's plans stay the result (with the trial's counts); the search goes on by the
    exact step from past an overshot breakpoint, by smoothed steps after a rejected exact one, or by
    a step at most half as long."""
    state = replace(kept, counts=tried.counts)
    search = replace(search, streak=False)
    if verdict.flat_trial or proposal.from_pivot:
        # a flat trial overshot the nearest station breakpoint; shorter damped steps would not
        # reach it (a flat dual does not shrink them by half but to nothing). Past the
        # breakpoint a station responds, and the exact step from there lands on it if that
        # response is linear: that is the next trial, then half this move along the same step
        search = replace(search, rejected=search.rejected + 1)
        if verdict.flat_trial:
            pivot = exact_trial(ctx, tried.last, search.floor, state.ceiling)
            search = replace(search, length=search.length * 0.5, pivot=pivot)
        return state, search
    search = replace(search, length=1.0)
    lam, r = state.last.prices, state.last.residual
    if proposal.exact:  # the active bounds were not yet right: smoothed steps until the residual halves
        search = replace(search, exact_below=0.5 * verdict.res)
        if search.flat:  # the kept replies carry only the (singular) exact sensitivity
            state = ask(ctx, state, lam, True, smoothing=smoothing(ctx, lam, r))
            search = replace(search, flat=False)
        return state, search
    free = (lam > 0) | (r > 0)
    half = 0.5 * float(np.max(np.abs(verdict.move), initial=0.0))
    delta = max(search.delta * _DAMPING_UP, float(np.max(np.abs(r[free]), initial=0.0)) / max(half, 1e-12))
    return state, replace(search, delta=delta, rejected=search.rejected + 1)
