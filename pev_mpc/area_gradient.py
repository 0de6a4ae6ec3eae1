"""'gradient' and 'nesterov': projected (accelerated) gradient ascent on the dual of the area prices."""

from __future__ import annotations

import numpy as np

from pev_mpc.area_state import AreaContext, AreaState, ask, stop
from pev_mpc.objective import station_costs
from pev_mpc.problem import ChargingProblem
from pev_mpc.settings import MPCSettings


def dual_step_size(problem: ChargingProblem, settings: MPCSettings) -> float:
    """alpha = 1 / Lipschitz constant of the dual gradient = 1 / sum_i 1/mu_i."""
    if settings.step_size is not None:
        return float(settings.step_size)
    inv = np.sum(1.0 / station_costs(problem, settings).strong_convexity(problem))
    return 1.0 / inv if inv > 0 else 1.0


def gradient(ctx: AreaContext, state: AreaState, lam: np.ndarray, accelerated: bool) -> tuple[AreaState, bool]:
    """Gradient steps lambda + alpha r from lam (Nesterov's momentum if accelerated) until the residual is
    within primal_tol_kw and the step below price_tol, or max_iterations rounds; the final state (its last
    round at the prices it ends on) and whether it converged."""
    s = ctx.settings
    alpha = dual_step_size(ctx.problem, s)
    prev, t_k, query = lam.copy(), 1.0, lam.copy()
    while True:
        state = ask(ctx, state, query, False)
        new = np.maximum(query + alpha * state.last.residual, 0.0)
        state, done = stop(ctx, state, new - query)
        if done:
            return state, True
        if state.counts.rounds >= s.max_iterations:
            return state, False
        if accelerated:
            t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t_k**2))
            query = np.maximum(new + (t_k - 1.0) / t_next * (new - prev), 0.0)
            prev, t_k = new, t_next
        else:
            query = new
