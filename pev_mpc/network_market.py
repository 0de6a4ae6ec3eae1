"""The coordinator's own clearing of a model market under a network: separable station QPs (the bid
model of the deadline objective's stations, `separable_qp.bid_model`) and the network's rows, in one
Clarabel problem built directly from sparse arrays (no modelling layer: it is solved at every exchange).

    min  sum_cells eps p^2 + a p
    s.t. lo <= p <= hi,  sum_k p[i, k] <= B_i (budgets known),  |g_j . p[:, k]| <= L_j (cones; linear
         rows as sum_i |g_ji| p_i <= L_j)

Only the plugged cells are variables. Clarabel's stationarity P x + q + A^T z = 0 makes the multipliers
of the rows of constraint (j, k) the network multiplier y_jk of `pev_mpc.network_coordinator`: a cone's
rows hold -g (its slack is (1, g . p / L)), so (z_re, z_im) is y_jk = -(z_re + i z_im); a linear row's z
is mu_jk (y_jk = mu_jk times the row direction); both rescaled from the limits and the objective scale.
"""

from __future__ import annotations

import clarabel
import numpy as np
from scipy import sparse

from pev_env.network import Network
from pev_mpc.network_allocation import dual_penalty, station_prices
from pev_mpc.objective import StationCosts
from pev_mpc.problem import ChargingProblem
from pev_mpc.separable_qp import SeparableStations

_SETTINGS = {"verbose": False, "tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "tol_ktratio": 1e-8,
             "max_iter": 200}


class MarketError(RuntimeError):
    """Clarabel did not solve the model market (the status names why)."""


def clear_separable_market(problem: ChargingProblem, costs: StationCosts) -> tuple[np.ndarray, np.ndarray]:
    """(plans (N, H) kW, multipliers y (J, H) complex) of the model market (module doc); costs must be
    separable (node weights 0). Raises MarketError if the solver fails."""
    network = problem.network
    N, H = problem.n_stations, problem.horizon
    J = network.n_constraints
    station, step = np.nonzero(problem.mask)
    n = station.size
    plan = np.zeros((N, H))
    if n == 0:
        return plan, np.zeros((J, H), dtype=np.complex128)
    scale = max(1.0, float(np.max(np.abs(costs.linear[station, step]), initial=0.0)))  # objective units
    P = sparse.diags(2.0 * costs.power_reg[station] / scale, format="csc")
    q = costs.linear[station, step] / scale
    cells = np.arange(n)
    blocks, rhs, cones = [], [], []
    # box and budget rows (nonnegative cone)
    lo, hi = problem.p_min[station], problem.p_max[station]
    budget = (costs.cap - problem.x0) / problem.c
    known = np.flatnonzero(np.isfinite(budget) & (budget < hi.sum() + 1.0))
    row_of = np.full(N, -1)
    row_of[known] = np.arange(known.size)
    in_budget = row_of[station]   # each cell's budget row, -1 where its station's budget is not known
    has = in_budget >= 0
    blocks += [sparse.identity(n, format="csc"), -sparse.identity(n, format="csc"),
               sparse.csc_matrix((np.ones(int(has.sum())), (in_budget[has], cells[has])), shape=(known.size, n))]
    rhs += [hi, -lo, budget[known]]
    # network rows, scaled by their limits: linear rows in the nonnegative cone, cones as SOC(3)
    g = network.gain[:, station] / network.limit[:, None]     # (J, n)
    linear = np.flatnonzero(network.linear)
    conic = np.flatnonzero(~network.linear)
    if linear.size:
        mag = np.abs(g[linear])                                 # (Jl, n)
        rows = (linear.size * step[None, :] + np.arange(linear.size)[:, None])  # row of (j, k) = k Jl + j
        blocks.append(sparse.csc_matrix((mag.ravel(), (rows.ravel(), np.tile(cells, linear.size))),
                                        shape=(linear.size * H, n)))
        rhs.append(np.ones(linear.size * H))
    n_nonneg = sum(b.shape[0] for b in blocks)
    cones.append(clarabel.NonnegativeConeT(n_nonneg))
    if conic.size:
        gc = g[conic]                                           # (Jc, n)
        base = 3 * (conic.size * step[None, :] + np.arange(conic.size)[:, None])  # first row of cone (j, k)
        rows = np.concatenate([(base + 1).ravel(), (base + 2).ravel()])
        vals = np.concatenate([-gc.real.ravel(), -gc.imag.ravel()])
        cols = np.tile(cells, 2 * conic.size)
        keep = vals != 0
        blocks.append(sparse.csc_matrix((vals[keep], (rows[keep], cols[keep])), shape=(3 * conic.size * H, n)))
        b = np.zeros(3 * conic.size * H)
        b[0::3] = 1.0
        rhs.append(b)
        cones += [clarabel.SecondOrderConeT(3)] * (conic.size * H)
    A = sparse.vstack(blocks, format="csc")
    settings = clarabel.DefaultSettings()
    for key, value in _SETTINGS.items():
        setattr(settings, key, value)
    solution = clarabel.DefaultSolver(P, q, A, np.concatenate(rhs), cones, settings).solve()
    status = str(solution.status)
    if "Solved" not in status:
        raise MarketError(f"network model market: Clarabel status {status}")
    x, z = np.asarray(solution.x), np.asarray(solution.z)
    plan[station, step] = np.clip(x, lo, hi)
    y = np.zeros((J, H), dtype=np.complex128)
    if linear.size:
        mu = z[n_nonneg - linear.size * H:n_nonneg].reshape(H, linear.size).T  # (Jl, H)
        y[linear] = np.maximum(mu, 0.0) * network.direction[linear, None]
    if conic.size:
        zc = z[n_nonneg:].reshape(H, conic.size, 3)
        y[conic] = -(zc[:, :, 1] + 1j * zc[:, :, 2]).T  # the rows hold -g: s = (1, g . p / L)
    return plan, y * scale / network.limit[:, None]


