"""The model market on a tree of nested linear limits (`pev_env.network.RowTree`), cleared by a primal-dual
interior point whose Newton systems are solved by elimination along the tree, compiled with numba.

The market is `network_market`'s (the stations' separable bid QPs, their known budgets, the network's rows
that can bind), with the rows in their own units:

    min  sum_c eps_c p_c^2 + a_c p_c   s.t.  lo <= p <= hi,  sum_{c of i} p_c <= B_i (known budgets),
         sum_{c under j at k} s_j gamma_i p_c <= L_j (the rows (j, k) that can bind)

(s_j gamma_i = |g_ji|: `RowTree.factor` and `.station_gain`). Each Mehrotra predictor-corrector iteration
solves [D A^T; A -W^-1] [dp; dz] = [r_c; r_r] with D diagonal over the cells and W^-1 over the rows
(`_factor`, `_solve`). Given the price sigma (H,) that a row's ancestors add per unit of station gain, the
stations and rows under the row answer with the load b - M sigma, an affine map with an H x H matrix M: a
station adds a diagonal (less one rank-one term if its budget is a row), and the row's own bindable steps
K subtract X^T X, X = L^-1 s M[K, S], L L^T = s^2 M[K, K] + W^-1_K, S the parent's steps; M is only needed
on the steps R where the row or an ancestor has a bindable row. So the system is eliminated from the
leaves up, a row at a time, and solved from the root down: a few |K| x |R| products per row and a handful
of passes over the cells, where Clarabel's KKT system holds every cell and bound (docs/FORMULATION.md,
"Clearing a tree's market"). The products A p and A^T z are sums along the same tree (`_load`, `_price`).
Clarabel remains the market of every other network and of a tree whose interior point stops short
(`network_market.clear_separable_market`). The kernels are compiled at their first call (a few seconds,
once: numba caches them beside this file or in the user's cache folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit
from scipy import sparse

from pev_env.network import Network, RowTree
from pev_mpc.objective import StationCosts
from pev_mpc.problem import ChargingProblem

MAX_ITERATIONS = 60
TOLERANCE = 1e-9
"""Complementarity (relative to the objective) at which the market counts as cleared, with the residuals
within RESIDUAL and DUAL_RESIDUAL."""
ACCEPTABLE = 1e-8
"""Complementarity of the last iterate kept in case the interior point stalls after it (rounding grows as
the gap closes), with the same residuals."""
RESIDUAL = 1e-9
"""Largest residual of a row, relative to the largest limit or budget."""
DUAL_RESIDUAL = 1e-7
"""Largest residual of stationarity, relative to the largest cost per kW (the Newton systems lose accuracy
as the gap closes)."""
_FIXED = 1e-9  # kW: a cell whose bounds are closer than this is fixed at its lower bound
_STEP = 0.995  # share of the step to the boundary an iteration takes
_COMMON_STEP = 1e-6  # relative gap below which primal and dual take one step length
_REFINE_BELOW = 1e-6  # relative gap below which each Newton solve is refined once by its residual


@dataclass(frozen=True)
class TreeMarket:
    """One market (module doc), its objective over `objective_scale`: cells c (station[c], step[c]) free
    between lo and hi, budget rows (station budget_station[b], coefficient 1), network rows r (node
    row_node[r], step row_step[r], sorted by node and step); rows hold A p <= rhs (budgets first)."""

    station: np.ndarray
    step: np.ndarray
    P: np.ndarray
    """(n,) 2 eps per cell, over the objective's scale."""
    q: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    budget_station: np.ndarray
    row_node: np.ndarray
    row_step: np.ndarray
    rhs: np.ndarray
    """(budgets + network rows,) what each row may hold (its budget or limit less the load of fixed cells)."""
    A: sparse.csr_matrix
    tree: RowTree
    horizon: int


