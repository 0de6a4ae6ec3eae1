"""The Newton step of the area prices from one round's replies: damped on the free prices with the
smoothed or the exact sensitivity, and the rigid prices (no station responds to them) moved by the
stations' bid curves. Pure functions of the replies; the Newton loop (`area_newton`) decides which step
to try and whether to keep it."""

from __future__ import annotations

import numpy as np

from pev_mpc.area_state import AreaContext, Round
from pev_mpc.piecewise import clipped_sum_root
from pev_mpc.pool import StationReplies

EXACT_CONDITION = 1e8
"""An exact sensitivity more ill-conditioned than this on the free prices is not used."""


def newton_step(ctx: AreaContext, lam: np.ndarray, r: np.ndarray, rep: StationReplies, free: np.ndarray,
                responding: np.ndarray, damping: float, exact: bool, bids: bool) -> tuple[np.ndarray, bool]:
    """The Newton step from lam: (S_FF + damping I) step_F = r_F on the free prices F with the exact
    sensitivity (exact: only on the prices some station responds to) or the smoothed one; with
    bids, the rigid free prices moved at least to where they clear on the bid curves. Returns the
    step and whether the bids moved it."""
    part = free & responding if exact else free  # exact: the rigid prices move by their bids alone
    step = np.zeros_like(lam)
    if np.any(part):
        S_part = (rep.exact_sensitivity if exact else rep.sensitivity)[np.ix_(part, part)]
        step[part] = np.linalg.solve(S_part + damping * np.eye(S_part.shape[0]), r[part])
    if not bids:
        return step, False
    moved = clear_rigid(ctx, lam, r, free & ~responding, rep, step)
    return moved, moved is not step


def exact_trial(ctx: AreaContext, last: Round, floor: float, ceiling: np.ndarray) -> np.ndarray | None:
    """The round's prices plus the exact Newton step from its replies (None where it is undefined)."""
    lam, r, rep = last.prices, last.residual, last.replies
    free, responds = (lam > 0) | (r > 0), responding(ctx, rep)
    if not exact_regular(rep, free & responds):
        return None
    step, _ = newton_step(ctx, lam, r, rep, free, responds, floor, True, True)
    return np.clip(lam + step, 0.0, ceiling)


def exact_regular(rep: StationReplies, part: np.ndarray) -> bool:
    """The replies carry an exact sensitivity that is regular on the prices `part` (condition
    number below EXACT_CONDITION; trivially so if part is empty) and, for the other free prices,
    the bid curves: only then is the exact Newton step defined."""
    exact = rep.exact_sensitivity
    if exact is None or rep.bids is None or not rep.answered.all():
        return False
    if not np.any(part):
        return True
    size = np.abs(np.linalg.eigvalsh(exact[np.ix_(part, part)]))  # symmetric: its singular values
    return bool(size.max() < EXACT_CONDITION * size.min())


def responding(ctx: AreaContext, rep: StationReplies) -> np.ndarray:
    """(H,) bool: some station's bid is strictly between its bounds at step k (True where no bids)."""
    if rep.bids is None:
        return np.ones(ctx.problem.horizon, dtype=bool)
    level = rep.bids.level
    return np.any((level > ctx.lower) & (level < ctx.upper), axis=0)


def clear_rigid(ctx: AreaContext, lam: np.ndarray, r: np.ndarray, rigid: np.ndarray, rep: StationReplies,
                step: np.ndarray) -> np.ndarray:
    """step, with every rigid free price (no station responds to it: each is at a bound there)
    moved at least to where its step clears on the stations' bid curves (Bids, the other prices
    held): up where the step is overloaded, down (not below 0) where a positive price leaves power
    unused. The Newton model cannot see how far such a price is from the next station bound; the
    bids can."""
    bids = rep.bids
    if bids is None or not rep.answered.all():
        return step
    level, lower, upper = bids.level, ctx.lower, ctx.upper
    up = rigid & (r > 0)
    down = rigid & (r < 0) & (lam > 0)
    if not (up.any() or down.any()):
        return step
    step = step.copy()
    scale = (1.0 / bids.compliance)[None, :]  # price units per kW, (1, N)
    ref = ctx.problem.P_ref
    if up.any():  # sum_i clip(level - delta compliance, lower, upper) = P_ref: delta >= 0
        k = np.flatnonzero(up)
        shift = clipped_sum_root(-level[:, k].T * scale, scale, lower[:, k].T, upper[:, k].T, ref[k])
        step[k] = np.maximum(step[k], shift)
    if down.any():  # the same with the signs flipped: sum_i clip(level + delta compliance, ...) = P_ref
        k = np.flatnonzero(down)
        shift = clipped_sum_root(level[:, k].T * scale, scale, -upper[:, k].T, -lower[:, k].T, -ref[k])
        step[k] = np.minimum(step[k], -np.minimum(shift, lam[k]))
    return step
