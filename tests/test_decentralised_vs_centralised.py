"""Decentralised (price coordination) equals centralised (one QP) on random instances; KKT checks."""

import numpy as np
import pytest

from pev_mpc import (ActiveSetStations, ChargingProblem, MPCSettings, project_to_limit, solve_centralised,
                     solve_decentralised)

H = 24


def random_problem(n, binding, seed):
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(0, 20, n)
    d = rng.integers(0, H + 1, n)
    P = (0.35 if binding else 3.0) * 22.0 * n * (1 + 0.3 * np.sin(np.arange(H) / 4))
    return ChargingProblem(x0=x0, r=np.minimum(x0 + rng.uniform(2, 16, n), 24.0), s=np.full(n, 24.0), d=d,
                           p_min=0.0, p_max=rng.choice([11.0, 22.0], n), eta=0.9, dt_h=5 / 60, P_ref=P, horizon=H)


CASES = [(1, True, 0), (1, False, 1), (7, True, 2), (7, False, 3), (40, True, 4), (40, False, 5), (200, True, 6)]


@pytest.mark.parametrize("n, binding, seed", CASES)
def test_decentralised_equals_centralised(n, binding, seed):
    pr = random_problem(n, binding, seed)
    st = MPCSettings(horizon=H)
    dec, cen = solve_decentralised(pr, st), solve_centralised(pr, st)
    assert dec.converged and cen.converged
    gap = abs(dec.objective - cen.objective) / max(1.0, abs(cen.objective))
    assert gap < 1e-4
    assert np.max(np.abs(dec.p[:, 0] - cen.p[:, 0])) < 0.01
    assert np.all(dec.p.sum(0) <= pr.P_ref + 1e-9)
    assert dec.p.shape == (n, H) and dec.prices.shape == (H,)
    # KKT / duals: prices >= 0, positive only where the limit binds, complementary slackness
    slack = pr.P_ref - dec.p.sum(0)
    assert np.all(dec.prices >= 0)
    assert np.all(slack[dec.prices > 1e-3] < 1e-2)
    assert np.max(np.abs(dec.prices * slack)) < 1e-2
    np.testing.assert_allclose(dec.prices, cen.prices, atol=max(1e-2, 1e-3 * cen.prices.max()))
    if not binding:
        assert np.all(dec.prices == 0.0) and dec.iterations == 1


def test_osqp_station_path_equals_batch_path():
    pr = random_problem(6, True, 7)
    batch = solve_decentralised(pr, MPCSettings(horizon=H))
    per = solve_decentralised(pr, MPCSettings(horizon=H, station_solver="osqp"))
    assert per.converged
    assert abs(batch.objective - per.objective) / max(1.0, batch.objective) < 1e-5
    assert np.max(np.abs(batch.p[:, 0] - per.p[:, 0])) < 0.01


def test_osqp_centralised_agrees_with_clarabel():
    pr = random_problem(10, True, 8)
    a = solve_centralised(pr, MPCSettings(horizon=H))
    b = solve_centralised(pr, MPCSettings(horizon=H, centralised_solver="OSQP"))
    c = solve_centralised(pr, MPCSettings(horizon=H), reuse=False)
    assert abs(a.objective - b.objective) / max(1.0, a.objective) < 1e-5
    assert abs(a.objective - c.objective) / max(1.0, a.objective) < 1e-8


@pytest.mark.parametrize("solver", ["active_set", "batch"])
def test_station_solvers_agree(solver):
    pr = random_problem(30, True, 9)
    st = MPCSettings(horizon=H, station_solver=solver)
    dec, cen = solve_decentralised(pr, st), solve_centralised(pr, st)
    assert dec.converged and abs(dec.objective - cen.objective) / max(1.0, cen.objective) < 1e-4


def test_cold_start_from_sample_equals_centralised():
    pr = random_problem(300, True, 10)
    st = MPCSettings(horizon=H, cold_start_sample=40)
    dec, cen = solve_decentralised(pr, st), solve_centralised(pr, st)
    plain = solve_decentralised(pr, MPCSettings(horizon=H, cold_start_sample=0))
    assert dec.converged and abs(dec.objective - cen.objective) / max(1.0, cen.objective) < 1e-4
    assert dec.history["cold_start_iterations"] >= 1 and "cold_start_iterations" not in plain.history
    assert dec.iterations < plain.iterations  # the sampled prices are a good warm start
    assert np.all(dec.p.sum(0) <= pr.P_ref + 1e-9)


