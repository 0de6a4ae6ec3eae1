"""The model market on a tree of nested linear limits (`pev_env.network.RowTree`), cleared by a primal-dual
interior point whose Newton systems are solved by elimination along the tree.

The market is `network_market`'s (the stations' separable bid QPs, their known budgets, the network's rows
that can bind), with the rows in their own units:

    min  sum_c eps_c p_c^2 + a_c p_c   s.t.  lo <= p <= hi,  sum_{c of i} p_c <= B_i (known budgets),
         sum_{c under j at k} s_j gamma_i p_c <= L_j (the rows (j, k) that can bind)

(s_j gamma_i = |g_ji|: `RowTree.factor` and `.station_gain`). Each Mehrotra predictor-corrector iteration
solves [D A^T; A -W^-1] [dp; dz] = [r_c; r_r] with D diagonal over the cells and W^-1 over the rows
(`_Elimination`). Given the price sigma (H,) that a row's ancestors add per unit of station gain, the
stations and rows under the row answer with the load b - M sigma, an affine map with an H x H matrix M: a
station adds a diagonal (less one rank-one term if its budget is a row), and the row's own bindable steps
K subtract X^T X, X = L^-1 s M[K, :], L L^T = s^2 M[K, K] + W^-1_K; M is only needed on the steps R where
the row or an ancestor has a bindable row. So the system is eliminated from the leaves up (the rows without
children in batches of similar |K|, the rows above one depth at a time) and solved from the root down: a
few |R| x |R| products per row and a handful of passes over the cells, where
Clarabel's KKT system holds every cell and bound (docs/FORMULATION.md, "Clearing a tree's market").
Clarabel remains the market of every other network, of small trees, and of a tree whose interior point
stops short (`network_market.clear_separable_market`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
_REFINEMENTS = 1     # iterative refinements of each Newton solve ...
_REFINE_BELOW = 1e-6  # ... once the relative gap is below this


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


_BUCKETS = np.array([0, 3, 8, 16, 32, 64, 128, 288])
"""Rows without children are eliminated in batches of similar numbers of bindable steps (padding costs K^2)."""


@dataclass(frozen=True)
class _Group:
    """Rows eliminated together (rows without children, by their number of bindable steps; then the rows above
    them, one depth at a time). A row works on its steps R: its own bindable steps K and its ancestors'
    (its parent's R, in the parent's order: S), the only steps at which anything above it prices its
    stations. Positions into R are padded with R_max (a scratch position that stays 0)."""

    nodes: np.ndarray
    """(g,) the rows."""
    r_step: np.ndarray
    r_valid: np.ndarray
    """(g, R_max) each row's steps R (padding: step 0, not valid)."""
    k_pos: np.ndarray
    k_row: np.ndarray
    """(g, K) the positions in R of the row's bindable steps, and their network row index (-1: padding)."""
    s_pos: np.ndarray
    """(g, S) the positions in R of the parent's steps R, in the parent's order."""
    children: np.ndarray
    """(g, C) the rows' children (J: padding)."""


