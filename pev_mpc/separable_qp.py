"""All station QPs of one round in closed form, when each is separable over its steps (a StationPool).

With node weights 0 (the deadline objective) and p_min >= 0, a station's QP is

    min_p  sum_k eps p[k]^2 + a[k] p[k]   s.t.  lo[k] <= p[k] <= hi[k],  sum_k p[k] <= B

with a = linear + lambda and B = (cap - x0) / c: the SOC only rises, so the cap on every z[k] is the
cap on the last one. Its solution is p[k] = clip(-(a[k] + mu) / (2 eps), lo[k], hi[k]) with the
budget multiplier mu >= 0 found exactly on the piecewise-linear sum (one sort of the 2 d breakpoints
per station), so every round is a handful of (N, H) array operations. The sensitivity
-dp/dlambda = (D + kappa c^2 1 1^T)^{-1} (D: 2 eps plus the stiffness of active bounds; kappa: the
pin's) is a diagonal minus one rank-one term per station, summed in one matrix product; it is
exact (rigid bounds and pin) or smoothed exactly as ActiveSetStations smooths it
(docs/FORMULATION.md, "Coordination").
"""

from __future__ import annotations

import numpy as np

from pev_mpc.objective import StationCosts, station_costs
from pev_mpc.piecewise import clipped_sum_root
from pev_mpc.pool import Bids, PoolCapabilities, StationReplies, check_request, priced
from pev_mpc.problem import ChargingProblem
from pev_mpc.settings import MPCSettings

_NEWTON_STEPS = 2    # warm Newton steps on the budget equation before the exact sort
_BUDGET_TOL = 1e-12  # kW-steps per kW-step of budget: a Newton multiplier meets the budget to rounding


def separable(problem: ChargingProblem, costs: StationCosts) -> bool:
    """True if every station QP of problem is separable over its steps (SeparableStations applies)."""
    return bool(np.all(costs.node_weight == 0.0) and np.all(problem.p_min >= 0.0))


