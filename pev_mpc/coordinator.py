"""The area coordinator: dual price updates on the coupling sum_i p_i[k] <= P_ref[k].

It broadcasts prices lambda (H,) to the stations, receives their plans (and, for the dual
Newton update, each station's local price sensitivity -dp_i/dlambda summed over stations),
and updates lambda >= 0 until the area residual is within tolerance or the iteration cap is
reached. Where the replies carry bids, a step that Newton has not settled in model_after rounds
goes on by model-market exchanges (AreaCoordinator._bid_model). The applied plans are always
projected onto the area limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pev_mpc.objective import StationCosts, station_costs
from pev_mpc.piecewise import clipped_sum_root
from pev_mpc.pool import StationPool, StationReplies, ask_pool
from pev_mpc.problem import ChargingProblem
from pev_mpc.separable_qp import bid_model
from pev_mpc.settings import MPCSettings

_ARMIJO = 1e-4
_G_NOISE = 1e-9  # relative accuracy of the dual value (sum of station values solved to station_tol)
_DAMPING_DOWN = 0.1
_DAMPING_UP = 8.0
_BISECTION_STEPS = 60
_EXPAND_RATIO = 1.5     # a kept smoothed step that raised the dual this much more than the model predicted ...
_EXPAND = 4.0           # ... makes the next smoothed step this much longer
_EXACT_CONDITION = 1e8  # an exact sensitivity more ill-conditioned than this on the free prices is not used
_STALL = 0.99           # a kept exact or bid step whose KKT residual is above this share of the last stalls
_MODEL_EXCHANGES = 10   # model exchanges before the coordination hands back to Newton alone
_MODEL_TOL = 1e-2       # the model market is cleared to this share of primal_tol_kw and gap_tol


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


def dual_step_size(problem: ChargingProblem, settings: MPCSettings) -> float:
    """alpha = 1 / Lipschitz constant of the dual gradient = 1 / sum_i 1/mu_i."""
    if settings.step_size is not None:
        return float(settings.step_size)
    inv = np.sum(1.0 / station_costs(problem, settings).strong_convexity(problem))
    return 1.0 / inv if inv > 0 else 1.0


class AreaCoordinator:
    """Runs the price coordination of one control step against a StationPool."""

    def __init__(self, pool: StationPool, problem: ChargingProblem, settings: MPCSettings,
                 costs: StationCosts | None = None) -> None:
        """costs: the stations' objective as the coordinator values plans (default: settings.objective's)."""
        self.pool, self.problem, self.settings = pool, problem, settings
        N = problem.n_stations
        self._lower, self._upper = problem.lower_plan(), problem.upper_plan()  # plan bounds, (N, H)
        self._plan = self._lower.copy()    # last plan received from each station (safe default)
        self._stale = np.ones(N, dtype=bool)  # True where that plan does not answer the last prices asked
        self._fval = np.zeros(N)           # f_i of that plan as last reported
        self._iterations = self._messages = self._fallbacks = self._missing = self._gap_checks = 0
        self._trace: list[float] = []
        self._ceil: np.ndarray | None = None
        self._costs = station_costs(problem, settings) if costs is None else costs
        self._handover: tuple[np.ndarray, float, StationReplies] | None = None  # replies to the prices _newton returns
        self._exchanges = self._model_rounds = 0  # model exchanges, and the coordinator's own rounds on the model
        self._plugged = np.maximum(problem.mask.sum(axis=0), 1)  # stations that can draw power at each step
        # accuracy of the area residual: the station plans meet their budgets to solver precision
        self._kw_noise = _G_NOISE * max(1.0, float(np.max(np.abs(problem.P_ref), initial=0.0)))

    def _ceiling(self) -> np.ndarray:
        """(H,) upper bound on optimal prices; each station reports once the largest marginal value
        of its energy per step (H numbers)."""
        if self._ceil is None:
            raw = self._costs.price_ceiling(self.problem)
            self._ceil = np.where(raw > 0.0, raw * 1.01 + 1e-6, 0.0)  # zero: no station values power at k
            self._messages += self.problem.n_stations
        return self._ceil

    # ---- one round -----------------------------------------------------------------------
    def _round(self, prices: np.ndarray, want_sensitivity: bool, barrier: float = 0.0,
               smoothing: np.ndarray | None = None, exact: bool = False) -> tuple[np.ndarray, float, StationReplies]:
        """Broadcast prices (and a barrier > 0 for smoothed replies); return (area residual r (H,),
        dual value g, the replies).

        A station that does not answer keeps its last plan, valued at the new prices; the round is
        then repeated once (same prices) before the coordinator acts on it.
        """
        rep = ask_pool(self.pool, prices, want_sensitivity, barrier, smoothing, exact)
        if not rep.answered.all() and self._iterations + 1 < self.settings.max_iterations:
            self._count(rep, prices)
            rep = ask_pool(self.pool, prices, want_sensitivity, barrier, smoothing, exact)
        self._count(rep, prices)
        r = self._plan.sum(axis=0) - self.problem.P_ref
        g = float(self._fval.sum() + np.sum(self._plan @ prices) - prices @ self.problem.P_ref)
        return r, g, rep

    def _count(self, rep: StationReplies, prices: np.ndarray) -> None:
        """Record a round: keep the plans that arrived, count iterations, messages and failures."""
        ok = rep.answered
        self._plan[ok] = rep.p[ok]
        self._stale = ~ok
        self._fval[ok] = rep.value[ok] - rep.p[ok] @ prices
        self._iterations += 1
        self._messages += self.problem.n_stations + int(ok.sum())
        self._fallbacks += int(np.sum(rep.failed & ok))
        self._missing += int(np.sum(~ok))

    @staticmethod
    def _kkt_residual(prices: np.ndarray, r: np.ndarray) -> np.ndarray:
        """(H,) kW: |r| where the price is positive, the overload r^+ where it is zero."""
        return np.where(prices > 0, np.abs(r), np.maximum(r, 0.0))

    def _smoothing(self, prices: np.ndarray, r: np.ndarray) -> np.ndarray:
        """(H,) kW sent with the next prices: the KKT residual per station that can draw power at each
        step, at least the pool's `capabilities.slack_share` of |r|: for stations whose
        steps are coupled by their SOC chain (tracking), unused capacity at a zero price counts a little."""
        share = self.pool.capabilities.slack_share
        return np.maximum(self._kkt_residual(prices, r), share * np.abs(r)) / self._plugged

    def _residual(self, prices: np.ndarray, r: np.ndarray) -> float:
        return float(self._kkt_residual(prices, r).max(initial=0.0))

    def _stop(self, prices: np.ndarray, r: np.ndarray, step: np.ndarray | None, gap_ok: bool = False) -> bool:
        """Residual within tolerance and either (gap_ok) the dual gap certified or the price step small
        (step None: only the certificate counts)."""
        s = self.settings
        res = self._residual(prices, r)
        self._trace.append(res)
        scale = max(1.0, float(np.max(prices, initial=0.0)))
        small_step = step is not None and float(np.max(np.abs(step), initial=0.0)) <= s.price_tol * scale
        return res <= s.primal_tol_kw and (gap_ok or small_step)

    def _certified(self, lam: np.ndarray, r: np.ndarray, g: float, ceiling: np.ndarray) -> bool:
        """The dual gap of the applied (projected) plans is below gap_tol * max(1, |g|).

        g (concave) bounds the optimum from below, and the projected plans are feasible, so their
        objective minus g bounds their suboptimality. First the bound that needs no evaluation:
        lowering column k by its overload costs at most ceiling[k] per kW, so the gap is at most
        sum_k ceiling[k] r[k]^+ - lambda . r; if that does not certify, the stations value the projected
        plans (one more message each) and the exact gap decides.
        """
        tol = self.settings.gap_tol * max(1.0, abs(g))
        if float(np.sum(ceiling * np.maximum(r, 0.0) - lam * r)) <= tol:
            return True
        if self._residual(lam, r) > self.settings.primal_tol_kw:
            return False
        projected = project_to_limit(self._plan, self._lower, self.problem.P_ref)
        self._messages += 2 * self.problem.n_stations
        self._gap_checks += 1
        return float(self._costs.value(self.problem, projected).sum()) - g <= tol

    # ---- methods -------------------------------------------------------------------------
    def _newton(self, lam: np.ndarray, rejections: int | None = None,
                rounds: int | None = None) -> tuple[np.ndarray, bool]:
        """Projected dual Newton on 0 <= lambda <= ceiling with barrier-smoothed sensitivities.

        The step solves (S_FF + delta I) step_F = r_F on the free prices F (positive price or overload),
        S = sum_i -dp_i/dlambda as reported by the stations, which smooth it with the last round's
        |residual| (docs/FORMULATION.md): at a kink of the piecewise-quadratic dual, where the exact S is
        singular, the smoothed S still tells how far the nearest station bound is. Where the pool also
        reports the exact S and bid curves (Bids), two steps use them:
        - the exact Newton step on the free prices some station responds to, once the exact S is
          regular there (it lands on the optimum as soon as the active bounds are right);
        - a free price no station responds to moves at least to where its step clears on the
          stations' bid curves (_clear_rigid); the exact step leaves such prices to this alone.
        Both hold each station's budget multiplier, so where budgets couple the steps they can
        mislead: after a rejected exact step, or two kept exact or bid steps in a row that left the
        KKT residual where it was, smoothed steps follow until the residual halves. A kept smoothed
        step that raised the dual far more than its quadratic model predicted (a nearly linear stretch,
        e.g. a direction no station responds to before its budget multiplier is crossed) makes the
        next smoothed step longer.
        A step is kept only if it raises the dual value enough (Armijo), or, below the accuracy of the
        dual value, does not lower it and halves the KKT residual (an exact step must do one of the
        two), or, once the residual is within primal_tol_kw but the gap not yet certified, for a
        smoothed step whose first-order gain r . move is itself below that accuracy, does not lower
        it and does not raise the KKT residual beyond the accuracy of the plans (the next step is then
        longer: an Armijo test in the noise of g would only shrink such steps to nothing; such a step
        that is rejected overshot a breakpoint: past it a station responds, so the next trial is the
        exact step from the rejected prices, which lands on the breakpoint where that response is
        linear, and the one after it half the rejected step); any other rejected step's plans are
        discarded and delta is raised so that the next step is at most half as long. Converged:
        residual within primal_tol_kw and the dual gap of the applied plans certified below
        gap_tol * |g| (_certified). A small Newton step alone is no certificate here: on a nearly
        piecewise-linear dual it can be small far from the optimum. Stops unconverged after
        max_iterations rounds in all, after `rejections` rejected steps or once `rounds` rounds in all
        were held (None: no limit; the replies to the returned prices are then kept in _handover).
        """
        s = self.settings
        ceiling = self._ceiling()
        rejected = 0
        lam = np.minimum(lam, ceiling)
        r, g, rep = self._round(lam, True)  # no residual known yet: the exact sensitivity
        free = (lam > 0) | (r > 0)
        flat = np.any(free) and np.min(np.diag(rep.sensitivity)[free]) <= 0.0
        if flat and not (self._exact_regular(rep, free & self._responding(rep))
                         or self._residual(lam, r) <= s.primal_tol_kw and self._certified(lam, r, g, ceiling)):
            # no station responds to some free price (every bound there rigid) and no bids say how far
            # its next bound is: the exact Newton step is undefined, so the stations are asked again
            # (same prices) for the smoothed sensitivity
            r, g, rep = self._round(lam, True, smoothing=self._smoothing(lam, r))
            flat = False
        floor = 1e-9 * max(float(np.max(np.diag(rep.sensitivity), initial=0.0)), 1e-12)
        delta = floor
        streak = True  # the last trial was kept (only then does the damping shrink, or do bids move prices)
        exact_below = np.inf  # exact steps are tried while the KKT residual is below this
        stalled = 0           # kept exact or bid steps in a row that left the residual where it was
        length = 1.0          # multiplies smoothed steps (grows along nearly linear stretches of the dual)
        pivot: np.ndarray | None = None  # next trial prices, from the far side of an overshot breakpoint
        while True:
            free = (lam > 0) | (r > 0)
            responding = self._responding(rep)
            res = self._residual(lam, r)
            if self._stop(lam, r, None, self._certified(lam, r, g, ceiling)):
                return lam, True
            if self._iterations >= s.max_iterations or (rejections is not None and rejected >= rejections):
                return lam, False
            if rounds is not None and self._iterations >= rounds and rep.bids is not None and rep.answered.all():
                self._handover = r, g, rep
                return lam, False
            fresh = streak and res < exact_below  # the exact and bid steps may be tried
            from_pivot = pivot is not None
            if from_pivot:  # the exact step from past a breakpoint that a flat trial overshot (below)
                new, exact, jumped, smooth_step, pivot = pivot, True, False, False, None
            else:
                exact = fresh and self._exact_regular(rep, free & responding)
                step, jumped = self._step(lam, r, rep, free, responding, floor if exact else delta, exact, fresh)
                smooth_step = not (exact or jumped)
                new = np.clip(lam + (length if smooth_step else 1.0) * step, 0.0, ceiling)
            move = new - lam
            predicted = float(r @ move) - 0.5 * float(move @ rep.sensitivity @ move)
            kept = self._plan.copy(), self._fval.copy(), self._stale
            r_new, g_new, rep_new = self._round(new, True, smoothing=self._smoothing(lam, r),
                                                exact=True)
            res_new = self._residual(new, r_new)
            armijo = g_new >= g + _ARMIJO * float(r @ move) - 1e-12 * abs(g)
            # below the noise of g (station tolerances), a step that does not lower g and shrinks the
            # KKT residual is kept too (an exact step must do one of them)
            closer = g_new >= g - _G_NOISE * abs(g) and res_new < 0.5 * res
            if exact and g_new - g <= _G_NOISE * abs(g):
                armijo = False
            # feasible within tolerance but not yet certified: a smoothed step whose first-order gain g
            # cannot resolve (a nearly flat stretch of the dual, e.g. a tiny overload that only a
            # far-away budget multiplier clears) is judged by the KKT residual: kept if that does not
            # grow beyond the accuracy of the plans, and the next step is longer
            flat_trial = smooth_step and res <= s.primal_tol_kw and abs(float(r @ move)) <= _G_NOISE * abs(g)
            drift = flat_trial and g_new >= g - _G_NOISE * abs(g) and res_new <= res + self._kw_noise
            if (armijo or closer) and (exact or jumped):
                # the bids hold each station's budget multiplier: where the budget couples the steps
                # they can mislead, and a kept step may then barely move; two such steps in a row hand
                # back to smoothed steps until the residual halves
                stalled = stalled + 1 if res_new >= _STALL * res else 0
                if stalled >= 2:
                    exact_below, stalled = 0.5 * res_new, 0
            if armijo or closer or drift:
                expand = drift or smooth_step and streak and predicted > 0 and g_new - g > _EXPAND_RATIO * predicted
                length = length * _EXPAND if expand else max(1.0, length / _EXPAND)
                lam, r, g, rep = new, r_new, g_new, rep_new
                flat = False
                delta *= _DAMPING_DOWN if streak else 1.0  # right after a rejection: keep the damping
                streak = True
            else:  # rejected: the plans answering lam stay the result
                self._plan, self._fval, self._stale = kept
                streak = False
                if flat_trial or from_pivot:
                    # a flat trial overshot the nearest station breakpoint; shorter damped steps would not
                    # reach it (a flat dual does not shrink them by half but to nothing). Past the
                    # breakpoint a station responds, and the exact step from there lands on it if that
                    # response is linear: that is the next trial, then half this move along the same step
                    rejected += 1
                    if flat_trial:
                        length *= 0.5
                        pivot = self._exact_trial(new, r_new, rep_new, floor, ceiling)
                    continue
                length = 1.0
                if exact:  # the active bounds were not yet right: smoothed steps until the residual halves
                    exact_below = 0.5 * res
                    if flat:  # the kept replies carry only the (singular) exact sensitivity
                        r, g, rep = self._round(lam, True, smoothing=self._smoothing(lam, r))
                        flat = False
                    continue
                half = 0.5 * float(np.max(np.abs(move), initial=0.0))
                delta = max(delta * _DAMPING_UP, float(np.max(np.abs(r[free]), initial=0.0)) / max(half, 1e-12))
                rejected += 1

    def _exact_trial(self, lam: np.ndarray, r: np.ndarray, rep: StationReplies, floor: float,
                     ceiling: np.ndarray) -> np.ndarray | None:
        """lam plus the exact Newton step from the replies rep to lam (None where it is undefined)."""
        free, responding = (lam > 0) | (r > 0), self._responding(rep)
        if not self._exact_regular(rep, free & responding):
            return None
        step, _ = self._step(lam, r, rep, free, responding, floor, True, True)
        return np.clip(lam + step, 0.0, ceiling)

    def _step(self, lam: np.ndarray, r: np.ndarray, rep: StationReplies, free: np.ndarray, responding: np.ndarray,
              damping: float, exact: bool, bids: bool) -> tuple[np.ndarray, bool]:
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
        moved = self._clear_rigid(lam, r, free & ~responding, rep, step)
        return moved, moved is not step

    @staticmethod
    def _exact_regular(rep: StationReplies, part: np.ndarray) -> bool:
        """The replies carry an exact sensitivity that is regular on the prices `part` (condition
        number below _EXACT_CONDITION; trivially so if part is empty) and, for the other free prices,
        the bid curves: only then is the exact Newton step defined."""
        exact = rep.exact_sensitivity
        if exact is None or rep.bids is None or not rep.answered.all():
            return False
        if not np.any(part):
            return True
        size = np.abs(np.linalg.eigvalsh(exact[np.ix_(part, part)]))  # symmetric: its singular values
        return bool(size.max() < _EXACT_CONDITION * size.min())

    def _responding(self, rep: StationReplies) -> np.ndarray:
        """(H,) bool: some station's bid is strictly between its bounds at step k (True where no bids)."""
        if rep.bids is None:
            return np.ones(self.problem.horizon, dtype=bool)
        level = rep.bids.level
        return np.any((level > self._lower) & (level < self._upper), axis=0)

    def _clear_rigid(self, lam: np.ndarray, r: np.ndarray, rigid: np.ndarray, rep: StationReplies,
                     step: np.ndarray) -> np.ndarray:
        """step, with every rigid free price (no station responds to it: each is at a bound there)
        moved at least to where its step clears on the stations' bid curves (Bids, the other prices
        held): up where the step is overloaded, down (not below 0) where a positive price leaves power
        unused. The Newton model cannot see how far such a price is from the next station bound; the
        bids can."""
        bids = rep.bids
        if bids is None or not rep.answered.all():
            return step
        level, lower, upper = bids.level, self._lower, self._upper
        up = rigid & (r > 0)
        down = rigid & (r < 0) & (lam > 0)
        if not (up.any() or down.any()):
            return step
        step = step.copy()
        scale = (1.0 / bids.compliance)[None, :]  # price units per kW, (1, N)
        ref = self.problem.P_ref
        if up.any():  # sum_i clip(level - delta compliance, lower, upper) = P_ref: delta >= 0
            k = np.flatnonzero(up)
            shift = clipped_sum_root(-level[:, k].T * scale, scale, lower[:, k].T, upper[:, k].T, ref[k])
            step[k] = np.maximum(step[k], shift)
        if down.any():  # the same with the signs flipped: sum_i clip(level + delta compliance, ...) = P_ref
            k = np.flatnonzero(down)
            shift = clipped_sum_root(level[:, k].T * scale, scale, -upper[:, k].T, -lower[:, k].T, -ref[k])
            step[k] = np.minimum(step[k], -np.minimum(shift, lam[k]))
        return step

    def _bid_model(self, lam: np.ndarray) -> tuple[np.ndarray, bool]:
        """Newton ('newton') for model_after rounds; then each exchange broadcasts the prices that
        clear the model market of the last replies (separable_qp.bid_model: every station's QP as its
        bid curve and budget multiplier reveal it, the budgets that do not bind yet left out), found by
        the coordinator alone ('newton' on the model, at most model_rounds rounds, no messages). The
        model is exact for every station whose budget binds, so the exchanges only have to discover
        the budgets that come to bind. Converged as 'newton' (_certified). Newton goes on by itself
        where the replies carry no bids or miss a station, and takes over again after _MODEL_EXCHANGES
        exchanges without convergence or once the model's rounds leave the prices where they were."""
        s = self.settings
        lam, converged = self._newton(lam, rounds=s.model_after)
        if converged or self._handover is None:
            return lam, converged
        (r, g, rep), ceiling = self._handover, self._ceiling()
        inner = s.replace(coordination="newton", model_after=None, max_iterations=s.model_rounds,
                        primal_tol_kw=_MODEL_TOL * s.primal_tol_kw,
                        gap_tol=_MODEL_TOL * s.gap_tol)
        while True:
            if self._stop(lam, r, None, self._certified(lam, r, g, ceiling)):
                return lam, True
            if self._iterations >= s.max_iterations:
                return lam, False
            if self._exchanges == _MODEL_EXCHANGES or rep.bids is None or not rep.answered.all():
                return self._newton(lam)
            model = bid_model(self.problem, s, lam, rep)
            cleared = AreaCoordinator(model, self.problem, inner, costs=model.costs).run(lam)
            self._model_rounds += cleared.iterations
            if np.array_equal(cleared.prices, lam):  # the model's rounds did not get past its first reply
                return self._newton(lam)
            lam = cleared.prices
            r, g, rep = self._round(lam, False)
            self._exchanges += 1

    def _smoothed(self, lam: np.ndarray) -> np.ndarray:
        """Barrier continuation: Newton with backtracking on the dual of the log-barrier-smoothed
        station QPs (smooth and strictly concave, well-conditioned sensitivity), the barrier tau
        shrinking geometrically from barrier_start to barrier_end (times the largest price ceiling)
        once a level is solved; returns the prices to start the exact Newton from."""
        s = self.settings
        ceiling = self._ceiling()
        lam = np.minimum(lam, ceiling)
        top = float(ceiling.max(initial=0.0))
        tau = s.barrier_start * top
        while self._iterations < s.max_iterations - 1:
            lam = self._newton_level(lam, ceiling, tau)
            if tau <= s.barrier_end * top:
                return lam
            tau *= s.barrier_shrink
        return lam

    def _newton_level(self, lam: np.ndarray, ceiling: np.ndarray, tau: float) -> np.ndarray:
        """Newton with backtracking on the tau-smoothed dual until the Newton decrement r.step is
        below barrier_accuracy * tau (or the level's round budget is used)."""
        s = self.settings
        last = min(s.max_iterations - 1, self._iterations + s.barrier_rounds)
        r, g, rep = self._round(lam, True, barrier=tau)
        S = rep.sensitivity
        t = 1.0
        while self._iterations < last:
            free = (lam > 0) | (r > 0)
            if not np.any(free):
                break
            Sf = S[np.ix_(free, free)]
            step = np.zeros_like(lam)
            step[free] = np.linalg.solve(Sf + 1e-12 * max(np.trace(Sf), 1e-12) * np.eye(Sf.shape[0]), r[free])
            if float(r[free] @ step[free]) <= s.barrier_accuracy * tau:
                break
            new = np.clip(lam + t * step, 0.0, ceiling)
            r_new, g_new, rep = self._round(new, True, barrier=tau)
            if g_new >= g + _ARMIJO * float(r @ (new - lam)) - 1e-12 * abs(g):
                lam, r, g, S = new, r_new, g_new, rep.sensitivity
                t = min(1.0, 4.0 * t)
            else:
                t *= 0.25
        return lam

    def _gradient(self, lam: np.ndarray, accelerated: bool) -> tuple[np.ndarray, bool]:
        s = self.settings
        alpha = dual_step_size(self.problem, s)
        prev, t_k, query = lam.copy(), 1.0, lam.copy()
        while True:
            r, _, _ = self._round(query, False)
            new = np.maximum(query + alpha * r, 0.0)
            if self._stop(query, r, new - query):
                return query, True
            if self._iterations >= s.max_iterations:
                return query, False
            if accelerated:
                t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t_k**2))
                query = np.maximum(new + (t_k - 1.0) / t_next * (new - prev), 0.0)
                prev, t_k = new, t_next
            else:
                query = new

    def run(self, warm_prices: np.ndarray | None = None) -> CoordinationResult:
        """Coordinate from warm_prices (H,) (zeros if None) and return projected plans and prices."""
        H = self.problem.horizon
        lam = np.zeros(H) if warm_prices is None else np.maximum(np.asarray(warm_prices, dtype=float), 0.0)
        if lam.shape != (H,):
            raise ValueError(f"warm_prices has shape {lam.shape}: must be ({H},)")
        lam[lam <= self.settings.price_tol * max(1.0, float(np.max(lam, initial=0.0)))] = 0.0  # solver noise
        method = self.settings.coordination.method
        if method == "smoothed-newton" and self.pool.capabilities.barrier:
            lam, converged = self._newton(lam, self.settings.smoothing_after)
            if not converged and self._iterations < self.settings.max_iterations:
                lam, converged = self._newton(self._smoothed(lam))
        elif method == "newton" and self.settings.model_after is not None and self.pool.capabilities.bids:
            lam, converged = self._bid_model(lam)
        elif method in ("newton", "smoothed-newton"):
            lam, converged = self._newton(lam)
        else:
            lam, converged = self._gradient(lam, accelerated=method == "nesterov")
        residual = self._trace[-1] if self._trace else np.inf
        p = project_to_limit(self._plan, self._lower, self.problem.P_ref)
        converged = converged and not self._stale.any()  # a plan that never answered the prices is no optimum
        return CoordinationResult(p=p, prices=lam, iterations=self._iterations, converged=converged,
                                  residual_kw=float(residual), messages=self._messages, fallbacks=self._fallbacks,
                                  missing_replies=self._missing, history={"residual_kw": list(self._trace),
                                                                    "gap_checks": self._gap_checks,
                                                                    "model_exchanges": self._exchanges,
                                                                    "model_rounds": self._model_rounds})