@dataclass(frozen=True)
class _Layout:
    """Where every cell, budget and row sits in the tree (computed once per market)."""

    node: np.ndarray
    """(n,) each cell's smallest row (-1: it loads none)."""
    position: np.ndarray
    """(n,) the position of the cell's step in its row's steps R (-1: not there: nothing prices it)."""
    gamma: np.ndarray
    """(n,) the cell's station gain."""
    cell_budget: np.ndarray
    """(n,) the budget row of the cell's station (-1: none)."""
    budget_node: np.ndarray
    budget_slot: np.ndarray
    """(n_budgets,) the budget's station's smallest row, and its column among that row's budgets."""
    width: int
    """Most budgets on one row (at least 1: the columns of U)."""
    steps: int
    """Most steps R of one row (the width of what rows pass to each other)."""
    budget_sum: sparse.csr_matrix
    """(n_budgets, n): sums over each budget's cells."""
    spread: sparse.csr_matrix
    """(n, n_budgets): each cell's budget's value (0 without one)."""
    row_sum: sparse.csr_matrix
    """(J H, n): sums over the cells of each row's own stations at each step."""
    groups: list[_Group]
    """In the order of elimination (children before parents)."""

    @staticmethod
    def of(market: TreeMarket) -> _Layout:
        tree, H = market.tree, market.horizon
        J = tree.parent.size
        of_station = np.full(tree.leaf.size, -1)
        of_station[market.budget_station] = np.arange(market.budget_station.size)
        budget_node = tree.leaf[market.budget_station]
        order = np.argsort(budget_node, kind="stable")
        slot = np.zeros(budget_node.size, dtype=int)
        if order.size:
            sorted_nodes = budget_node[order]
            starts = np.flatnonzero(np.r_[True, sorted_nodes[1:] != sorted_nodes[:-1]])
            slot[order] = np.arange(order.size) - np.repeat(starts, np.diff(np.r_[starts, order.size]))
        parent, depth = tree.parent, tree.depth
        n_children = np.bincount(parent[parent >= 0], minlength=J)
        count = np.bincount(market.row_node, minlength=J)
        first = np.cumsum(count) - count
        on_steps = np.zeros((J + 1, H), dtype=bool)             # R of each row: its K and its ancestors'
        on_steps[market.row_node, market.row_step] = True
        for level in range(1, int(depth.max(initial=0)) + 1):
            rows = np.flatnonzero(depth == level)
            on_steps[rows] |= on_steps[parent[rows]]
        position = np.cumsum(on_steps, axis=1) - 1               # a step's position in its row's R
        bottom = np.flatnonzero(n_children == 0)
        which = np.searchsorted(_BUCKETS, count[bottom])
        batches = [bottom[which == b] for b in np.unique(which)]
        upper = np.flatnonzero(n_children > 0)
        batches += [upper[depth[upper] == level] for level in sorted(set(depth[upper]), reverse=True)]
        child_order = np.argsort(parent, kind="stable")[np.sum(parent < 0):]     # children grouped by parent
        child_start = np.cumsum(n_children) - n_children
        parent_or_none = np.where(parent >= 0, parent, J)        # row J: no steps
        groups = []
        for nodes in batches:
            r_step, r_valid = _padded_steps(on_steps[nodes])
            k = int(count[nodes].max(initial=0))
            k_valid = np.arange(k)[None, :] < count[nodes][:, None]
            k_row = np.where(k_valid, first[nodes][:, None] + np.arange(k)[None, :], -1)
            R = r_step.shape[1]
            k_pos = np.where(k_valid, position[nodes[:, None], market.row_step[np.maximum(k_row, 0)]], R)
            above, s_valid = _padded_steps(on_steps[parent_or_none[nodes]])
            s_pos = np.where(s_valid, position[nodes[:, None], above], R)
            c = int(n_children[nodes].max(initial=0))
            has = np.arange(c)[None, :] < n_children[nodes][:, None]
            children = np.where(has, child_order[np.minimum(child_start[nodes][:, None] + np.arange(c)[None, :],
                                                            max(child_order.size - 1, 0))], J)
            groups.append(_Group(nodes, r_step, r_valid, k_pos, k_row, s_pos, children))
        node = tree.leaf[market.station]
        at = np.maximum(node, 0), market.step
        cell_position = np.where((node >= 0) & on_steps[at], position[at], -1)
        n = node.size
        cell_budget = of_station[market.station]
        has, on = cell_budget >= 0, node >= 0
        budget_sum = sparse.csr_matrix((np.ones(int(has.sum())), (cell_budget[has], np.flatnonzero(has))),
                                       shape=(market.budget_station.size, n))
        row_sum = sparse.csr_matrix((np.ones(int(on.sum())), ((node * H + market.step)[on], np.flatnonzero(on))),
                                    shape=(J * H, n))
        return _Layout(node, cell_position, tree.station_gain[market.station], cell_budget,
                       budget_node, slot, max(int(slot.max(initial=-1)) + 1, 1),
                       int(on_steps.sum(axis=1).max(initial=0)), budget_sum, budget_sum.T.tocsr(), row_sum, groups)


