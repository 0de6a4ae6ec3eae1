"""All station QPs of one coordination round in one vectorised interior-point solve.

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

from pev_mpc.coordinator import StationReplies
from pev_mpc.problem import ChargingProblem
from pev_mpc.settings import MPCSettings

_STEP_FRACTION = 0.995
_SENSITIVITY_CHUNK = 2048  # stations per block of the sensitivity solve (bounds memory to ~40 MB at H = 48)


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
        self.eps = settings.power_reg
        self.m = problem.mask.astype(float)
        d = problem.d
        self.n_rows = np.maximum(3 * d, 1).astype(float)
        last = np.zeros((N, H))
        plugged = d > 0
        last[np.flatnonzero(plugged), d[plugged] - 1] = 1.0
        # objective weights on z (dummy entries: weight 1, target 0 -> z = 0)
        self.w = np.where(self.m > 0, settings.tracking_weight * self.m + settings.terminal_weight * last, 1.0)
        self.target = np.where(self.m > 0, problem.r[:, None], 0.0)
        self.x0 = problem.x0[:, None]
        self.pmin = problem.p_min[:, None]
        self.pmax = problem.p_max[:, None]
        self.s = problem.s[:, None]
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
                e = a[:, k] + q[:, k] * e / (q[:, k] + e)
                mult[:, k] = -q[:, k] / piv[:, k - 1]
            piv[:, k] = e + (q[:, k + 1] if k + 1 < H else 0.0)
        return piv.ravel(), mult.ravel()[1:]

    # ---- solve -------------------------------------------------------------------------
    def solve(self, prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Plans p (N, H) minimising f_i + prices . p_i, and a per-station converged flag (N,)."""
        m, c, N, H = self.m, self.c, self.n_stations, self.horizon
        lam = m * np.asarray(prices, dtype=float)[None, :]
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
        p = np.clip(self._power(z), m * self.pmin, m * self.pmax)
        return p, done

    def sensitivity(self) -> np.ndarray:
        """(H, H) sum_i -dp_i/dlambda = sum_i B_i^T K_i^{-1} B_i at the last solve (PSD), B_i = D^T / c.

        With K_i = L_i P_i L_i^T (the solve's factorisation): sum_i Y_i^T P_i^{-1} Y_i, Y_i = L_i^{-1} B_i,
        one vectorised forward substitution and one matrix product.
        """
        if self._theta is None:
            raise RuntimeError("BatchStations.sensitivity() needs a prior solve()")
        q, a = self._theta
        N, H, c = self.n_stations, self.horizon, self.c
        basis = (np.eye(H) - np.eye(H, k=1)) / c
        total = np.zeros((H, H))
        for lo in range(0, N, _SENSITIVITY_CHUNK):
            hi = min(N, lo + _SENSITIVITY_CHUNK)
            piv, mult = self._factor(q[lo:hi], a[lo:hi])
            piv = piv.reshape(hi - lo, H)
            mult = np.concatenate([[0.0], mult]).reshape(hi - lo, H)
            Y = basis[None] * self.m[lo:hi, None, :]
            for k in range(1, H):
                Y[:, k] -= mult[:, k, None] * Y[:, k - 1]
            Yw = (Y / np.sqrt(piv)[:, :, None]).reshape(-1, H)
            total += Yw.T @ Yw
        return total

    def respond(self, prices: np.ndarray, want_sensitivity: bool = False) -> StationReplies:
        """Every station's reply to the broadcast prices (StationPool protocol)."""
        p, ok = self.solve(prices)
        p[~ok] = self._safe[~ok]
        self._safe[ok] = p[ok]
        value = self.problem.station_objective(p, self.settings) + p @ np.asarray(prices, dtype=float)
        return StationReplies(p=p, value=value, answered=np.ones(self.n_stations, dtype=bool), failed=~ok,
                              sensitivity=self.sensitivity() if want_sensitivity else None)