def two_pev_cold_step():
    """Step 4 of the 'seed' scenario (seed 0): two PEVs, area limit 31.5 kW below their joint demand,
    cold prices. With eps = 1e-3 each station's response is nearly bang-bang in the prices, so the
    dual is nearly piecewise linear and the summed sensitivity is singular wherever both stations sit
    at a bound (observed: S eigenvalues ~1e-12 on the priced steps during most rounds)."""
    r = np.array([20.36, 22.51, 0.0])
    return ChargingProblem(x0=np.zeros(3), r=r, s=r, d=np.array([15, 14, 0]), p_min=0.0, p_max=22.0, eta=0.9,
                           dt_h=5 / 60, P_ref=31.5, horizon=H)


def test_degenerate_cold_step_converges_to_centralised():
    pr, st = two_pev_cold_step(), MPCSettings(horizon=H)
    dec, cen = solve_decentralised(pr, st), solve_centralised(pr, st)
    assert dec.converged and abs(dec.objective - cen.objective) / max(1.0, cen.objective) < 1e-6


@pytest.mark.parametrize("n, binding, seed", [c for c in CASES if c[1]])
def test_smoothed_newton_equals_centralised(n, binding, seed):
    pr = random_problem(n, binding, seed)
    dec = solve_decentralised(pr, MPCSettings(horizon=H, coordination="smoothed-newton"))
    cen = solve_centralised(pr, MPCSettings(horizon=H))
    assert dec.converged and abs(dec.objective - cen.objective) / max(1.0, abs(cen.objective)) < 1e-4
    assert np.all(dec.p.sum(0) <= pr.P_ref + 1e-9)
    np.testing.assert_allclose(dec.prices, cen.prices, atol=max(1e-2, 1e-3 * cen.prices.max()))


def test_smoothed_newton_on_degenerate_cold_step():
    pr, cen = two_pev_cold_step(), solve_centralised(two_pev_cold_step(), MPCSettings(horizon=H))
    plain = solve_decentralised(pr, MPCSettings(horizon=H))
    smooth = solve_decentralised(pr, MPCSettings(horizon=H, coordination="smoothed-newton"))
    assert smooth.converged and abs(smooth.objective - cen.objective) / cen.objective < 1e-6
    assert smooth.iterations < 0.7 * plain.iterations


@pytest.mark.parametrize("cap", [6, 11, 17])
def test_smoothed_newton_respects_iteration_cap(cap):
    pr = two_pev_cold_step()
    sol = solve_decentralised(pr, MPCSettings(horizon=H, coordination="smoothed-newton", max_iterations=cap))
    assert sol.iterations <= cap and np.all(sol.p.sum(0) <= pr.P_ref + 1e-9)


def test_smoothed_newton_without_smoothing_pool_is_newton():
    pr = two_pev_cold_step()
    osqp = dict(horizon=H, station_solver="osqp")
    a = solve_decentralised(pr, MPCSettings(coordination="smoothed-newton", **osqp))
    b = solve_decentralised(pr, MPCSettings(**osqp))
    assert a.iterations == b.iterations and np.array_equal(a.prices, b.prices)


def test_returned_plans_answer_returned_prices():
    """Rejected Newton trials must not leak into the result: the plans are the stations' replies to
    the returned prices (projected onto the limit)."""
    pr, st = two_pev_cold_step(), MPCSettings(horizon=H)
    sol = solve_decentralised(pr, st)
    replies = ActiveSetStations(pr, st).respond(sol.prices)
    np.testing.assert_allclose(sol.p, project_to_limit(replies.p, pr.lower_plan(), pr.P_ref), atol=1e-6)


@pytest.mark.xfail(strict=True, reason="known: the damped dual Newton needs ~40 rounds on this near-LP dual "
                                       "(kinks with singular sensitivity), 'smoothed-newton' ~25; target <= 10")
def test_degenerate_cold_step_converges_in_few_rounds():
    sol = solve_decentralised(two_pev_cold_step(), MPCSettings(horizon=H))
    assert sol.converged and sol.iterations <= 10