# --------------------------------------------------------------------------------- the polish
POLISH_STEPS = 4
"""Newton steps that polish the interior point's multipliers on the model's dual (no messages)."""
_ACTIVE = 1e-7  # a multiplier below this share of the largest is taken as zero (interior-point residue)


def model_dual(model: SeparableStations, network: Network, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The bid model's dual value at the multipliers y (J, H), and the loads z = G p (J, H) of its replies."""
    prices = station_prices(network, y)
    p = model.solve(prices)
    value = float(np.sum(model.costs.value(model.problem, p)) + np.sum(p * prices)) - dual_penalty(network, y)
    return value, network.gain @ p


def _newton_direction(model: SeparableStations, network: Network, y: np.ndarray, z: np.ndarray,
                      rows: np.ndarray, steps: np.ndarray) -> np.ndarray | None:
    """The Newton step M^{-1} g on the entries (rows[a], steps[a]) in real coordinates (re, im), None where M
    is singular. g is the dual's gradient z - L y / |y|; M minus its Hessian: the stations' exact price
    sensitivity (1 / (2 eps) on steps strictly inside their bounds) seen through their gains plus the
    norm's curvature L (I - y y^T / |y|^2) / |y|, block-diagonal over the steps (D), less one rank-one
    term V_i^T V_i per station whose budget binds, which couples its steps: M = D - V^T V, solved by
    blocks and the Woodbury identity (r x r for r binding budgets)."""
    free = (model._raw > model.lo) & (model._raw < model.hi)
    u = free / model.two_eps                                     # (n, H)
    gain = network.gain[:, model.rows]
    w = np.concatenate([gain.real[rows], gain.imag[rows]]).T     # (n, 2A)
    A = rows.size
    k = np.concatenate([steps, steps])
    entry, imag = np.tile(np.arange(A), 2), np.repeat([False, True], A)
    yy, L = y[rows, steps], network.limit[rows]
    ay = np.abs(yy)
    unit, c = yy / ay, L / ay
    grad = z[rows, steps] - L * unit
    g = np.concatenate([grad.real, grad.imag])
    total = u.sum(axis=1)
    pinned = np.flatnonzero((model._mu > 0.0) & (total > 0))
    V = w[pinned] * u[pinned][:, k] / np.sqrt(total[pinned])[:, None]   # (r, 2A)
    rhs = np.column_stack([g, V.T])
    sol = np.empty_like(rhs)
    for step in np.unique(steps):
        idx = np.flatnonzero(k == step)
        block = w[:, idx].T @ (u[:, step, None] * w[:, idx])
        e, im = entry[idx], imag[idx]
        ur, ui = unit.real[e], unit.imag[e]
        curvature = np.where(im[:, None] & im[None, :], 1.0 - ui[:, None] ** 2,
                             np.where(~im[:, None] & ~im[None, :], 1.0 - ur[:, None] ** 2, -ur[:, None] * ui[None, :]))
        block += np.where(e[:, None] == e[None, :], c[e][:, None] * curvature, 0.0)
        try:
            sol[idx] = np.linalg.solve(block, rhs[idx])
        except np.linalg.LinAlgError:
            return None
    d, DV = sol[:, 0], sol[:, 1:]
    if pinned.size:
        try:
            d = d + DV @ np.linalg.solve(np.eye(pinned.size) - V @ DV, V @ d)
        except np.linalg.LinAlgError:
            return None
    return d


def polish(model: SeparableStations, network: Network, y: np.ndarray) -> np.ndarray:
    """The interior point's multipliers y refined by up to POLISH_STEPS Newton steps on the model's dual,
    on the entries it left nonzero (the active set it found): each step is kept only if it raises the
    dual value, so the result is never worse than y."""
    y = np.where(np.abs(y) > _ACTIVE * float(np.max(np.abs(y), initial=0.0)), y, 0.0)
    rows, steps = np.nonzero(y)
    if rows.size == 0:
        return y
    value, z = model_dual(model, network, y)
    for _ in range(POLISH_STEPS):
        d = _newton_direction(model, network, y, z, rows, steps)
        if d is None:
            return y
        trial = y.copy()
        trial[rows, steps] += d[:rows.size] + 1j * d[rows.size:]
        v_new, z_new = model_dual(model, network, trial)
        if not v_new > value:
            return y
        y, value, z = trial, v_new, z_new
    return y