def build_market(problem: ChargingProblem, costs: StationCosts, objective_scale: float) -> tuple[TreeMarket, np.ndarray] | None:
    """The market of `problem` with the stations' `costs` (separable), and the plan (N, H) of its fixed cells
    (0 elsewhere); None when a budget cannot be met (Clarabel reports it)."""
    network, H = problem.network, problem.horizon
    tree = network.tree
    station, step = np.nonzero(problem.mask)
    lo, hi = problem.p_min[station].astype(float), problem.p_max[station].astype(float)
    N = problem.n_stations
    budget = (costs.cap - problem.x0) / problem.c
    least = np.bincount(station, weights=lo, minlength=N)
    most = np.bincount(station, weights=hi, minlength=N)
    if np.any(budget < least - _FIXED * (1.0 + np.abs(budget))):
        return None
    # a budget at the least energy fixes its station's cells at their lower bounds; one above the most never binds
    pinned = budget <= least + _FIXED
    fixed = (hi - lo <= _FIXED) | pinned[station]
    base = np.zeros((N, H))
    base[station[fixed], step[fixed]] = lo[fixed]
    free = ~fixed
    station, step, lo, hi = station[free], step[free], lo[free], hi[free]
    known = np.flatnonzero(np.isfinite(budget) & ~pinned & (budget < most - _FIXED))
    room = budget[known] - base[known].sum(axis=1)
    fixed_load = network.loads(base)                       # linear rows: sum |g| p (p >= 0)
    row_node, row_step, cell_rows = _bindable(tree, station, step, hi, fixed_load, network.limit)
    budget_of = np.full(N, -1)
    budget_of[known] = np.arange(known.size)
    b_of_cell = budget_of[station]
    has = b_of_cell >= 0
    n, m_b = station.size, known.size
    rows = np.concatenate([b_of_cell[has], m_b + cell_rows[0]])
    cols = np.concatenate([np.flatnonzero(has), cell_rows[1]])
    vals = np.concatenate([np.ones(int(has.sum())), cell_rows[2]])
    A = sparse.csr_matrix((vals, (rows, cols)), shape=(m_b + row_node.size, n))
    rhs = np.concatenate([room, network.limit[row_node] - fixed_load[row_node, row_step]])
    P = 2.0 * costs.power_reg[station] / objective_scale
    q = costs.linear[station, step] / objective_scale
    return TreeMarket(station, step, P, q, lo, hi, known, row_node, row_step, rhs, A, tree, H), base


