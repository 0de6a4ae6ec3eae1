"""SeparableStations (closed-form station QPs of the deadline objective) against independent solvers."""

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import assume, given, settings as hsettings, strategies as st_

from pev_mpc import ChargingProblem, MPCSettings
from pev_mpc.decentralised import make_station_pool, station_solver
from pev_mpc.piecewise import clipped_sum_root
from pev_mpc.separable_qp import SeparableStations, bid_model

H = 16


def random_problem(rng, n, cap_binding):
    x0 = rng.uniform(0, 20, n)
    need = rng.uniform(0, 3, n) if cap_binding else rng.uniform(0, 30, n)  # small needs: budgets bind
    d = rng.integers(0, H + 1, n)
    return ChargingProblem(x0=x0, r=x0 + need, s=x0 + need + rng.uniform(0, 5, n), d=d,
                           p_min=rng.choice([0.0, 0.0, 0.5], n), p_max=rng.choice([3.3, 7.2, 22.0], n), eta=0.9,
                           dt_h=0.25, P_ref=np.full(H, 10.0 * n), horizon=H,
                           departure=np.where(d < H, d, d + rng.integers(0, 30, n)))


def clarabel_replies(pr, costs, prices):
    """The station QPs written independently (SOC cap on every step) and solved by Clarabel."""
    p = cp.Variable((pr.n_stations, H))
    z = pr.x0[:, None] + pr.c * cp.cumsum(p, axis=1)
    m = pr.mask
    objective = (cp.sum(cp.multiply(costs.linear + prices[None, :], p))
                 + cp.sum_squares(cp.multiply(np.sqrt(costs.power_reg)[:, None] * m, p)))
    cons = [p >= m * pr.p_min[:, None], p <= m * pr.p_max[:, None],
            cp.multiply(m, z - costs.cap[:, None]) <= 0]
    cp.Problem(cp.Minimize(objective), cons).solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10,
                                                   tol_feas=1e-10)
    return np.where(m, p.value, 0.0)


@hsettings(max_examples=25, deadline=None)
@given(seed=st_.integers(0, 10_000), scale=st_.floats(0.0, 1.5), cap_binding=st_.booleans(),
       reg=st_.sampled_from([3e-4, 3e-3, 0.1]))
def test_separable_equals_an_independent_qp_solve(seed, scale, cap_binding, reg):
    """Plans are optimal: never worse than Clarabel's on each station's QP, and feasible."""
    rng = np.random.default_rng(seed)
    pr = random_problem(rng, 8, cap_binding)
    assume(not np.any((pr.d > 0) & (pr.x0 + pr.c * pr.p_min * pr.d > pr.s)))  # feasible
    st = MPCSettings(horizon=H, deadline_reg=reg)
    unit = pr.c * st.unmet_weight  # marginal value of a kW at the minimum plan is about unit (1 + bonus)
    prices = rng.uniform(0, scale * 1.5 * unit, H)
    pool = SeparableStations(pr, st)
    sep = pool.respond(prices)
    ref = clarabel_replies(pr, pool.costs, prices)
    ref_value = pool.costs.value(pr, ref) + ref @ prices
    assert not sep.failed.any()
    assert np.all(sep.value <= ref_value + 1e-8 * (1 + np.abs(ref_value)))
    np.testing.assert_allclose(sep.value, ref_value, rtol=1e-7, atol=1e-7)
    v = pr.violation(sep.p)
    assert v["cap_kwh"] <= 1e-9 and v["box_kw"] == 0.0 and v["outside_kw"] == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_separable_sensitivity_is_the_derivative_of_the_response(seed):
    rng = np.random.default_rng(seed)
    pr = random_problem(rng, 12, cap_binding=bool(seed % 2))
    st = MPCSettings(horizon=H, deadline_reg=0.2)  # wide bands: many steps strictly inside their bounds
    pool = SeparableStations(pr, st)
    unit = pr.c * st.unmet_weight
    prices = rng.uniform(0.9 * unit, 1.5 * unit, H)
    S = pool.respond(prices, want_sensitivity=True).sensitivity
    h = 1e-7
    fd = np.column_stack([-(pool.solve(prices + h * e).sum(0) - pool.solve(prices - h * e).sum(0)) / (2 * h)
                          for e in np.eye(H)])
    assert np.abs(S).max() > 1.0  # not a degenerate instance
    np.testing.assert_allclose(S, fd, atol=1e-4 * (1 + np.abs(S).max()))
    tol = 1e-9 * (1 + np.abs(S).max())
    assert np.all(np.linalg.eigvalsh(S) >= -tol)
    smooth = pool.sensitivity(np.full(H, 0.5))  # smoothed: PSD and at least as large as the exact one
    assert np.all(np.linalg.eigvalsh(smooth - S) >= -tol)


