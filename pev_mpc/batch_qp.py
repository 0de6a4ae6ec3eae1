"""All station QPs of one coordination round in one vectorised solve: interior point (BatchStations)
or warm-started active set (ActiveSetStations, the default pool; see its docstring).

Each station's subproblem min f_i(p_i) + lambda . p_i stays separate: it is written in its SOC
trajectory z_i[k] = x_i[k+1] (kWh), where f_i is a tridiagonal quadratic and every constraint
touches at most two consecutive z's (p_i[k] = (z_i[k] - z_i[k-1]) / c, z_i[k] <= s_i). A
Mehrotra predictor-corrector interior-point method then needs one tridiagonal factorisation
per iteration (vectorised over stations, cancellation-free) and LAPACK dpttrs solves on the
stacked block-diagonal system and
every other operation is a numpy array operation over (N, H). Step lengths, stopping and
failure flags are per station. Entries k >= d_i are dummy variables decoupled from the rest.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dpttrs

from pev_mpc.objective import station_costs
from pev_mpc.pool import PoolCapabilities, StationReplies, check_request, priced, station_rows
from pev_mpc.problem import ChargingProblem
from pev_mpc.settings import MPCSettings
from pev_mpc.station_qp import StationQP

_STEP_FRACTION = 0.995
_SENSITIVITY_CHUNK = 2048  # stations per block of the sensitivity solve (bounds memory to ~40 MB at H = 48)


def _in_series(q: np.ndarray, e: np.ndarray) -> np.ndarray:
    """q e / (q + e) (two springs in series) without overflow: the smaller over 1 + smaller/larger."""
    small, large = np.minimum(q, e), np.maximum(q, e)
    ratio = np.divide(small, large, out=np.zeros_like(small), where=large > 0)
    return small / (1.0 + ratio)


def _shift_right(v: np.ndarray, first: np.ndarray | float) -> np.ndarray:
    out = np.empty_like(v)
    out[:, 0] = first
    out[:, 1:] = v[:, :-1]
    return out


class BatchStations:
    """Vectorised exact solver of all stations' local QPs for given prices (a StationPool)."""

    def __init__(self, problem: ChargingProblem, settings: MPCSettings) -> None:
        self.problem, self.settings = problem, settings
        N, H = problem.n_stations, problem.horizon
        self.n_stations, self.horizon = N, H
        self.c = problem.c
        self.costs = station_costs(problem, settings)
        self.eps = self.costs.power_reg[:, None]                    # (N, 1) eps_i
        self.m = problem.mask.astype(float)
        self.n_rows = np.maximum(3 * problem.d, 1).astype(float)
        # objective weights on z (dummy entries: weight 1, target 0 -> z = 0)
        self.w = np.where(self.m > 0, self.costs.node_weight, 1.0)
        self.linear = self.costs.linear
        self.target = np.where(self.m > 0, problem.r[:, None], 0.0)
        self.x0 = problem.x0[:, None]
        self.pmin = problem.p_min[:, None]
        self.pmax = problem.p_max[:, None]
        self.s = self.costs.cap[:, None]
        self._theta: tuple[np.ndarray, np.ndarray] | None = None  # (q, a) of the last KKT matrix
        self._safe = problem.lower_plan()  # fallback plans: last solved plan, else p_min while plugged

    # ---- linear maps -------------------------------------------------------------------
    def _power(self, z: np.ndarray) -> np.ndarray:
        return self.m * (z - _shift_right(z, self.x0[:, 0])) / self.c

    def _dpower(self, dz: np.ndarray) -> np.ndarray:
        return self.m * (dz - _shift_right(dz, 0.0)) / self.c

    def _adjoint(self, v: np.ndarray) -> np.ndarray:
        """D^T v for masked v (per-step values, kW-side) -> z-side."""
        out = v.copy()
        out[:, :-1] -= v[:, 1:]
        return out / self.c

    def _kkt_matrix(self, theta_u: np.ndarray, theta_l: np.ndarray, theta_c: np.ndarray):
        """The KKT matrix K = diag(a) + D^T diag(q) D / (per station), as (q, a); q[:, 0] couples z[0] to x0."""
        q = self.m * (2.0 * self.eps + theta_u + theta_l) / self.c**2
        return q, 2.0 * self.w + theta_c

    @staticmethod
    def _factor(q: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """LDL^T of the stacked tridiagonal K in LAPACK dpttrf format, computed without cancellation.

        Pivot d[k] = e[k] + q[k+1] with e[k] = a[k] + q[k] e[k-1] / (q[k] + e[k-1]) (springs in series),
        so stiff chains (active bounds, y/s -> inf) keep every pivot accurate and positive.
        """
        n, H = q.shape
        piv = np.empty((n, H))
        mult = np.zeros((n, H))
        e = a[:, 0] + q[:, 0]
        for k in range(H):
            if k > 0:
                e = a[:, k] + _in_series(q[:, k], e)
                mult[:, k] = -q[:, k] / piv[:, k - 1]
            piv[:, k] = e + (q[:, k + 1] if k + 1 < H else 0.0)
        return piv.ravel(), mult.ravel()[1:]

    # ---- solve -------------------------------------------------------------------------
    def solve(self, prices: np.ndarray, barrier: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Plans p (N, H) minimising f_i + prices . p_i, and a per-station converged flag (N,).

        barrier > 0 (objective units): minimise f_i + prices . p_i - barrier * sum log(slacks) instead
        (fixed-barrier mode: the iterates are driven to the central point slack * multiplier = barrier).
        """
        return self._interior_point(prices, barrier)

    def _interior_point(self, prices: np.ndarray, barrier: float) -> tuple[np.ndarray, np.ndarray]:
        """The vectorised interior point behind solve (every subclass's barrier replies)."""
        m, c, N, H = self.m, self.c, self.n_stations, self.horizon
        prices = np.asarray(prices, dtype=float)
        lam = m * ((prices[None, :] if prices.ndim == 1 else prices) + self.linear)
        tol = self.settings.station_tol
        p0 = m * np.clip(0.5 * (self.pmin + self.pmax), self.pmin, self.pmax)
        z = np.where(m > 0, self.x0 + c * np.cumsum(p0, axis=1), 0.0)
        sU = np.maximum(m * (self.pmax - p0), 1.0)
        sL = np.maximum(m * (p0 - self.pmin), 1.0)
        sC = np.maximum(m * (self.s - z), 1.0)
        yU, yL, yC = m.copy(), m.copy(), m.copy()
        active = np.ones(N, dtype=bool)
        done = np.zeros(N, dtype=bool)
        for _ in range(self.settings.station_max_iter):
            p = self._power(z)
            rd = 2.0 * self.w * (z - self.target) + self._adjoint(m * (2.0 * self.eps * p + lam + yU - yL)) + m * yC
            rU = m * (p - self.pmax + sU)
            rL = m * (self.pmin - p + sL)
            rC = m * (z - self.s + sC)
            mu = np.sum(m * (sU * yU + sL * yL + sC * yC), axis=1) / self.n_rows
            res = np.max(np.abs(rd), axis=1) / (1.0 + np.max(np.abs(lam), axis=1))
            prim = np.max(np.maximum(np.maximum(np.abs(rU), np.abs(rL)), np.abs(rC)), axis=1)
            if barrier > 0.0:
                comp = np.max(m * np.abs(np.stack([sU * yU, sL * yL, sC * yC]) - barrier), axis=(0, 2))
                done = (comp <= max(tol, 1e-9 * barrier)) & (res <= 100.0 * tol) & (prim <= tol)
            else:
                done = (mu <= tol) & (res <= 100.0 * tol) & (prim <= tol)
            active = ~done
            if not np.any(active):
                break
            tU, tL, tC = m * yU / sU, m * yL / sL, m * yC / sC
            q, a_diag = self._kkt_matrix(tU, tL, tC)
            dd, ee = self._factor(q, a_diag)

            def direction(rcU, rcL, rcC):
                gU = m * (-rcU + yU * rU) / sU
                gL = m * (-rcL + yL * rL) / sL
                gC = m * (-rcC + yC * rC) / sC
                rhs = -rd - self._adjoint(gU - gL) - gC
                dz, info = dpttrs(dd, ee, rhs.reshape(-1, 1))
                dz = dz.reshape(N, H)
                dp = self._dpower(dz)
                dsU, dsL, dsC = m * (-rU - dp), m * (-rL + dp), m * (-rC - dz)
                return (dz, dsU, dsL, dsC,
                        m * (-rcU - yU * dsU) / sU, m * (-rcL - yL * dsL) / sL, m * (-rcC - yC * dsC) / sC)

            def step_length(dsU, dsL, dsC, dyU, dyL, dyC):
                alpha = np.ones(N)
                for v, dv in ((sU, dsU), (sL, dsL), (sC, dsC), (yU, dyU), (yL, dyL), (yC, dyC)):
                    neg = (dv < 0) & (m > 0)
                    ratio = np.where(neg, -v / np.where(neg, dv, -1.0), np.inf)
                    alpha = np.minimum(alpha, ratio.min(axis=1))
                return alpha

            if barrier > 0.0:  # path following towards the fixed barrier's central point
                smu = np.maximum(0.1 * mu, barrier)[:, None]
                dz, dsU, dsL, dsC, dyU, dyL, dyC = direction(sU * yU - smu, sL * yL - smu, sC * yC - smu)
            else:
                aff = direction(sU * yU, sL * yL, sC * yC)
                a = step_length(*aff[1:])[:, None]
                mu_aff = np.sum(m * ((sU + a * aff[1]) * (yU + a * aff[4]) + (sL + a * aff[2]) * (yL + a * aff[5])
                                     + (sC + a * aff[3]) * (yC + a * aff[6])), axis=1) / self.n_rows
                sigma = (np.minimum(mu_aff / np.maximum(mu, 1e-300), 1.0) ** 3)[:, None]
                smu = sigma * mu[:, None]
                dz, dsU, dsL, dsC, dyU, dyL, dyC = direction(sU * yU + aff[1] * aff[4] - smu,
                                                              sL * yL + aff[2] * aff[5] - smu,
                                                              sC * yC + aff[3] * aff[6] - smu)
            a = (np.minimum(1.0, _STEP_FRACTION * step_length(dsU, dsL, dsC, dyU, dyL, dyC)) * active)[:, None]
            z = z + a * dz
            sU, sL, sC = sU + a * dsU, sL + a * dsL, sC + a * dsC
            yU, yL, yC = yU + a * dyU, yL + a * dyL, yC + a * dyC
        self._theta = self._kkt_matrix(m * yU / sU, m * yL / sL, m * yC / sC)
        self._log_slack = np.sum(m * (np.log(np.where(m > 0, sU, 1.0)) + np.log(np.where(m > 0, sL, 1.0))
                                      + np.log(np.where(m > 0, sC, 1.0))), axis=1)
        p = np.clip(self._power(z), m * self.pmin, m * self.pmax)
        return p, done

    def sensitivity(self, smoothing: np.ndarray | None = None) -> np.ndarray:
        """(H, H) sum_i -dp_i/dlambda = sum_i B_i^T K_i^{-1} B_i at the last solve (PSD), B_i = D^T / c
        (the interior point's own: it takes no smoothing)."""
        if smoothing is not None:
            raise ValueError(f"{type(self).__name__}.sensitivity takes no smoothing (capabilities {self.capabilities})")
        return self._interior_sensitivity()

    @property
    def kkt_data(self) -> tuple[np.ndarray, np.ndarray]:
        """(q, a): the interior point's KKT matrix at the last solve (what the sensitivity is built from)."""
        if self._theta is None:
            raise RuntimeError(f"{type(self).__name__}.kkt_data needs a prior solve()")
        return self._theta

    def _interior_sensitivity(self) -> np.ndarray:
        """The interior point's summed sensitivity at its last solve."""
        if self._theta is None:
            raise RuntimeError("BatchStations.sensitivity() needs a prior solve()")
        return self._gram(*self._theta, self.m)

    def _gram(self, q: np.ndarray, a: np.ndarray, m: np.ndarray) -> np.ndarray:
        """sum over the rows of (q, a, m) of B^T K^{-1} B.

        With K = L P L^T (the solve's factorisation): sum_i Y_i^T P_i^{-1} Y_i, Y_i = L_i^{-1} B_i,
        one vectorised forward substitution and one matrix product.
        """
        N, H, c = q.shape[0], self.horizon, self.c
        basis = (np.eye(H) - np.eye(H, k=1)) / c
        total = np.zeros((H, H))
        for lo in range(0, N, _SENSITIVITY_CHUNK):
            hi = min(N, lo + _SENSITIVITY_CHUNK)
            piv, mult = self._factor(q[lo:hi], a[lo:hi])
            piv = piv.reshape(hi - lo, H)
            mult = np.concatenate([[0.0], mult]).reshape(hi - lo, H)
            Y = basis[None] * m[lo:hi, None, :]
            for k in range(1, H):
                Y[:, k] -= mult[:, k, None] * Y[:, k - 1]
            Yw = (Y / np.sqrt(piv)[:, :, None]).reshape(-1, H)
            total += Yw.T @ Yw
        return total

    capabilities = PoolCapabilities(barrier=True, reports=True)
    """Barrier-smoothed replies (StationPool protocol)."""

    def respond(self, prices: np.ndarray, want_sensitivity: bool = False, *, barrier: float = 0.0,
                smoothing: np.ndarray | None = None, exact: bool = False) -> StationReplies:
        """Every station's reply to the broadcast prices (StationPool protocol). barrier > 0: replies of
        the log-barrier-smoothed QPs (interior point in fixed-barrier mode), their values including
        -barrier * sum log(slacks) and the sensitivity that of the smoothed QPs."""
        check_request(self, barrier, smoothing, exact)
        prices = np.asarray(prices, dtype=float)
        if barrier > 0.0:
            p, ok = self._interior_point(prices, barrier)
            smooth = barrier * self._log_slack
        else:
            p, ok = self.solve(prices)
            for i in np.flatnonzero(~ok):  # last resort before the safe plan: the station's own OSQP QP
                own = prices if prices.ndim == 1 else prices[i]
                p[i], ok[i] = StationQP.from_problem(self.problem, int(i), self.settings, self.costs).solve(own)
            smooth = np.zeros(self.n_stations)
            self._safe[ok] = p[ok]
        p[~ok] = self._safe[~ok]
        value = self.costs.value(self.problem, p) + priced(p, prices) - np.where(ok, smooth, 0.0)
        return StationReplies(p=p, value=value, answered=np.ones(self.n_stations, dtype=bool), failed=~ok,
                              sensitivity=self._reported_sensitivity(barrier, smoothing) if want_sensitivity else None)

    def _reported_sensitivity(self, barrier: float, smoothing: np.ndarray | None) -> np.ndarray:
        """The sensitivity of this round's replies (smoothing is only used by ActiveSetStations)."""
        return self._interior_sensitivity()


_BIG = 1e12  # stiffness standing in for an active constraint in the sensitivity's KKT matrix (relative)


class ActiveSetStations(BatchStations):
    """The same station QPs solved by a warm-started primal-dual active-set method (a StationPool).

    A station's QP is a chain: SOC nodes z[k] with costs w[k] (z[k] - r)^2 linked by steps
    p[k] = (z[k] - z[k-1]) / c with costs eps p^2 + lambda[k] p. For a guessed active set (steps at
    p_min / p_max: rigid links; SOCs at the cap s: pinned nodes) the equality-constrained QP is
    solved exactly by one forward sweep of the chain's value functions (compliance form, so rigid
    links and pins are exact zeros, not big numbers) and one backward sweep that also recovers the
    link forces, hence every multiplier. The guess is then updated from primal violations and
    negative multipliers until the KKT conditions hold. All stations advance in lockstep ((H, N)
    arrays, loops over the horizon only); after the first sweep only unsettled stations are
    re-solved. The active sets persist between calls, so a round whose prices moved little
    settles in one or two sweeps. Stations not settled within active_set_max_sweeps sweeps are handed
    to the interior-point solver of BatchStations (exact), then to the safe plan if that fails too.
    """

    def __init__(self, problem: ChargingProblem, settings: MPCSettings) -> None:
        super().__init__(problem, settings)
        N, H = self.n_stations, self.horizon
        self._M = problem.mask.T.copy()                            # (H, N) plugged
        self._wc = np.where(self._M, self.w.T, 0.0)                 # node weights, 0 beyond d
        self._r, self._s, self._x0 = problem.r.copy(), self.costs.cap.copy(), problem.x0.copy()
        self._linT = self.linear.T.copy()                           # (H, N) linear cost per kW
        self._cmin, self._cmax = self.c * problem.p_min, self.c * problem.p_max   # kWh per step
        self._h = self.c**2 / (2.0 * self.costs.power_reg)          # (N,) compliance of a free link
        self._U = np.zeros((H, N), dtype=bool)                      # links at p_max
        self._L = np.zeros((H, N), dtype=bool)                      # links at p_min
        self._P = np.zeros((H, N), dtype=bool)                      # SOCs pinned at s
        self._z = np.zeros((H, N))                                  # last sweep's SOCs ...
        self._pin = np.zeros((H, N), dtype=bool)                    # ... and effective pins
        self.sweeps = 0                                             # chain sweeps done (statistics)
        self.ipm_fallbacks = 0                                      # stations handed to the IPM
        self._y = np.zeros((H, N))                                  # bound multipliers of the links (per kW)
        self._nu = np.zeros((H, N))                                 # pin multipliers (per kWh)
        self._ipm: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (stations, q, a) solved by the IPM
        self._solved = False                                        # solve() ran: active sets are set
        self._S: np.ndarray | None = None                           # last summed sensitivity ...
        self._theta_S: tuple[np.ndarray, np.ndarray] | None = None  # ... and the KKT data it was built from

    capabilities = PoolCapabilities(barrier=True, smoothing=True, reports=True)
    """Barrier-smoothed replies (the interior point) and sensitivities smoothed by `smoothing`."""

    def _kkt(self, smoothing: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(q, a) of every station's KKT matrix at the current active sets.

        smoothing None: active bounds and pins are rigid (the exact sensitivity). smoothing (H,) kW:
        a bound of step k with multiplier y (objective per kW) gets the stiffness y / smoothing[k] and a
        pin with multiplier nu the stiffness nu / (c max(smoothing)), as a log barrier of weight
        y * smoothing would give: a bound the prices are about to release (small y) or that the
        area residual (smoothing) is about to move counts as nearly free.
        """
        if smoothing is None:
            rigid_q = _BIG * (self._U | self._L).T
            rigid_a = _BIG * self._pin.T
        else:
            omega = np.maximum(np.asarray(smoothing, dtype=float), 1e-9)
            rigid_q = np.minimum(np.where((self._U | self._L).T, self._y.T / omega[None, :], 0.0), _BIG)
            rigid_a = np.minimum(np.where(self._pin.T, self._nu.T / (self.c * omega.max()), 0.0), _BIG)
        q = self.m * (2.0 * self.eps + rigid_q) / self.c**2
        a = 2.0 * self.w + rigid_a
        if self._ipm is not None:
            idx, q_ipm, a_ipm = self._ipm
            q[idx], a[idx] = q_ipm, a_ipm
        return q, a

    def _reported_sensitivity(self, barrier: float, smoothing: np.ndarray | None) -> np.ndarray:
        """Barrier replies: the interior point's sensitivity; exact replies: the active sets' (smoothed)."""
        return self._interior_sensitivity() if barrier > 0.0 else self.sensitivity(smoothing)

    def sensitivity(self, smoothing: np.ndarray | None = None) -> np.ndarray:
        """Summed -dp_i/dlambda (exact, or smoothed: see _kkt), updated incrementally: only stations
        whose KKT matrix changed since the last call are subtracted with their old and added with their
        new matrix."""
        if not self._solved:
            raise RuntimeError("ActiveSetStations.sensitivity() needs a prior solve()")
        q, a = self._kkt(smoothing)
        if self._S is None or self._theta_S is None:
            self._S = self._gram(q, a, self.m)
        else:
            q0, a0 = self._theta_S
            ch = np.flatnonzero(np.any((q != q0) | (a != a0), axis=1))
            if 2 * ch.size >= self.n_stations:
                self._S = self._gram(q, a, self.m)
            elif ch.size:
                m = self.m[ch]
                self._S = self._S - self._gram(q0[ch], a0[ch], m) + self._gram(q[ch], a[ch], m)
        self._theta_S = (q, a)
        return self._S.copy()

    def _sweep(self, cols: np.ndarray | slice, lam: np.ndarray):
        """Solve the equality-constrained chains of stations cols for the current active sets.

        Returns (H, n) arrays: SOCs z (kWh), steps z[k] - z[k-1] (kWh), link forces F and step-cost
        slopes d(eps p^2 + lambda p)/d(step) (objective per kWh; F - slope is the bound multiplier),
        effective pins, and the pin multipliers nu.
        """
        U, L, P, M = self._U[:, cols], self._L[:, cols], self._P[:, cols], self._M[:, cols]
        w, r, s, x0 = self._wc[:, cols], self._r[cols], self._s[cols], self._x0[cols]
        H, n = M.shape
        c, h, eps = self.c, self._h[cols], self.costs.power_reg[cols]
        rigid = U | L | ~M
        free_off = -lam * c / (2.0 * eps) * M                       # link offset of a free link (kWh)
        off = np.where(U, self._cmax[cols], np.where(L, self._cmin[cols], free_off))
        off[~M] = 0.0
        hh = np.where(rigid, 0.0, h)
        gt, mt, gf, mf = (np.empty((H, n)) for _ in range(4))
        pin = np.empty((H, n), dtype=bool)
        g, m = np.zeros(n), x0.copy()
        for k in range(H):  # forward: V_k(z) = (z - m)^2 / (2 g), g = 0 pins z = m
            g = g + hh[k]
            m = m + off[k]
            gt[k], mt[k] = g, m
            pin[k] = P[k] & (g > 0)  # a node already fixed by rigid links from a pin is not pinned again
            f = 1.0 + 2.0 * w[k] * g  # add the node cost w (z - r)^2: stiffnesses add
            m = np.where(pin[k], s, (m + 2.0 * w[k] * g * r) / f)
            g = np.where(pin[k], 0.0, g / f)
            gf[k], mf[k] = g, m
        z, F = np.empty((H, n)), np.empty((H, n))
        zk, Fn = mf[H - 1], np.zeros(n)
        for k in range(H - 1, -1, -1):  # backward: SOCs and link forces F[k] = dL/d(z[k] - z[k-1])
            z[k] = zk
            ok = gt[k] > 0
            Fk = np.where(ok, (zk - mt[k]) / np.where(ok, gt[k], 1.0), Fn - 2.0 * w[k] * (zk - r))
            F[k] = Fk = np.where(M[k], Fk, 0.0)
            Fn = Fk
            if k:
                den = gf[k - 1] + hh[k]
                pos = den > 0
                zk = np.where(pos, (hh[k] * mf[k - 1] + gf[k - 1] * (zk - off[k])) / np.where(pos, den, 1.0),
                              mf[k - 1])
        step = z - _shift_down(z, x0)
        slope = M * (2.0 * eps * step / c + lam) / c                 # d(eps p^2 + lam p)/d(step)
        Fnext = np.vstack([F[1:], np.zeros((1, n))])
        nu = np.where(pin, Fnext - F - 2.0 * w * (z - r), 0.0)
        return z, step, F, slope, pin, nu

    def _update(self, cols: np.ndarray | slice, lam: np.ndarray, tol: float) -> np.ndarray:
        """One sweep for stations cols, then their active-set update; returns the settled flags (n,)."""
        z, step, F, slope, pin, nu = self._sweep(cols, lam)
        U, L, M = self._U[:, cols], self._L[:, cols], self._M[:, cols]
        cmin, cmax, s = self._cmin[cols], self._cmax[cols], self._s[cols]
        scale = tol * (1.0 + np.max(np.abs(lam), initial=0.0)) / self.c
        muU = np.where(U, F - slope, 0.0)
        muL = np.where(L, slope - F, 0.0)
        ptol = tol * (1.0 + np.abs(s))
        over = M & ~U & (step > cmax + ptol)
        under = M & ~L & (step < cmin - ptol)
        above = M & ~pin & (z > s + ptol)
        settled = ~np.any(over | under | above | (muU < -scale) | (muL < -scale) | (nu < -scale), axis=0)
        newU = (U & (muU > 0)) | over
        newL = (L & (muL > 0)) | under
        newP = (pin & (nu > 0)) | above
        keep = settled[None, :]
        self._U[:, cols] = np.where(keep, U, newU)
        self._L[:, cols] = np.where(keep, L, newL & ~newU)
        self._P[:, cols] = np.where(keep, self._P[:, cols], newP)
        self._z[:, cols] = z
        self._pin[:, cols] = pin
        self._y[:, cols] = self.c * np.maximum(muU + muL, 0.0)
        self._nu[:, cols] = np.maximum(nu, 0.0)
        return settled

    def solve(self, prices: np.ndarray, barrier: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Plans p (N, H) minimising f_i + prices . p_i, and a per-station converged flag (N,); barrier > 0:
        the barrier-smoothed QPs, by the interior point (BatchStations.solve)."""
        if barrier > 0.0:
            return self._interior_point(prices, barrier)
        N = self.n_stations
        prices = np.asarray(prices, dtype=float)
        lam = (prices[:, None] if prices.ndim == 1 else prices.T) + self._linT  # (H, N) price + linear cost per kW
        tol = self.settings.station_tol
        todo = np.arange(N)
        for _ in range(self.settings.active_set_max_sweeps):
            self.sweeps += 1
            cols = todo if todo.size < N else slice(None)
            settled = self._update(cols, lam[:, cols], tol)
            todo = todo[~settled]
            if todo.size == 0:
                break
        done = np.ones(N, dtype=bool)
        z = self._z.T
        p = self.m * (z - _shift_right(z, self.x0[:, 0])) / self.c
        p = np.clip(p, self.m * self.pmin, self.m * self.pmax)
        self._ipm = None
        if todo.size:
            self.ipm_fallbacks += todo.size
            sub = BatchStations(self.problem.subset(todo), self.settings)
            p[todo], done[todo] = sub.solve(station_rows(prices, todo))
            self._ipm = (todo, *sub.kkt_data)
        self._solved = True  # the KKT matrices are built when a sensitivity is asked for (_kkt)
        return p, done


def _shift_down(v: np.ndarray, first: np.ndarray) -> np.ndarray:
    """(H, n) -> rows shifted down by one, first row = first."""
    out = np.empty_like(v)
    out[0] = first
    out[1:] = v[:-1]
    return out
