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

from dataclasses import dataclass

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
    separable (node weights 0). A tree of linear limits is cleared by `tree_market` (the same market, by
    elimination along the tree, compiled: faster than Clarabel at every size measured), falling back to
    Clarabel where that stops short. Raises MarketError if the solver fails."""
    if problem.network.tree is not None:
        from pev_mpc import tree_market      # here, not at the top: only trees pay for importing numba (0.25 s)

        cleared = tree_market.clear_tree_market(problem, costs)
        if cleared is not None:
            return cleared
    return clear_with_clarabel(problem, costs)


def clear_with_clarabel(problem: ChargingProblem, costs: StationCosts) -> tuple[np.ndarray, np.ndarray]:
    """`clear_separable_market` by Clarabel (any network)."""
    network = problem.network
    N, H = problem.n_stations, problem.horizon
    J = network.n_constraints
    station, step = np.nonzero(problem.mask)
    n = station.size
    plan = np.zeros((N, H))
    if n == 0:
        return plan, np.zeros((J, H), dtype=np.complex128)
    scale = max(1.0, float(np.max(np.abs(costs.linear[station, step]), initial=0.0)))  # objective units
    cells = np.arange(n)
    P = sparse.csc_matrix((2.0 * costs.power_reg[station] / scale, cells, np.arange(n + 1)), shape=(n, n))
    q = costs.linear[station, step] / scale
    lo, hi = problem.p_min[station], problem.p_max[station]
    rows = _NetworkRows.of(network, station, step, hi, H)
    parts = _cell_rows(problem, costs, station, lo, hi) + rows.parts
    n_nonneg = sum(part.rhs.size for part in parts) - 3 * rows.conic.size
    cones = [clarabel.NonnegativeConeT(n_nonneg)] + [clarabel.SecondOrderConeT(3)] * rows.conic.size
    settings = clarabel.DefaultSettings()
    for key, value in _SETTINGS.items():
        setattr(settings, key, value)
    A, b = _stack(parts, n)
    solution = clarabel.DefaultSolver(P, q, A, b, cones, settings).solve()
    status = str(solution.status)
    if "Solved" not in status:
        raise MarketError(f"network model market: Clarabel status {status}")
    plan[station, step] = np.clip(np.asarray(solution.x), lo, hi)
    y = rows.multipliers(network, np.asarray(solution.z)[n_nonneg - rows.linear.size:], H)
    return plan, y * scale / network.limit[:, None]


@dataclass(frozen=True)
class _Rows:
    """Rows of the market's A x <= b (A x + s = b) as triplets: nonzero k is A[row[k], cell[k]] = value[k]
    (rows numbered from 0 in this block)."""

    row: np.ndarray
    cell: np.ndarray
    value: np.ndarray
    rhs: np.ndarray


def _stack(parts: list[_Rows], n: int) -> tuple[sparse.csc_matrix, np.ndarray]:
    """The blocks one under the other as (A, b), A in canonical CSC (row indices ascending in each column,
    as scipy's stacking leaves them), built from the triplets in one sort rather than block by block; no
    (row, cell) may repeat."""
    offset = np.cumsum([0] + [part.rhs.size for part in parts])
    row = np.concatenate([part.row + start for part, start in zip(parts, offset)])
    cell = np.concatenate([part.cell for part in parts])
    order = np.argsort(cell * int(offset[-1]) + row)           # by column, then row (each pair once)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(cell, minlength=n), out=indptr[1:])
    A = sparse.csc_matrix((np.concatenate([part.value for part in parts])[order], row[order], indptr),
                          shape=(int(offset[-1]), n))
    return A, np.concatenate([part.rhs for part in parts])


def _cell_rows(problem: ChargingProblem, costs: StationCosts, station: np.ndarray, lo: np.ndarray,
               hi: np.ndarray) -> list[_Rows]:
    """The box and known-budget rows of the cells (station[c]: cell c's station)."""
    n = station.size
    budget = (costs.cap - problem.x0) / problem.c
    known = np.flatnonzero(np.isfinite(budget) & (budget < hi.sum() + 1.0))
    row_of = np.full(problem.n_stations, -1)
    row_of[known] = np.arange(known.size)
    in_budget = row_of[station]   # each cell's budget row, -1 where its station's budget is not known
    has = in_budget >= 0
    cells = np.arange(n)
    return [_Rows(cells, cells, np.ones(n), hi), _Rows(cells, cells, -np.ones(n), -lo),
            _Rows(in_budget[has], cells[has], np.ones(int(has.sum())), budget[known])]


@dataclass(frozen=True)
class _NetworkRows:
    """The network's rows of the market, scaled by their limits: linear rows in the nonnegative cone, cones as
    SOC(3); a row (j, k) that the cells cannot load past its limit even at full power is left out (its
    multiplier is 0)."""

    linear: np.ndarray
    """Flat indices j H + k of the linear rows kept (the last rows of the nonnegative cone)."""
    conic: np.ndarray
    """Flat indices of the cones kept (after the nonnegative cone, three rows each)."""
    parts: list[_Rows]
    """The linear rows, then the cones' (3 r: the limit, 3 r + 1 and 3 r + 2: -g . p)."""

    @staticmethod
    def of(network: Network, station: np.ndarray, step: np.ndarray, hi: np.ndarray, H: int) -> _NetworkRows:
        lin_rows, row, cell, g = _bindable(network, np.flatnonzero(network.linear), station, step, hi, H)
        cone_rows, c_row, c_cell, c_g = _bindable(network, np.flatnonzero(~network.linear), station, step, hi, H)
        rows = np.column_stack([3 * c_row + 1, 3 * c_row + 2]).ravel()   # each nonzero's two rows in turn
        vals = np.column_stack([-c_g.real, -c_g.imag]).ravel()
        keep = vals != 0
        b = np.zeros(3 * cone_rows.size)
        b[0::3] = 1.0
        return _NetworkRows(lin_rows, cone_rows,
                            [_Rows(row, cell, np.abs(g), np.ones(lin_rows.size)),
                             _Rows(rows[keep], np.repeat(c_cell, 2)[keep], vals[keep], b)])

    def multipliers(self, network: Network, z: np.ndarray, H: int) -> np.ndarray:
        """y (J, H) complex of the scaled rows (per limit and unit of the scaled objective), from Clarabel's
        duals z of these rows."""
        y = np.zeros((network.n_constraints * H,), dtype=np.complex128)   # flat (j, k) -> j H + k
        y[self.linear] = np.maximum(z[:self.linear.size], 0.0) * network.direction[self.linear // H]
        zc = z[self.linear.size:].reshape(self.conic.size, 3)
        y[self.conic] = -(zc[:, 1] + 1j * zc[:, 2])              # the rows hold -g: s = (1, g . p / L)
        return y.reshape(network.n_constraints, H)


def _bindable(network: Network, rows: np.ndarray, station: np.ndarray, step: np.ndarray, hi: np.ndarray,
              H: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The constraints (j, k) of `rows` that the cells (station[c], step[c], at most hi[c] kW) could load past
    their limits, as flat indices j H + k (ascending), and their nonzeros: (index into them, cell, gain / limit).
    The others hold at every plan of the model (|sum g p| <= sum |g| hi <= limit) and are left out. H: the
    horizon."""
    j, cell, g = _cell_gains(network, rows, station)
    flat = rows[j] * H + step[cell]
    worst = np.bincount(flat, weights=np.abs(g) * hi[cell], minlength=network.n_constraints * H)
    bindable = np.flatnonzero(worst > 1.0)
    index = np.full(worst.size, -1)
    index[bindable] = np.arange(bindable.size)
    keep = index[flat] >= 0
    return bindable, index[flat[keep]], cell[keep], g[keep]


def _cell_gains(network: Network, rows: np.ndarray, station: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nonzero gains of the constraints `rows` on every cell (a cell is a station's step; station[c] is
    cell c's station), divided by their limits: (index into rows, cell, gain) per nonzero, each cell's in the
    order of rows, without forming the dense (rows x cells) matrix (a tree's rows each load few of many
    stations). Read from the CSR arrays of the gains (scipy's indexing costs more than the work here)."""
    G = network.sparse_gain
    start, count = G.indptr[rows], np.diff(G.indptr)[rows]
    j = np.repeat(np.arange(rows.size), count)                  # the rows' nonzeros, row by row
    pos = _runs(start, count)
    of, gain = G.indices[pos], G.data[pos] * (1.0 / network.limit[rows])[j]
    nonzero = gain != 0
    j, of, gain = j[nonzero], of[nonzero], gain[nonzero]
    by_station = np.argsort(of, kind="stable")                  # each station's nonzeros in the order of rows
    per_station = np.bincount(of, minlength=network.n_stations)
    first = np.cumsum(per_station) - per_station
    count = per_station[station]
    pick = by_station[_runs(first[station], count)]
    return j[pick], np.repeat(np.arange(station.size), count), gain[pick]


def _runs(start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """start[0], ..., start[0] + count[0] - 1, start[1], ...: the positions of consecutive runs."""
    return np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count - start, count)


# --------------------------------------------------------------------------------- the polish
POLISH_STEPS = 4
"""Newton steps that polish the interior point's multipliers on the model's dual (no messages)."""
_ACTIVE = 1e-7  # a multiplier below this share of the largest is taken as zero (interior-point residue)


def model_dual(model: SeparableStations, network: Network, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The bid model's dual value at the multipliers y (J, H), and the loads z = G p (J, H) of its replies."""
    prices = station_prices(network, y)
    p = model.solve(prices)
    value = float(np.sum(model.costs.value(model.problem, p)) + np.sum(p * prices)) - dual_penalty(network, y)
    return value, network.combine(p)


def _newton_direction(model: SeparableStations, network: Network, y: np.ndarray, z: np.ndarray,
                      rows: np.ndarray, steps: np.ndarray) -> np.ndarray | None:
    """The Newton step (A,) complex on the entries (rows[a], steps[a]), None where the system is singular.

    Coordinates: a cone's multiplier moves in the plane (basis 1, i), a linear row's along its direction
    (y = mu e^{i theta}). In them the dual's gradient is Re(conj(b) (z - L y / |y|)) and minus its Hessian
    M the stations' exact price sensitivity (1 / (2 eps) on steps strictly inside their bounds) seen through
    Re(conj(b) g) plus the norm's curvature L (I - u u^T) / |y| (u = y / |y|; zero along a linear row):
    block-diagonal over the steps (D), less one rank-one term V_i^T V_i per station whose budget binds, which
    couples its steps. M = D - V^T V is solved by blocks and the Woodbury identity (r x r for r budgets)."""
    free = (model._raw > model.lo) & (model._raw < model.hi)
    u = free / model.two_eps                                     # (n, H)
    conic = ~network.linear[rows]
    entry = np.concatenate([np.arange(rows.size), np.flatnonzero(conic)])      # each coordinate's entry
    basis = np.where(conic, 1.0, network.direction[rows]).astype(np.complex128)
    basis = np.concatenate([basis, np.full(int(conic.sum()), 1j)])            # (m,) its unit direction
    w = np.real(np.conj(basis)[None, :] * network.gain[:, model.rows][rows[entry]].T)   # (n, m)
    k = steps[entry]
    yy, L = y[rows, steps], network.limit[rows]
    ay = np.abs(yy)
    unit, c = yy / ay, L / ay
    g = np.real(np.conj(basis) * (z[rows, steps] - L * unit)[entry])
    along = np.real(np.conj(basis) * unit[entry])                             # Re(conj(b) u) per coordinate
    total = u.sum(axis=1)
    pinned = np.flatnonzero((model._mu > 0.0) & (total > 0))
    V = w[pinned] * u[pinned][:, k] / np.sqrt(total[pinned])[:, None]       # (r, m)
    rhs = np.column_stack([g, V.T])
    sol = np.empty_like(rhs)
    for idx, step in _step_blocks(k):    # the steps' blocks of one size at a time, as a stack
        wi = w[:, idx]                                                        # (n, blocks, size)
        block = np.matmul(wi.transpose(1, 2, 0), (u[:, step, None] * wi).transpose(1, 0, 2))
        e, b, a = entry[idx], basis[idx], along[idx]
        curvature = np.real(np.conj(b)[:, :, None] * b[:, None, :]) - a[:, :, None] * a[:, None, :]
        block += np.where(e[:, :, None] == e[:, None, :], c[e][:, :, None] * curvature, 0.0)
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
    return np.bincount(entry, weights=d * basis.real, minlength=rows.size) \
        + 1j * np.bincount(entry, weights=d * basis.imag, minlength=rows.size)


def _step_blocks(k: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The coordinates of each step (k[a]: coordinate a's step) grouped by their count: per count s, the
    (steps, s) coordinates of the steps with s (ascending in each row) and those steps (steps,)."""
    order = np.argsort(k, kind="stable")
    step, start, size = np.unique(k[order], return_index=True, return_counts=True)
    groups = []
    for s in np.unique(size):
        which = np.flatnonzero(size == s)
        groups.append((order[start[which][:, None] + np.arange(s)], step[which]))
    return groups


def polish(model: SeparableStations, network: Network, y: np.ndarray) -> np.ndarray:
    """The interior point's multipliers y refined by up to POLISH_STEPS Newton steps on the model's dual,
    on the entries it left nonzero (the active set it found; entries below _ACTIVE of the largest are set to
    zero first): each step is kept only if it raises the dual value, so the result is never worse than y with
    those entries zeroed. A linear network's multipliers are returned as they are
    (an interior point's multipliers of linear rows are accurate; the cones' degeneracy is what needs it)."""
    if network.is_linear:
        return y
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
        trial[rows, steps] += d
        v_new, z_new = model_dual(model, network, trial)
        if not v_new > value:
            return y
        y, value, z = trial, v_new, z_new
    return y
