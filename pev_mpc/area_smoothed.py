"""'smoothed-newton' for pools that smooth their QPs (capabilities.barrier): Newton until smoothing_after
steps were rejected, then a barrier continuation (`smoothed`): Newton with backtracking on the dual of
the log-barrier-smoothed station QPs (smooth and strictly concave, well-conditioned sensitivity), one
barrier level at a time (`newton_level`), and the exact Newton from its prices."""

from __future__ import annotations

import numpy as np

from pev_mpc.area_newton import newton
from pev_mpc.area_state import ARMIJO, AreaContext, AreaState, ask, with_ceiling


def smoothed_newton(ctx: AreaContext, state: AreaState, lam: np.ndarray) -> tuple[AreaState, bool]:
    """Coordinate from lam: Newton, the barrier continuation where it did not converge, Newton again;
    the final state and whether it converged."""
    state, outcome = newton(ctx, state, lam, ctx.settings.smoothing_after)
    if outcome == "converged" or state.counts.rounds >= ctx.settings.max_iterations:
        return state, outcome == "converged"
    state, lam = smoothed(ctx, state, state.last.prices)
    state, outcome = newton(ctx, state, lam)
    return state, outcome == "converged"


def smoothed(ctx: AreaContext, state: AreaState, lam: np.ndarray) -> tuple[AreaState, np.ndarray]:
    """Barrier continuation from lam, the barrier tau shrinking geometrically from barrier_start to
    barrier_end (times the largest price ceiling) once a level is solved; returns the state and the
    prices to start the exact Newton from."""
    s = ctx.settings
    state = with_ceiling(ctx, state)
    lam = np.minimum(lam, state.ceiling)
    top = float(state.ceiling.max(initial=0.0))
    tau = s.barrier_start * top
    while state.counts.rounds < s.max_iterations - 1:
        state, lam = newton_level(ctx, state, lam, tau)
        if tau <= s.barrier_end * top:
            return state, lam
        tau *= s.barrier_shrink
    return state, lam


def newton_level(ctx: AreaContext, state: AreaState, lam: np.ndarray, tau: float) -> tuple[AreaState, np.ndarray]:
    """Newton with backtracking on the tau-smoothed dual from lam until the Newton decrement r.step is
    below barrier_accuracy * tau (or the level's round budget is used); the state and the last kept
    prices (the state's last round may be a rejected trial)."""
    s = ctx.settings
    last = min(s.max_iterations - 1, state.counts.rounds + s.barrier_rounds)
    state = ask(ctx, state, lam, True, barrier=tau)
    r, g, S = state.last.residual, state.last.dual, state.last.replies.sensitivity
    t = 1.0
    while state.counts.rounds < last:
        free = (lam > 0) | (r > 0)
        if not np.any(free):
            break
        Sf = S[np.ix_(free, free)]
        step = np.zeros_like(lam)
        step[free] = np.linalg.solve(Sf + 1e-12 * max(np.trace(Sf), 1e-12) * np.eye(Sf.shape[0]), r[free])
        if float(r[free] @ step[free]) <= s.barrier_accuracy * tau:
            break
        new = np.clip(lam + t * step, 0.0, state.ceiling)
        state = ask(ctx, state, new, True, barrier=tau)
        if state.last.dual >= g + ARMIJO * float(r @ (new - lam)) - 1e-12 * abs(g):
            lam, r, g, S = new, state.last.residual, state.last.dual, state.last.replies.sensitivity
            t = min(1.0, 4.0 * t)
        else:
            t *= 0.25
    return state, lam