class SeparableStations:
    """Exact closed-form replies of every station (see the module docstring); a StationPool."""

    capabilities = PoolCapabilities(smoothing=True, exact=True, bids=True, slack_share=0.0)
    """Smoothed and exact sensitivities, bids with every reply; steps coupled only through the energy
    budget: a step neither priced nor overloaded stays rigid (slack_share 0)."""

    def __init__(self, problem: ChargingProblem, settings: MPCSettings, costs: StationCosts | None = None) -> None:
        self.problem, self.settings = problem, settings
        self.costs = station_costs(problem, settings) if costs is None else costs
        if not separable(problem, self.costs):
            lowest = float(np.min(problem.p_min, initial=0.0))
            raise ValueError("SeparableStations needs node weights 0 and p_min >= 0 (objective 'deadline'); "
                             f"objective = {settings.objective.name!r}, min p_min = {lowest}")
        self.n_stations, self.horizon = problem.n_stations, problem.horizon
        # every per-round computation runs on the stations that can draw power in the horizon (rows);
        # the others plan 0 whatever the prices
        self.rows = rows = np.flatnonzero(problem.mask.any(axis=1))
        self.c = problem.c
        self.m = problem.mask[rows]
        self.two_eps = 2.0 * self.costs.power_reg[rows, None]                        # (n, 1)
        self.lo, self.hi = problem.lower_plan()[rows], problem.upper_plan()[rows]
        self.budget = (self.costs.cap[rows] - problem.x0[rows]) / self.c
        self.linear = np.where(self.m, self.costs.linear[rows], 0.0)
        self.compliance = 1.0 / (2.0 * self.costs.power_reg)                        # (N,) kW per price unit
        self._raw: np.ndarray | None = None     # unclipped plans -(a + mu) / (2 eps) of the last solve (rows) ...
        self._p: np.ndarray | None = None       # ... and the plans (raw clipped to the bounds)
        self._mu = np.zeros(rows.size)         # budget multiplier (per kW of sum p)

    def solve(self, prices: np.ndarray) -> np.ndarray:
        """Plans p (N, H) minimising f_i + prices_i . p_i (exact); prices (H,) broadcast to every station,
        or (N, H), one price vector per station (a network's)."""
        prices = np.asarray(prices, dtype=float)
        a = self.linear + (prices[None, :] if prices.ndim == 1 else prices[self.rows])
        raw = -a / self.two_eps
        p = np.clip(raw, self.lo, self.hi)
        mu = np.zeros(self.rows.size)
        over = np.flatnonzero(p.sum(axis=1) > self.budget)
        if over.size:
            mu[over] = self._multiplier(over, a[over])
            raw[over] -= mu[over, None] / self.two_eps[over]
            p[over] = np.clip(raw[over], self.lo[over], self.hi[over])
        self._mu, self._raw, self._p = mu, raw, p
        return self._full(p)

    def _full(self, rows_only: np.ndarray) -> np.ndarray:
        """(N, H) from the rows' (n, H): 0 for the stations that cannot draw power."""
        out = np.zeros((self.n_stations, self.horizon))
        out[self.rows] = rows_only
        return out

    def _multiplier(self, rows: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Budget multipliers of stations rows (whose budget binds): a few Newton steps on the
        piecewise-linear budget equation from last round's multipliers (exact once the step stays on
        one piece), then clipped_sum_root's sort for the rows not settled."""
        te, lo, hi, budget = self.two_eps[rows], self.lo[rows], self.hi[rows], self.budget[rows]
        mu = self._mu[rows]
        tol = _BUDGET_TOL * (1.0 + budget)
        for newton in range(_NEWTON_STEPS + 1):
            raw = -(a + mu[:, None]) / te
            excess = np.clip(raw, lo, hi).sum(axis=1) - budget
            settled = (np.abs(excess) <= tol) & (mu > 0.0)
            if newton == _NEWTON_STEPS or settled.all():
                break
            n_free = np.sum((raw > lo) & (raw < hi), axis=1)
            mu = np.maximum(mu + np.divide(excess, n_free, out=np.zeros_like(excess), where=n_free > 0) * te[:, 0], 0.0)
        bad = np.flatnonzero(~settled)
        if bad.size:
            mu[bad] = clipped_sum_root(a[bad], te[bad], lo[bad], hi[bad], budget[bad])
        return mu

    def sensitivity(self, smoothing: np.ndarray | None = None) -> np.ndarray:
        """(H, H) sum_i -dp_i/dlambda at the last solve: exact (smoothing None) or smoothed: a bound
        with multiplier y has stiffness y / smoothing[k], the pin nu / (c max(smoothing)) (nu = mu / c)."""
        if self._raw is None:
            raise RuntimeError("SeparableStations.sensitivity() needs a prior solve()")
        if smoothing is None:
            return self._exact_sensitivity()
        raw, p = self._raw, self._p
        # u: compliance of each step (kW per price unit), 1 / (2 eps + stiffness of an active bound);
        # a bound's multiplier y = 2 eps |raw - p| (the distance beyond it) gives stiffness y / omega
        omega = np.maximum(np.asarray(smoothing, dtype=float), 1e-9)
        u = self.m / (self.two_eps * (1.0 + np.abs(raw - p) / omega[None, :]))
        pin = (self._mu / self.c) / (self.c * float(omega.max()))
        total = u.sum(axis=1)
        pin_c2 = pin * self.c**2
        beta = pin_c2 / (1.0 + pin_c2 * total)
        pinned = np.flatnonzero((pin_c2 > 0) & (total > 0))
        up, bp = u[pinned], beta[pinned, None]
        w = up * np.sqrt(bp)
        S = -(w.T @ w)
        # diagonal without cancellation: u (1 - beta u)
        np.fill_diagonal(S, u.sum(axis=0) - up.sum(axis=0) + np.sum(up * (1.0 - bp * up), axis=0))
        return S

    def _exact_sensitivity(self) -> np.ndarray:
        """The exact sensitivity: bounds and the budget rigid where active, so only the stations with a
        step strictly between its bounds contribute: 1 / (2 eps) on those steps, minus, for a binding
        budget, the rank-one term of the pin (diagonal u (total - u) / total, without cancellation)."""
        free = (self._raw < self.hi) & (self._raw > self.lo)  # masked steps: lo = hi = 0
        rows = np.flatnonzero(free.any(axis=1))
        u = free[rows] / self.two_eps[rows]
        total = u.sum(axis=1, keepdims=True)
        pinned = self._mu[rows] > 0.0
        w = u[pinned] / np.sqrt(total[pinned])
        S = -(w.T @ w)
        kept = np.where(pinned[:, None], (total - u) / total, 1.0)
        np.fill_diagonal(S, np.sum(u * kept, axis=0))
        return S

    def respond(self, prices: np.ndarray, want_sensitivity: bool = False, *, barrier: float = 0.0,
                smoothing: np.ndarray | None = None, exact: bool = False) -> StationReplies:
        """Every station's reply to the broadcast prices (StationPool protocol); never fails. The
        sensitivity is smoothed if smoothing is given, and then also reported exact if exact is set;
        every reply carries the bid curves (Bids: the unclipped plans, compliance 1 / (2 eps), the
        budget multipliers)."""
        check_request(self, barrier, smoothing, exact)
        prices = np.asarray(prices, dtype=float)
        p = self.solve(prices)
        value = self.costs.value(self.problem, p) + priced(p, prices)
        n = self.n_stations
        sensitivity = exact_s = None
        if want_sensitivity:
            sensitivity = self.sensitivity(smoothing)
            exact_s = sensitivity if smoothing is None else self.sensitivity() if exact else None
        multiplier = np.zeros(n)
        multiplier[self.rows] = self._mu
        return StationReplies(p=p, value=value, answered=np.ones(n, dtype=bool), failed=np.zeros(n, dtype=bool),
                              sensitivity=sensitivity, exact_sensitivity=exact_s,
                              bids=Bids(level=self._full(self._raw), compliance=self.compliance, multiplier=multiplier))