def _padded_steps(on: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(steps (g, R), valid (g, R)): each row's steps where `on` (g, H), ascending, padded with step 0."""
    size = on.sum(axis=1)
    valid = np.arange(int(size.max(initial=0)))[None, :] < size[:, None]
    steps = np.zeros(valid.shape, dtype=int)
    steps[valid] = np.nonzero(on)[1]
    return steps, valid


class _GroupFactor:
    """One group eliminated. Per row, on its steps R (plus the scratch position): the matrix M of its
    stations and children (diag(d) - U U^T plus the children's M~), L L^T = s^2 M[K, K] + W^-1_K (kept as
    L^-1), X = L^-1 s M[K, :]; it passes M~ = M - X^T X on its parent's steps up (into `passed`,
    (J + 1, P, P): row J stays 0)."""

    def __init__(self, group: _Group, s: np.ndarray, d: np.ndarray, U: np.ndarray, w_rows: np.ndarray,
                 passed: np.ndarray) -> None:
        self.group = group
        self.valid = group.k_row >= 0
        self.s = s[group.nodes][:, None]
        g, R = group.r_step.shape
        rows = np.arange(g)[:, None]
        Ug = U[group.nodes[:, None], group.r_step] * group.r_valid[:, :, None]     # (g, R, w)
        M = np.zeros((g, R + 1, R + 1))
        inner = M[:, :R, :R]
        inner -= Ug @ Ug.transpose(0, 2, 1)
        inner[:, np.arange(R), np.arange(R)] += d[group.nodes[:, None], group.r_step] * group.r_valid
        if group.children.shape[1]:
            inner += passed[group.children, :R, :R].sum(axis=1)
        self.L = self.X = None
        k = group.k_pos.shape[1]
        if k:
            MK = M[rows, group.k_pos]                            # (g, K, R + 1): the rows K of M
            Q = self.s[:, :, None] ** 2 * np.take_along_axis(MK, group.k_pos[:, None, :], axis=2)
            Q[:, np.arange(k), np.arange(k)] += np.where(self.valid, w_rows[np.maximum(group.k_row, 0)], 1.0)
            self.L = np.linalg.inv(np.linalg.cholesky(Q))       # L^-1, lower triangular
            self.X = self.L @ (self.s[:, :, None] * MK)
            M -= self.X.transpose(0, 2, 1) @ self.X
        S = group.s_pos.shape[1]
        passed[group.nodes, :S, :S] = M[rows[:, :, None], group.s_pos[:, :, None], group.s_pos[:, None, :]]

    def up(self, B: np.ndarray, r_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(what these rows pass up on their parents' steps (g, S), t = L^-1 (s B_K - r_K)) from the load B
        (g, R + 1) of their stations and children at sigma = 0: B - X^T t."""
        group = self.group
        rows = np.arange(B.shape[0])[:, None]
        t = None
        if self.L is not None:
            rK = np.where(self.valid, r_rows[np.maximum(group.k_row, 0)], 0.0)
            t = np.einsum("bkl,bl->bk", self.L, self.s * B[rows, group.k_pos] - rK)
            B = B - np.einsum("bkh,bk->bh", self.X, t)
        return B[rows, group.s_pos], t

    def down(self, t: np.ndarray | None, sigma: np.ndarray, dz_rows: np.ndarray) -> np.ndarray:
        """The price under each row on its steps (g, R + 1) from the price sigma (g, S) on its parent's;
        its multipliers into dz_rows."""
        group = self.group
        g, R = group.r_step.shape
        rows = np.arange(g)[:, None]
        below = np.zeros((g, R + 1))
        below[rows, group.s_pos] = sigma                          # padding lands on the scratch position
        if self.L is not None:
            dz = np.einsum("blk,bl->bk", self.L, t - np.einsum("bkh,bh->bk", self.X, below))
            dz_rows[group.k_row[self.valid]] = dz[self.valid]
            below[rows, group.k_pos] += self.s * dz * self.valid
        below[:, R] = 0.0
        return below


class _Elimination:
    """The factorisation of [D A^T; A -W^-1] along the tree (module doc) and its solves."""

    def __init__(self, market: TreeMarket, layout: _Layout, D: np.ndarray, w_budget: np.ndarray,
                 w_rows: np.ndarray) -> None:
        self.market, self.layout = market, layout
        m, lay = market, layout
        H, J = m.horizon, m.tree.parent.size
        self.inv_d = inv_d = 1.0 / D
        d = (lay.row_sum @ (lay.gamma**2 * inv_d)).reshape(J, H)
        b = lay.cell_budget
        self.rho = 1.0 / (lay.budget_sum @ inv_d + w_budget)
        self.v = lay.gamma * inv_d                                # what a cell's budget multiplier loads per unit
        U = np.zeros((J, H, lay.width))
        on_row = (b >= 0) & (lay.node >= 0)                       # a station loading no row adds no load
        bc = b[on_row]
        U[lay.budget_node[bc], m.step[on_row], lay.budget_slot[bc]] = np.sqrt(self.rho[bc]) * self.v[on_row]
        passed = np.zeros((J + 1, lay.steps + 1, lay.steps + 1))
        self.groups = [_GroupFactor(group, m.tree.factor, d, U, w_rows, passed) for group in lay.groups]

    def solve(self, r_cells: np.ndarray, r_budget: np.ndarray, r_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dp (n,), dz of the budget rows, dz of the network rows) of the system with these right-hand sides."""
        m, lay = self.market, self.layout
        H, J = m.horizon, m.tree.parent.size
        w = r_cells * self.inv_d
        t_budget = lay.budget_sum @ w - r_budget
        B = (lay.row_sum @ (lay.gamma * w - (lay.spread @ (self.rho * t_budget)) * self.v)).reshape(J, H)
        P = lay.steps + 1
        out = np.zeros((J + 1, P))                                # up: what each row passes at sigma = 0
        ts = []
        for factor in self.groups:
            group = factor.group
            g, R = group.r_step.shape
            Bg = np.zeros((g, R + 1))
            Bg[:, :R] = B[group.nodes[:, None], group.r_step] * group.r_valid
            if group.children.shape[1]:
                Bg[:, :R] += out[group.children, :R].sum(axis=1)
            passing, t = factor.up(Bg, r_rows)
            out[group.nodes, :passing.shape[1]] = passing
            ts.append(t)
        dz_rows = np.zeros(r_rows.size)                           # down: the price (per unit station gain) under
        below = np.zeros((J + 1, P))                              # each row on its steps, from the root
        parent = np.where(m.tree.parent >= 0, m.tree.parent, J)
        for factor, t in zip(reversed(self.groups), reversed(ts)):
            group = factor.group
            sigma = below[parent[group.nodes], :group.s_pos.shape[1]]
            under = factor.down(t, sigma, dz_rows)
            below[group.nodes, :under.shape[1]] = under
        price = np.where(lay.position >= 0, below[np.maximum(lay.node, 0), np.maximum(lay.position, 0)], 0.0)
        dz_budget = self.rho * (t_budget - lay.budget_sum @ (self.v * price))
        dp = (r_cells - lay.gamma * price - lay.spread @ dz_budget) * self.inv_d
        return dp, dz_budget, dz_rows


def interior_point(market: TreeMarket) -> tuple[np.ndarray, np.ndarray] | None:
    """(p (n,), z (rows,)) optimal for the market by Mehrotra's predictor-corrector method, the Newton systems
    by `_Elimination`: the first iterate within TOLERANCE, else the last within ACCEPTABLE (the residuals
    within RESIDUAL and DUAL_RESIDUAL), else None. The complementarity pairs (slack, multiplier) are
    stacked: the lower bounds, the upper bounds, the rows."""
    m = market
    layout = _Layout.of(m)
    A, AT, rhs = m.A, m.A.T.tocsr(), m.rhs
    n, n_b = m.q.size, m.budget_station.size
    width = m.hi - m.lo
    p = m.lo + _start_share(m) * width
    mu = 0.5 * float(width.mean())                     # every pair's product at the start
    slack = np.concatenate([p - m.lo, m.hi - p, np.maximum(rhs - A @ p, 1e-3 * mu)])
    dual = mu / slack
    scale_b = 1.0 + float(np.max(np.abs(rhs), initial=0.0))
    scale_q = 1.0 + float(np.max(np.abs(m.q), initial=0.0))
    best = None
    for _ in range(MAX_ITERATIONS):
        z_lo, z_hi, z = dual[:n], dual[n:2 * n], dual[2 * n:]
        r_dual = m.P * p + m.q - z_lo + z_hi + AT @ z
        r_primal = A @ p + slack[2 * n:] - rhs
        gap = float(slack @ dual)
        objective = float(0.5 * p @ (m.P * p) + m.q @ p)
        if not np.isfinite(gap + objective):
            return best
        relative = gap / (1.0 + abs(objective))
        if np.max(np.abs(r_primal), initial=0.0) <= RESIDUAL * scale_b and \
                np.max(np.abs(r_dual), initial=0.0) <= DUAL_RESIDUAL * scale_q and relative <= ACCEPTABLE:
            best = (p, z)
            if relative <= TOLERANCE:
                return best
        mu = gap / slack.size
        ratio = dual / slack
        D, w = m.P + ratio[:n] + ratio[n:2 * n], 1.0 / ratio[2 * n:]
        try:
            system = _Elimination(m, layout, D, w[:n_b], w[n_b:])
        except np.linalg.LinAlgError:                      # a Newton system lost definiteness to rounding
            return best

        def direction(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """(d slack, d dual): the Newton step on the residuals with slack * d dual + dual * d slack = c."""
            c_by_s = c / slack
            r_r = -r_primal - c[2 * n:] / z
            r_c = -r_dual + c_by_s[:n] - c_by_s[n:2 * n]
            dp, dzb, dzr = system.solve(r_c, r_r[:n_b], r_r[n_b:])
            for _ in range(_REFINEMENTS if relative < _REFINE_BELOW else 0):   # the solve's rounding, corrected
                dz = np.concatenate([dzb, dzr])
                e_c = r_c - D * dp - AT @ dz
                e_r = r_r - A @ dp + w * dz
                ep, ezb, ezr = system.solve(e_c, e_r[:n_b], e_r[n_b:])
                dp, dzb, dzr = dp + ep, dzb + ezb, dzr + ezr
            d_slack = np.concatenate([dp, -dp, -r_primal - A @ dp])
            return d_slack, c_by_s - ratio * d_slack

        def steps(d_slack: np.ndarray, d_dual: np.ndarray) -> tuple[float, float]:
            return _largest_step(slack, d_slack), _largest_step(dual, d_dual)

        ds, dd = direction(-slack * dual)                          # the affine (predictor) step
        ap, ad = steps(ds, dd)
        sigma = (float((slack + ap * ds) @ (dual + ad * dd)) / slack.size / mu) ** 3
        ds, dd = direction(sigma * mu - slack * dual - ds * dd)   # Mehrotra's corrector
        ap, ad = steps(ds, dd)
        ap, ad = min(1.0, _STEP * ap), min(1.0, _STEP * ad)
        if relative <= _COMMON_STEP:                       # one step for both: exact on stationarity's P p term
            ap = ad = min(ap, ad)
        p = p + ap * ds[:n]
        slack = slack + ap * ds
        dual = dual + ad * dd
    return best


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


def _largest_step(x: np.ndarray, dx: np.ndarray) -> float:
    """The largest alpha in [0, 1] keeping x + alpha dx >= 0 (x > 0)."""
    down = dx < 0
    return min(1.0, float(np.min(-x[down] / dx[down]))) if down.any() else 1.0


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
        with np.errstate(all="ignore"):
            solved = interior_point(market)
        if solved is None:
            return None
        p, z = solved
        plan[market.station, market.step] = np.clip(p, market.lo, market.hi)
        rows = np.maximum(z[market.budget_station.size:], 0.0)
        y[market.row_node, market.row_step] = rows * network.direction[market.row_node]
    return plan, y * objective_scale