@pytest.mark.parametrize("ties", [False, True])
def test_clipped_sum_root_meets_the_budget_exactly(ties):
    """Also with many equal breakpoints (integer a and bounds), whose order the sort leaves open."""
    rng = np.random.default_rng(3)
    n, h = 200, 24
    a = rng.integers(-10, 2, (n, h)).astype(float) if ties else rng.uniform(-10, 1, (n, h))
    te = np.ones((n, 1)) if ties else rng.uniform(0.01, 1, (n, 1))
    lo, hi = np.zeros((n, h)), np.full((n, h), 7.0)
    budget = rng.uniform(0.5, 20, n)
    over = np.clip(-a / te, lo, hi).sum(1) > budget
    mu = clipped_sum_root(a[over], te[over], lo[over], hi[over], budget[over])
    total = np.clip(-(a[over] + mu[:, None]) / te[over], lo[over], hi[over]).sum(1)
    np.testing.assert_allclose(total, budget[over], rtol=1e-10, atol=1e-10)
    assert np.all(mu > 0)


def test_auto_picks_the_closed_form_only_where_it_applies():
    pr = random_problem(np.random.default_rng(0), 4, cap_binding=False)
    assert station_solver(pr, MPCSettings(horizon=H)) == "separable"
    assert station_solver(pr, MPCSettings(horizon=H, objective="tracking")) == "active_set"
    assert isinstance(make_station_pool(pr, MPCSettings(horizon=H)), SeparableStations)
    with pytest.raises(ValueError, match="node weights 0"):
        SeparableStations(pr, MPCSettings(horizon=H, objective="tracking"))


@pytest.mark.parametrize("seed", range(4))
def test_separable_sensitivity_equals_the_inverse_of_each_station_hessian(seed):
    """Exact and smoothed: sum_i (D_i + kappa_i c^2 1 1^T)^{-1} over each station's free (or all) steps."""
    rng = np.random.default_rng(seed)
    pr = random_problem(rng, 10, cap_binding=bool(seed % 2))
    st = MPCSettings(horizon=H, deadline_reg=0.1)
    pool = SeparableStations(pr, st)
    pool.respond(rng.uniform(0.9, 1.5, H) * pr.c * st.unmet_weight)
    raw, te, c = pool._raw, pool.two_eps[:, 0], pr.c  # per station that can draw power (pool.rows)
    assert np.array_equal(pool.rows, np.flatnonzero(pr.mask.any(axis=1)))
    omega = rng.uniform(0.01, 3.0, H)
    exact, smooth = np.zeros((H, H)), np.zeros((H, H))
    for i, station in enumerate(pool.rows):
        k = np.flatnonzero(pr.mask[station])
        beyond = np.maximum(np.maximum(raw[i, k] - pool.hi[i, k], pool.lo[i, k] - raw[i, k]), 0.0)
        stiffness = te[i] + te[i] * beyond / omega[k]
        pin = (pool._mu[i] / c) / (c * omega.max()) * c**2
        smooth[np.ix_(k, k)] += np.linalg.inv(np.diag(stiffness) + pin * np.ones((k.size, k.size)))
        free = k[(raw[i, k] < pool.hi[i, k]) & (raw[i, k] > pool.lo[i, k])]
        if free.size:
            J = np.eye(free.size) / te[i]
            if pool._mu[i] > 0:  # the budget binds: moves within the free steps sum to 0
                J -= np.ones((free.size, free.size)) / (te[i] * free.size)
            exact[np.ix_(free, free)] += J
    np.testing.assert_allclose(pool.sensitivity(), exact, atol=1e-9 * (1 + np.abs(exact).max()))
    np.testing.assert_allclose(pool.sensitivity(omega), smooth, atol=1e-9 * (1 + np.abs(smooth).max()))