def bid_model(problem: ChargingProblem, settings: MPCSettings, prices: np.ndarray,
              replies: StationReplies, known_cap: np.ndarray | None = None) -> SeparableStations:
    """The stations' QPs as their replies to `prices` reveal them (the model market of 'newton'): a bid
    level = -(linear + lambda + mu) / (2 eps) with compliance 1 / (2 eps) and multiplier mu gives each
    station's linear cost and eps; a station whose budget binds (mu > 0) has used it all (its budget
    is its planned energy), and the budget of any other station is not known yet, so it is left out.
    Exact for every station whose budget binds; the coordinator clears this model market between
    exchanges (docs/FORMULATION.md, "Coordination"). known_cap: SOC caps revealed by earlier replies
    (inf where unknown), kept where the budget does not bind now."""
    bids, mask = replies.bids, problem.mask
    two_eps = 1.0 / bids.compliance
    prices = np.broadcast_to(np.asarray(prices, dtype=float), mask.shape)  # (H,) broadcast, or per station
    linear = np.where(mask, -bids.level * two_eps[:, None] - prices - bids.multiplier[:, None], 0.0)
    used = np.where(mask, replies.p, 0.0).sum(axis=1)
    cap = np.where(bids.multiplier > 0.0, problem.x0 + problem.c * used, np.inf if known_cap is None else known_cap)
    n = problem.n_stations
    costs = StationCosts(node_weight=np.zeros(mask.shape), linear=linear, power_reg=0.5 * two_eps, cap=cap,
                         offset=np.zeros(n))
    return SeparableStations(problem, settings, costs)