def _bindable(tree: RowTree, station: np.ndarray, step: np.ndarray, hi: np.ndarray,
              fixed_load: np.ndarray, limit: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The rows (node, step) that the cells could load past their limits at full power with the fixed cells'
    load (J, H) (sorted by node and step), and the nonzeros of those rows as (row, cell, coefficient)."""
    H = fixed_load.shape[1]
    n = station.size
    gamma = tree.station_gain[station]
    node = tree.leaf[station]
    hops_node, hops_cell = [], []
    cells = np.arange(n)
    while True:                                       # each cell loads its leaf row and every ancestor
        on = node >= 0
        if not on.any():
            break
        hops_node.append(node[on])
        hops_cell.append(cells[on])
        node = np.where(on, tree.parent[np.maximum(node, 0)], -1)
    j = np.concatenate(hops_node) if hops_node else np.zeros(0, dtype=int)
    c = np.concatenate(hops_cell) if hops_cell else np.zeros(0, dtype=int)
    coef = tree.factor[j] * gamma[c]
    flat = j * H + step[c]
    worst = np.bincount(flat, weights=coef * hi[c], minlength=limit.size * H) + fixed_load.ravel()
    bindable = np.flatnonzero(worst > np.repeat(limit, H))
    index = np.full(worst.size, -1)
    index[bindable] = np.arange(bindable.size)
    keep = index[flat] >= 0
    return bindable // H, bindable % H, (index[flat[keep]], c[keep], coef[keep])


class _Layout(NamedTuple):
    """Where every cell, budget and row sits in the tree (computed once per market, in flat arrays for the
    compiled kernels). A row j works on its steps R_j: its own bindable steps K_j and its ancestors' (its
    parent's R), the only steps at which anything above it prices its stations; per-row vectors on R_j lie
    at r_off[j]:r_off[j + 1] of a flat array, its |R_j| x |R_j| matrix at m_off[j], its |K_j| x |K_j|
    factor at l_off[j], its |K_j| x |S_j| block X at x_off[j] (S_j: its parent's steps R)."""

    order: np.ndarray
    """(J,) the rows, children before parents (the order of elimination)."""
    parent: np.ndarray
    scale: np.ndarray
    """(J,) the row's gain per unit of station gain (`RowTree.factor`)."""
    r_off: np.ndarray
    m_off: np.ndarray
    l_off: np.ndarray
    x_off: np.ndarray
    k_off: np.ndarray
    """(J + 1,) where each row's bindable steps lie in k_pos (and among the network rows)."""
    k_pos: np.ndarray
    """The positions in R_j of the row's bindable steps (the network rows k_off[j]:k_off[j + 1]: rows are
    sorted by node and step)."""
    s_off: np.ndarray
    s_pos: np.ndarray
    """At s_off[j]: the positions in R_j of the parent's steps R, in the parent's order."""
    node: np.ndarray
    """(n,) each cell's smallest row (-1: it loads none)."""
    position: np.ndarray
    """(n,) the position of the cell's step in its row's R (-1: not there: nothing prices it)."""
    gamma: np.ndarray
    """(n,) the cell's station gain."""
    cell_budget: np.ndarray
    """(n,) the budget row of the cell's station (-1: none)."""
    budget_off: np.ndarray
    budget_cells: np.ndarray
    """The cells of budget b at budget_cells[budget_off[b]:budget_off[b + 1]]."""
    budget_node: np.ndarray
    """(n_budgets,) the smallest row of the budget's station (-1: none)."""
    step: np.ndarray
    """(n,) each cell's step."""
    row_node: np.ndarray
    row_step: np.ndarray
    """The network rows (`TreeMarket`)."""
    horizon: int

    @staticmethod
    def of(market: TreeMarket) -> _Layout:
        tree, H = market.tree, market.horizon
        parent, depth = tree.parent, tree.depth
        J = parent.size
        count = np.bincount(market.row_node, minlength=J)
        on_steps = np.zeros((J, H), dtype=bool)                  # R of each row: its K and its ancestors'
        on_steps[market.row_node, market.row_step] = True
        for level in range(1, int(depth.max(initial=0)) + 1):
            rows = np.flatnonzero(depth == level)
            on_steps[rows] |= on_steps[parent[rows]]
        position = np.cumsum(on_steps, axis=1) - 1                # a step's position in its row's R
        size = on_steps.sum(axis=1)
        parent_size = np.where(parent >= 0, size[np.maximum(parent, 0)], 0)      # |S_j|
        k_pos = position[market.row_node, market.row_step]       # rows sorted by node and step: K_j in order
        child, above = np.nonzero(on_steps[np.maximum(parent, 0)] & (parent >= 0)[:, None])
        node = tree.leaf[market.station]
        at = np.maximum(node, 0), market.step
        of_station = np.full(tree.leaf.size, -1)
        of_station[market.budget_station] = np.arange(market.budget_station.size)
        cell_budget = of_station[market.station]
        has = np.flatnonzero(cell_budget >= 0)
        by_budget = has[np.argsort(cell_budget[has], kind="stable")]
        return _Layout(order=np.argsort(-depth, kind="stable"), parent=parent.astype(np.int64),
                       scale=tree.factor.astype(float), r_off=_offsets(size), m_off=_offsets(size**2),
                       l_off=_offsets(count**2), x_off=_offsets(count * parent_size), k_off=_offsets(count),
                       k_pos=k_pos.astype(np.int64),
                       s_off=_offsets(np.bincount(child, minlength=J)),
                       s_pos=position[child, above].astype(np.int64),
                       node=node.astype(np.int64),
                       position=np.where((node >= 0) & on_steps[at], position[at], -1).astype(np.int64),
                       gamma=tree.station_gain[market.station].astype(float),
                       cell_budget=cell_budget.astype(np.int64),
                       budget_off=_offsets(np.bincount(cell_budget[has], minlength=market.budget_station.size)),
                       budget_cells=by_budget.astype(np.int64),
                       budget_node=tree.leaf[market.budget_station].astype(np.int64),
                       step=market.step.astype(np.int64), row_node=market.row_node.astype(np.int64),
                       row_step=market.row_step.astype(np.int64), horizon=H)


def _offsets(sizes: np.ndarray) -> np.ndarray:
    """(len + 1,) where consecutive blocks of these sizes start."""
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


class _Factors(NamedTuple):
    """[D A^T; A -W^-1] eliminated along the tree (`_factor`)."""

    inv_d: np.ndarray
    v: np.ndarray
    """(n,) what a cell's budget multiplier loads per unit: gamma / D."""
    rho: np.ndarray
    """(n_budgets,) 1 / (the budget's sum of 1 / D + its W^-1)."""
    L: np.ndarray
    """Per row: the Cholesky factor of s^2 M[K, K] + W^-1_K."""
    X: np.ndarray
    """Per row with a parent: L^-1 s M[K, S] (the columns of the parent's steps; the others are not needed)."""


@njit(cache=True, error_model="numpy")
def _factor(lay: _Layout, D: np.ndarray, w_budget: np.ndarray, w_rows: np.ndarray) -> tuple[_Factors, bool]:
    """The elimination of [D A^T; A -W^-1] (module doc), and False if a pivot lost definiteness to rounding.
    Per row on its steps R: M = the diagonal of its cells' gamma^2 / D, less one rank-one term per budget of
    its stations, plus what its children pass up (the lower triangle); L L^T = s^2 M[K, K] + W^-1_K,
    X = L^-1 s M[K, S]; it passes (M - X^T X)[S, S] up, S its parent's steps."""
    inv_d = 1.0 / D
    v = lay.gamma * inv_d
    n_budgets = lay.budget_off.size - 1
    rho = np.empty(n_budgets)
    for b in range(n_budgets):
        total = w_budget[b]
        for c in lay.budget_cells[lay.budget_off[b]:lay.budget_off[b + 1]]:
            total += inv_d[c]
        rho[b] = 1.0 / total
    r_off, m_off = lay.r_off, lay.m_off
    M = np.zeros(m_off[-1])
    for c in range(inv_d.size):
        a = lay.position[c]
        if a >= 0:
            j = lay.node[c]
            M[m_off[j] + a * (r_off[j + 1] - r_off[j] + 1)] += lay.gamma[c] ** 2 * inv_d[c]
    at, u = np.empty(r_off[-1], dtype=np.int64), np.empty(r_off[-1])
    for b in range(n_budgets):                                   # M -= u u^T per budget on the row
        j = lay.budget_node[b]
        if j < 0:
            continue
        r, root, size = r_off[j + 1] - r_off[j], np.sqrt(rho[b]), 0
        for c in lay.budget_cells[lay.budget_off[b]:lay.budget_off[b + 1]]:
            if lay.position[c] >= 0:
                at[size], u[size] = lay.position[c], root * v[c]
                size += 1
        for e in range(size):
            M[m_off[j] + at[e] * (r + 1)] -= u[e] * u[e]
            for f in range(e):                               # at[f] < at[e]: cells in order of step
                M[m_off[j] + at[e] * r + at[f]] -= u[e] * u[f]
    L, X = np.zeros(lay.l_off[-1]), np.zeros(lay.x_off[-1])
    for j in lay.order:
        r, k, s = r_off[j + 1] - r_off[j], lay.k_off[j + 1] - lay.k_off[j], lay.scale[j]
        Mj = M[m_off[j]:m_off[j + 1]].reshape((r, r))
        if k > 0:
            K = lay.k_pos[lay.k_off[j]:lay.k_off[j + 1]]
            Lj = L[lay.l_off[j]:lay.l_off[j + 1]].reshape((k, k))
            for a in range(k):                                   # Cholesky of s^2 M[K, K] + W^-1_K
                for e in range(a + 1):
                    value = s * s * Mj[K[a], K[e]]
                    if e == a:
                        value += w_rows[lay.k_off[j] + a]
                    for f in range(e):
                        value -= Lj[a, f] * Lj[e, f]
                    if e < a:
                        Lj[a, e] = value / Lj[e, e]
                    elif value > 0.0 and np.isfinite(value):
                        Lj[a, a] = np.sqrt(value)
                    else:
                        return _Factors(inv_d, v, rho, L, X), False
        p = lay.parent[j]
        if p < 0:
            continue
        S = lay.s_pos[lay.s_off[j]:lay.s_off[j + 1]]
        rp = S.size
        Mp = M[m_off[p]:m_off[p + 1]].reshape((rp, rp))
        Xj = X[lay.x_off[j]:lay.x_off[j + 1]].reshape((k, rp))
        if k > 0:
            for e in range(rp):                                  # X = L^-1 s M[K, S]
                for a in range(k):
                    value = s * (Mj[K[a], S[e]] if K[a] >= S[e] else Mj[S[e], K[a]])   # M's lower triangle
                    for f in range(a):
                        value -= Lj[a, f] * Xj[f, e]
                    Xj[a, e] = value / Lj[a, a]
        for e in range(rp):                                      # the parent's M += (M - X^T X)[S, S]
            for f in range(e + 1):
                value = Mj[S[e], S[f]]
                for a in range(k):
                    value -= Xj[a, e] * Xj[a, f]
                Mp[e, f] += value
    return _Factors(inv_d, v, rho, L, X), True


@njit(cache=True, error_model="numpy")
def _solve(lay: _Layout, fac: _Factors, r_cells: np.ndarray, r_budget: np.ndarray,
           r_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dp (n,), dz of the budget rows, dz of the network rows) of the factorised system with these
    right-hand sides: up the tree, each row passes the load of its stations and children at price 0 less
    X^T t, t = L^-1 (s B_K - r_K); down from the roots, dz_K = L^-T (t - X price) and the price under the
    row grows by s dz_K at K."""
    r_off, k_off = lay.r_off, lay.k_off
    w = r_cells * fac.inv_d
    n_budgets = r_budget.size
    t_budget = np.empty(n_budgets)
    for b in range(n_budgets):
        total = -r_budget[b]
        for c in lay.budget_cells[lay.budget_off[b]:lay.budget_off[b + 1]]:
            total += w[c]
        t_budget[b] = total
    B = np.zeros(r_off[-1])
    for c in range(w.size):
        a = lay.position[c]
        if a >= 0:
            value = lay.gamma[c] * w[c]
            b = lay.cell_budget[c]
            if b >= 0:
                value -= fac.rho[b] * t_budget[b] * fac.v[c]
            B[r_off[lay.node[c]] + a] += value
    T = np.zeros(k_off[-1])
    for j in lay.order:                                          # up: the load at price 0
        k, s = k_off[j + 1] - k_off[j], lay.scale[j]
        Bj = B[r_off[j]:r_off[j + 1]]
        K = lay.k_pos[k_off[j]:k_off[j + 1]]
        Lj = fac.L[lay.l_off[j]:lay.l_off[j + 1]].reshape((k, k))
        t = T[k_off[j]:k_off[j + 1]]
        for a in range(k):
            value = s * Bj[K[a]] - r_rows[k_off[j] + a]
            for f in range(a):
                value -= Lj[a, f] * t[f]
            t[a] = value / Lj[a, a]
        p = lay.parent[j]
        if p >= 0:
            S = lay.s_pos[lay.s_off[j]:lay.s_off[j + 1]]
            Xj = fac.X[lay.x_off[j]:lay.x_off[j + 1]].reshape((k, S.size))
            for e in range(S.size):
                value = Bj[S[e]]
                for a in range(k):
                    value -= Xj[a, e] * t[a]
                B[r_off[p] + e] += value
    dz_rows = np.zeros(r_rows.size)
    below = np.zeros(r_off[-1])                                  # the price per unit station gain under each row
    dz = np.empty(int(np.max(k_off[1:] - k_off[:-1])) if k_off.size > 1 else 0)
    for i in range(lay.order.size - 1, -1, -1):                  # down, from the roots
        j = lay.order[i]
        k, s = k_off[j + 1] - k_off[j], lay.scale[j]
        under = below[r_off[j]:r_off[j + 1]]
        K = lay.k_pos[k_off[j]:k_off[j + 1]]
        Lj = fac.L[lay.l_off[j]:lay.l_off[j + 1]].reshape((k, k))
        for a in range(k):
            dz[a] = T[k_off[j] + a]
        p = lay.parent[j]
        if p >= 0:
            S = lay.s_pos[lay.s_off[j]:lay.s_off[j + 1]]
            Xj = fac.X[lay.x_off[j]:lay.x_off[j + 1]].reshape((k, S.size))
            for e in range(S.size):
                sigma = below[r_off[p] + e]
                under[S[e]] = sigma
                for a in range(k):
                    dz[a] -= Xj[a, e] * sigma
        for a in range(k - 1, -1, -1):
            value = dz[a]
            for f in range(a + 1, k):
                value -= Lj[f, a] * dz[f]
            dz[a] = value / Lj[a, a]
        for a in range(k):
            dz_rows[k_off[j] + a] = dz[a]
            under[K[a]] += s * dz[a]
    price = np.zeros(w.size)
    for c in range(w.size):
        a = lay.position[c]
        if a >= 0:
            price[c] = below[r_off[lay.node[c]] + a]
    dz_budget = np.empty(n_budgets)
    for b in range(n_budgets):
        total = 0.0
        for c in lay.budget_cells[lay.budget_off[b]:lay.budget_off[b + 1]]:
            total += fac.v[c] * price[c]
        dz_budget[b] = fac.rho[b] * (t_budget[b] - total)
    dp = np.empty(w.size)
    for c in range(w.size):
        value = r_cells[c] - lay.gamma[c] * price[c]
        b = lay.cell_budget[c]
        if b >= 0:
            value -= dz_budget[b]
        dp[c] = value * fac.inv_d[c]
    return dp, dz_budget, dz_rows


@njit(cache=True, error_model="numpy")
def _load(lay: _Layout, p: np.ndarray) -> np.ndarray:
    """A p: what the cells p load on the budget rows and the network rows (summed up the tree)."""
    n_budgets = lay.budget_off.size - 1
    out = np.empty(n_budgets + lay.row_node.size)
    for b in range(n_budgets):
        total = 0.0
        for c in lay.budget_cells[lay.budget_off[b]:lay.budget_off[b + 1]]:
            total += p[c]
        out[b] = total
    grid = np.zeros((lay.parent.size, lay.horizon))
    for c in range(p.size):
        if lay.node[c] >= 0:
            grid[lay.node[c], lay.step[c]] += lay.gamma[c] * p[c]
    for j in lay.order:
        if lay.parent[j] >= 0:
            grid[lay.parent[j]] += grid[j]
    for r in range(lay.row_node.size):
        out[n_budgets + r] = lay.scale[lay.row_node[r]] * grid[lay.row_node[r], lay.row_step[r]]
    return out


@njit(cache=True, error_model="numpy")
def _price(lay: _Layout, z: np.ndarray) -> np.ndarray:
    """A^T z: what the multipliers z of the budget rows and the network rows (summed down the tree) cost a
    cell per kW."""
    n_budgets = lay.budget_off.size - 1
    grid = np.zeros((lay.parent.size, lay.horizon))
    for r in range(lay.row_node.size):
        grid[lay.row_node[r], lay.row_step[r]] = lay.scale[lay.row_node[r]] * z[n_budgets + r]
    for i in range(lay.order.size - 1, -1, -1):
        j = lay.order[i]
        if lay.parent[j] >= 0:
            grid[j] += grid[lay.parent[j]]
    out = np.zeros(lay.node.size)
    for c in range(out.size):
        if lay.node[c] >= 0:
            out[c] = lay.gamma[c] * grid[lay.node[c], lay.step[c]]
        if lay.cell_budget[c] >= 0:
            out[c] += z[lay.cell_budget[c]]
    return out


@njit(cache=True, error_model="numpy")
def _direction(lay: _Layout, fac: _Factors, D: np.ndarray, w: np.ndarray, s_lo: np.ndarray,
               s_hi: np.ndarray, s_r: np.ndarray, z_lo: np.ndarray, z_hi: np.ndarray, z_r: np.ndarray,
               r_primal: np.ndarray, r_dual: np.ndarray, c_lo: np.ndarray, c_hi: np.ndarray, c_r: np.ndarray,
               refine: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(dp = d s_lo = -d s_hi, d s_r, d z_lo, d z_hi, d z_r): the Newton step on the residuals with
    s * dz + z * ds = c for each pair (lower bounds, upper bounds, rows), the solve's rounding corrected
    once when `refine`."""
    n, m, n_b = D.size, w.size, fac.rho.size
    r_c = np.empty(n)
    for i in range(n):
        r_c[i] = -r_dual[i] + c_lo[i] / s_lo[i] - c_hi[i] / s_hi[i]
    r_r = np.empty(m)
    for e in range(m):
        r_r[e] = -r_primal[e] - c_r[e] / z_r[e]
    dp, dzb, dzr = _solve(lay, fac, r_c, r_r[:n_b], r_r[n_b:])
    if refine:
        dz = np.concatenate((dzb, dzr))
        e_c = r_c - D * dp - _price(lay, dz)
        e_r = r_r - _load(lay, dp) + w * dz
        dp += _solve(lay, fac, e_c, e_r[:n_b], e_r[n_b:])[0]    # the multipliers' steps follow from dp below
    ds_r = _load(lay, dp)
    dz_lo, dz_hi, dz_r = np.empty(n), np.empty(n), np.empty(m)
    for i in range(n):
        dz_lo[i] = (c_lo[i] - z_lo[i] * dp[i]) / s_lo[i]
        dz_hi[i] = (c_hi[i] + z_hi[i] * dp[i]) / s_hi[i]
    for e in range(m):
        ds_r[e] = -r_primal[e] - ds_r[e]
        dz_r[e] = (c_r[e] - z_r[e] * ds_r[e]) / s_r[e]
    return dp, ds_r, dz_lo, dz_hi, dz_r


@njit(cache=True, error_model="numpy")
def _interior_point(lay: _Layout, P: np.ndarray, q: np.ndarray, lo: np.ndarray, hi: np.ndarray, rhs: np.ndarray,
                    p: np.ndarray,
                    max_iterations: int) -> tuple[int, np.ndarray, np.ndarray, int]:
    """(status, p, z, iterations) of Mehrotra's predictor-corrector method from p (`interior_point`): status
    0 within TOLERANCE, 1 the last iterate within ACCEPTABLE, 2 none."""
    n, m, n_b = q.size, rhs.size, lay.budget_off.size - 1
    pairs = 2 * n + m
    mu = 0.5 * np.mean(hi - lo)                        # every pair's product at the start
    s_lo, s_hi, s_r = p - lo, hi - p, np.maximum(rhs - _load(lay, p), 1e-3 * mu)
    z_lo, z_hi, z_r = mu / s_lo, mu / s_hi, mu / s_r
    scale_b = 1.0 + (np.max(np.abs(rhs)) if m else 0.0)
    scale_q = 1.0 + np.max(np.abs(q))
    status, best_p, best_z = 2, p.copy(), np.zeros(m)
    r_dual, D, r_primal, w = np.empty(n), np.empty(n), np.empty(m), np.empty(m)
    for iteration in range(max_iterations):
        load, price = _load(lay, p), _price(lay, z_r)
        gap = objective = worst_dual = worst_primal = 0.0
        for i in range(n):
            r_dual[i] = P[i] * p[i] + q[i] - z_lo[i] + z_hi[i] + price[i]
            worst_dual = max(worst_dual, abs(r_dual[i]))
            gap += s_lo[i] * z_lo[i] + s_hi[i] * z_hi[i]
            objective += (0.5 * P[i] * p[i] + q[i]) * p[i]
            D[i] = P[i] + z_lo[i] / s_lo[i] + z_hi[i] / s_hi[i]
        for e in range(m):
            r_primal[e] = load[e] + s_r[e] - rhs[e]
            worst_primal = max(worst_primal, abs(r_primal[e]))
            gap += s_r[e] * z_r[e]
            w[e] = s_r[e] / z_r[e]
        if not np.isfinite(gap + objective):
            return status, best_p, best_z, iteration
        relative = gap / (1.0 + abs(objective))
        if worst_primal <= RESIDUAL * scale_b and worst_dual <= DUAL_RESIDUAL * scale_q and relative <= ACCEPTABLE:
            status, best_p, best_z = 1, p.copy(), z_r.copy()
            if relative <= TOLERANCE:
                return 0, best_p, best_z, iteration
        mu = gap / pairs
        fac, definite = _factor(lay, D, w[:n_b], w[n_b:])
        if not definite:                               # a Newton system lost definiteness to rounding
            return status, best_p, best_z, iteration
        refine = relative < _REFINE_BELOW
        dp, ds_r, dz_lo, dz_hi, dz_r = _direction(lay, fac, D, w, s_lo, s_hi, s_r, z_lo, z_hi, z_r, r_primal,
                                                  r_dual, -s_lo * z_lo, -s_hi * z_hi, -s_r * z_r, refine)
        ap, ad = _step_lengths(s_lo, s_hi, s_r, z_lo, z_hi, z_r, dp, ds_r, dz_lo, dz_hi, dz_r)   # the predictor
        sigma = (_pairs_after(s_lo, z_lo, dp, dz_lo, ap, ad) + _pairs_after(s_hi, z_hi, -dp, dz_hi, ap, ad)
                 + _pairs_after(s_r, z_r, ds_r, dz_r, ap, ad)) / pairs / mu
        target = sigma ** 3 * mu                       # Mehrotra's corrector
        dp, ds_r, dz_lo, dz_hi, dz_r = _direction(
            lay, fac, D, w, s_lo, s_hi, s_r, z_lo, z_hi, z_r, r_primal, r_dual,
            target - s_lo * z_lo - dp * dz_lo, target - s_hi * z_hi + dp * dz_hi, target - s_r * z_r - ds_r * dz_r,
            refine)
        ap, ad = _step_lengths(s_lo, s_hi, s_r, z_lo, z_hi, z_r, dp, ds_r, dz_lo, dz_hi, dz_r)
        ap, ad = min(1.0, _STEP * ap), min(1.0, _STEP * ad)
        if relative <= _COMMON_STEP:                   # one step for both: exact on stationarity's P p term
            ap = ad = min(ap, ad)
        for i in range(n):
            p[i] += ap * dp[i]
            s_lo[i] += ap * dp[i]
            s_hi[i] -= ap * dp[i]
            z_lo[i] += ad * dz_lo[i]
            z_hi[i] += ad * dz_hi[i]
        for e in range(m):
            s_r[e] += ap * ds_r[e]
            z_r[e] += ad * dz_r[e]
    return status, best_p, best_z, max_iterations


@njit(cache=True, error_model="numpy")
def _step_lengths(s_lo: np.ndarray, s_hi: np.ndarray, s_r: np.ndarray, z_lo: np.ndarray, z_hi: np.ndarray,
                  z_r: np.ndarray, dp: np.ndarray, ds_r: np.ndarray, dz_lo: np.ndarray, dz_hi: np.ndarray,
                  dz_r: np.ndarray) -> tuple[float, float]:
    """The largest primal and dual steps in [0, 1] that keep every slack and multiplier >= 0."""
    ap = ad = 1.0
    for i in range(dp.size):
        if dp[i] < 0.0:
            ap = min(ap, -s_lo[i] / dp[i])
        elif dp[i] > 0.0:
            ap = min(ap, s_hi[i] / dp[i])
        if dz_lo[i] < 0.0:
            ad = min(ad, -z_lo[i] / dz_lo[i])
        if dz_hi[i] < 0.0:
            ad = min(ad, -z_hi[i] / dz_hi[i])
    for e in range(ds_r.size):
        if ds_r[e] < 0.0:
            ap = min(ap, -s_r[e] / ds_r[e])
        if dz_r[e] < 0.0:
            ad = min(ad, -z_r[e] / dz_r[e])
    return ap, ad


@njit(cache=True, error_model="numpy")
def _pairs_after(s: np.ndarray, z: np.ndarray, ds: np.ndarray, dz: np.ndarray, ap: float, ad: float) -> float:
    """sum (s + ap ds) (z + ad dz)."""
    total = 0.0
    for e in range(s.size):
        total += (s[e] + ap * ds[e]) * (z[e] + ad * dz[e])
    return total


def interior_point(market: TreeMarket) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(p (n,), z (rows,), iterations) optimal for the market by Mehrotra's predictor-corrector method, the
    Newton systems by elimination along the tree (`_factor`, `_solve`), compiled: the first iterate within
    TOLERANCE, else the last within ACCEPTABLE (the residuals within RESIDUAL and DUAL_RESIDUAL), else None.
    The complementarity pairs (slack, multiplier) are those of the lower bounds, the upper bounds and the rows."""
    m = market
    status, p, z, iterations = _interior_point(_Layout.of(m), m.P, m.q, m.lo, m.hi, m.rhs,
                                               m.lo + _start_share(m) * (m.hi - m.lo), MAX_ITERATIONS)
    return None if status == 2 else (p, z, iterations)


def _start_share(market: TreeMarket) -> np.ndarray:
    """(n,) where each cell starts between its bounds: half way, or less where a row it loads would be past
    half of its room (lo + share (hi - lo) holds every row with room to spare, when the lower bounds do)."""
    A = market.A
    lo_load = A @ market.lo
    room = np.clip((market.rhs - lo_load) / np.maximum(A @ (market.hi - market.lo), 1e-300), 0.0, 1.0)
    C = A.tocsc()
    share = np.full(A.shape[1], 1.0)
    filled = np.flatnonzero(np.diff(C.indptr) > 0)
    if filled.size:
        share[filled] = np.minimum.reduceat(room[C.indices], C.indptr[filled])
    return 0.5 * np.maximum(share, 1e-3)


def clear_tree_market(problem: ChargingProblem, costs: StationCosts) -> tuple[np.ndarray, np.ndarray] | None:
    """(plans (N, H) kW, multipliers y (J, H) complex) of the model market on a tree network (as
    `network_market.clear_separable_market` returns them); None when the network is not a tree, a budget
    cannot be met or the interior point stops short."""
    network: Network = problem.network
    if network.tree is None:
        return None
    mask = problem.mask
    objective_scale = max(1.0, float(np.max(np.abs(np.where(mask, costs.linear, 0.0)), initial=0.0)))
    built = build_market(problem, costs, objective_scale)
    if built is None:
        return None
    market, plan = built
    J, H = network.n_constraints, problem.horizon
    y = np.zeros((J, H), dtype=np.complex128)
    if market.station.size:
        solved = interior_point(market)
        if solved is None:
            return None
        p, z, _ = solved
        plan[market.station, market.step] = np.clip(p, market.lo, market.hi)
        rows = np.maximum(z[market.budget_station.size:], 0.0)
        y[market.row_node, market.row_step] = rows * network.direction[market.row_node]
    return plan, y * objective_scale