@pytest.mark.parametrize("seed", range(4))
def test_bid_curves_are_the_response_to_one_price(seed):
    """Bids: moving lambda_k alone by delta gives clip(level - delta * compliance, bounds) at step k for
    every station whose budget does not bind (the budget multiplier is then 0 before and after)."""
    rng = np.random.default_rng(seed)
    pr = random_problem(rng, 12, cap_binding=False)
    st = MPCSettings(horizon=H)
    pool = SeparableStations(pr, st)
    unit = pr.c * st.unmet_weight
    prices = rng.uniform(0.9 * unit, 1.5 * unit, H)
    bids = pool.respond(prices).bids
    lower, upper = pr.lower_plan(), np.where(pr.mask, pr.p_max[:, None], 0.0)
    for k in range(H):
        for delta in (-0.3 * unit, -1e-3 * unit, 1e-3 * unit, 0.3 * unit):
            moved = prices.copy()
            moved[k] = max(moved[k] + delta, 0.0)
            p = pool.solve(moved)
            free = np.ones(pr.n_stations, dtype=bool)  # the stations that cannot draw power plan 0 anyway
            free[pool.rows] = (pool._mu == 0.0) & (pool.budget > 0)
            expected = np.clip(bids.level[:, k] - (moved[k] - prices[k]) * bids.compliance, lower[:, k], upper[:, k])
            np.testing.assert_allclose(p[free, k], expected[free], atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_bid_model_is_each_station_qp_as_its_reply_reveals_it(seed):
    """The model market of one reply recovers every station's linear cost and eps, and answers any other
    prices as the stations do wherever a budget bound then (it is the station's own QP) or does not bind
    (the budgets the model leaves out)."""
    rng = np.random.default_rng(seed)
    pr = random_problem(rng, 30, cap_binding=bool(seed % 2))
    st = MPCSettings(horizon=H)
    pool = SeparableStations(pr, st)
    unit = pr.c * st.unmet_weight
    prices = rng.uniform(0.9 * unit, 1.5 * unit, H)
    replies = pool.respond(prices)
    pinned = replies.bids.multiplier > 0
    assert pinned.any() and not pinned.all()
    model = bid_model(pr, st, prices, replies)
    np.testing.assert_allclose(model.costs.linear, np.where(pr.mask, pool.costs.linear, 0.0), atol=1e-9 * unit)
    np.testing.assert_allclose(model.costs.power_reg, pool.costs.power_reg)
    for _ in range(5):
        other = np.maximum(prices + rng.normal(0.0, 0.3 * unit, H), 0.0)
        truth, modelled = pool.solve(other), model.solve(other)
        unbound = np.ones(pr.n_stations, dtype=bool)
        unbound[pool.rows] = pool._mu == 0.0
        known = pinned | unbound
        assert known.any()
        np.testing.assert_allclose(modelled[known], truth[known], atol=1e-8)


def test_a_rigid_price_jumps_to_where_it_clears_on_the_bid_curves():
    """Every station at p_max with a small overload: the Newton model cannot see how far the next bound
    is, the bid curves can. One kept step moves the price to where the step clears."""
    from pev_mpc.area_state import AreaContext, AreaState, ask
    from pev_mpc.area_steps import clear_rigid
    from pev_mpc.coordinator import AreaCoordinator
    n, h = 5, 4
    pr = ChargingProblem(x0=np.zeros(n), r=np.full(n, 100.0), s=np.full(n, 100.0), d=np.full(n, h), p_min=0.0,
                         p_max=np.full(n, 6.6), eta=0.9, dt_h=5 / 60, P_ref=np.full(h, 6.6 * n - 0.3), horizon=h,
                         departure=np.array([4, 8, 12, 16, 20]))
    st = MPCSettings(horizon=h)
    pool = SeparableStations(pr, st)
    ctx = AreaContext.of(pool, pr, st)
    lam = np.zeros(h)
    last = ask(ctx, AreaState.blank(ctx), lam, True).last
    r, rep = last.residual, last.replies
    assert np.allclose(r, 0.3) and np.all(np.diag(rep.exact_sensitivity) == 0.0)  # rigid everywhere
    step = clear_rigid(ctx, lam, r, np.ones(h, dtype=bool), rep, np.zeros(h))
    assert np.all(step > 1.0)  # several price units: far beyond what the residual alone suggests
    np.testing.assert_allclose(pool.solve(lam + step).sum(axis=0), pr.P_ref, atol=1e-9)
    sol = AreaCoordinator(SeparableStations(pr, st), pr, st).run()
    assert sol.converged and sol.iterations <= 4
