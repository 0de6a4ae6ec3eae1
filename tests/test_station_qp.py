"""StationQP (OSQP, one station) against the batched interior-point path, and station fallbacks."""

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st_

from pev_mpc import OBJECTIVES, ActiveSetStations, BatchStations, ChargingProblem, MPCSettings, OSQPStations, StationQP

H = 12
SET = MPCSettings(horizon=H, objective="tracking")


def one_pev(p_min):
    return ChargingProblem(x0=5.0 * np.ones(1), r=24.0, s=24.0, d=8, p_min=p_min, p_max=22.0, eta=0.9,
                           dt_h=1 / 12, P_ref=100.0, horizon=H)


def random_problem(rng, n, p_min=0.0):
    x0 = rng.uniform(0, 20, n)
    return ChargingProblem(x0=x0, r=np.minimum(x0 + rng.uniform(0, 10, n), 24.0), s=np.full(n, 24.0),
                           d=rng.integers(0, H + 1, n), p_min=p_min, p_max=rng.choice([7.0, 11.0, 22.0], n),
                           eta=0.9, dt_h=5 / 60, P_ref=np.full(H, 10.0 * n), horizon=H)


@hsettings(max_examples=15, deadline=None)
@given(seed=st_.integers(0, 10_000), scale=st_.floats(0.0, 80.0), objective=st_.sampled_from(sorted(OBJECTIVES)))
def test_batch_equals_station_qp(seed, scale, objective):
    rng = np.random.default_rng(seed)
    pr = random_problem(rng, 6, p_min=float(rng.choice([0.0, 1.0])))
    prices = rng.uniform(0, scale, H)
    # deadline_reg 3e-3: at the default 3e-4 the station QPs are so close to LPs that OSQP (ADMM) often
    # stops at its iteration cap before 1e-9 (README, "The decentralised MPC")
    st = MPCSettings(horizon=H, objective=objective, **({"deadline_reg": 3e-3} if objective == "deadline" else {}))
    batch = BatchStations(pr, st).respond(prices, want_sensitivity=True)
    per = OSQPStations(pr, st).respond(prices, want_sensitivity=True)
    assert not batch.failed.any() and not per.failed.any()
    np.testing.assert_allclose(batch.p, per.p, atol=2e-3)  # near-flat directions (eps = 1e-3) blur p slightly
    np.testing.assert_allclose(batch.value, per.value, rtol=1e-7, atol=1e-6)
    assert pr.violation(batch.p)["cap_kwh"] <= 1e-9 and pr.violation(batch.p)["box_kw"] == 0.0


def test_station_where_the_interior_point_stalls_is_still_solved():
    """Regression example found by Hypothesis in test_batch_equals_station_qp (seed=1223, scale=44.0): the
    batched interior point stalls on one station; its own OSQP QP solves it, so no fallback is sent."""
    rng = np.random.default_rng(1223)
    pr = random_problem(rng, 6, p_min=float(rng.choice([0.0, 1.0])))
    prices = rng.uniform(0, 44.0, H)
    assert not BatchStations(pr, SET).respond(prices, want_sensitivity=True).failed.any()


@pytest.mark.parametrize("stations", [BatchStations, ActiveSetStations])
def test_sensitivity_matches_finite_difference(stations):
    rng = np.random.default_rng(3)
    pr = random_problem(rng, 4)
    prices = rng.uniform(0, 20, H)
    pool = stations(pr, SET)
    pool.solve(prices)
    S = pool.sensitivity()
    h = 1e-4
    fd = np.column_stack([-(pool.solve(prices + h * e)[0].sum(0) - pool.solve(prices - h * e)[0].sum(0)) / (2 * h)
                          for e in np.eye(H)])
    np.testing.assert_allclose(S, fd, atol=1e-3)
    assert np.all(np.linalg.eigvalsh(S) >= -1e-9)


def test_station_qp_updates_linear_term_only():
    qp = StationQP.from_problem(one_pev(p_min=0.0), 0, SET)
    solver = qp._solver
    cheap, _ = qp.solve(np.zeros(H))
    dear, _ = qp.solve(np.full(H, 200.0))
    assert qp._solver is solver and dear.sum() < cheap.sum() and np.all(cheap[8:] == 0)


def test_station_qp_failure_falls_back_and_counts():
    qp = StationQP.from_problem(one_pev(p_min=1.0), 0,
                                MPCSettings(horizon=H, objective="tracking", station_time_limit_s=1e-9))
    plan, ok = qp.solve(np.zeros(H))
    assert not ok and qp.failures == 1
    np.testing.assert_array_equal(plan, np.r_[np.full(8, 1.0), np.zeros(H - 8)])  # p_min while plugged


def test_batch_failure_falls_back_to_safe_plan():
    rng = np.random.default_rng(0)
    pr = random_problem(rng, 5, p_min=1.0)
    starved = MPCSettings(horizon=H, objective="tracking", station_max_iter=1, station_time_limit_s=1e-9)
    rep = BatchStations(pr, starved).respond(np.zeros(H))  # interior point and OSQP both stopped at once
    plugged = pr.d > 0
    assert rep.failed[plugged].all()
    np.testing.assert_array_equal(rep.p[rep.failed], pr.lower_plan()[rep.failed])


@pytest.mark.parametrize("d", [0, 1, H])
def test_edge_departures(d):
    pr = ChargingProblem(x0=[3.0], r=[24.0], s=[24.0], d=[d], p_min=0.0, p_max=22.0, eta=0.9, dt_h=5 / 60,
                         P_ref=np.full(H, 100.0), horizon=H)
    p_b = BatchStations(pr, SET).respond(np.zeros(H)).p
    p_o = OSQPStations(pr, SET).respond(np.zeros(H)).p
    np.testing.assert_allclose(p_b, p_o, atol=1e-4)
    assert np.all(p_b[0, d:] == 0.0)


# ---- ActiveSetStations (default pool): exact, warm-started, incremental sensitivity ----------------


@hsettings(max_examples=25, deadline=None)
@given(seed=st_.integers(0, 10_000), scale=st_.floats(0.0, 80.0), full=st_.booleans())
def test_active_set_equals_station_qp(seed, scale, full):
    rng = np.random.default_rng(seed)
    pr = random_problem(rng, 8, p_min=float(rng.choice([0.0, 1.0])))
    if full:  # targets above the cap: the cap constraints become active
        pr = ChargingProblem(x0=pr.x0, r=pr.r + 6.0, s=np.maximum(pr.x0 + 1.0, 20.0), d=pr.d, p_min=pr.p_min,
                             p_max=pr.p_max, eta=pr.eta, dt_h=pr.dt_h, P_ref=pr.P_ref, horizon=H)
    pr.check_feasible()
    prices = rng.uniform(0, scale, H)
    pool = ActiveSetStations(pr, SET)
    act = pool.respond(prices, want_sensitivity=True)
    per = OSQPStations(pr, SET).respond(prices, want_sensitivity=True)
    assert not act.failed.any()
    np.testing.assert_allclose(act.p, per.p, atol=2e-3)
    np.testing.assert_allclose(act.value, per.value, rtol=1e-7, atol=1e-6)
    v = pr.violation(act.p)
    assert v["cap_kwh"] <= 1e-9 and v["box_kw"] == 0.0 and v["outside_kw"] == 0.0
    # warm re-solve at nearby prices equals a fresh solve, and the incremental sensitivity the full one
    moved = prices * 1.1 + rng.uniform(0, 1, H)
    warm = pool.respond(moved, want_sensitivity=True)
    other = ActiveSetStations(pr, SET)
    fresh = other.respond(moved, want_sensitivity=True)
    exact = pool.ipm_fallbacks == other.ipm_fallbacks == 0  # else interior-point accuracy (cap-bound stations)
    np.testing.assert_allclose(warm.p, fresh.p, atol=1e-7 if exact else 1e-4)
    if exact:
        np.testing.assert_allclose(warm.sensitivity, fresh.sensitivity,
                                   atol=1e-8 * (1 + np.abs(fresh.sensitivity).max()))


def test_active_set_warm_start_saves_sweeps():
    rng = np.random.default_rng(13)
    pr = random_problem(rng, 200)
    prices = rng.uniform(0, 30, H)
    pool = ActiveSetStations(pr, SET)
    pool.solve(prices)
    cold = pool.sweeps
    assert pool.ipm_fallbacks == 0
    pool.solve(prices)
    assert pool.sweeps - cold == 1 < cold  # same prices: the kept active sets settle in one sweep


def test_active_set_unsettled_stations_go_to_interior_point():
    rng = np.random.default_rng(5)
    pr = random_problem(rng, 30, p_min=1.0)
    prices = rng.uniform(0, 40, H)
    capped = ActiveSetStations(pr, MPCSettings(horizon=H, objective="tracking", active_set_max_sweeps=1))
    p, ok = capped.solve(prices)
    ref, _ = BatchStations(pr, SET).solve(prices)
    assert capped.ipm_fallbacks > 0 and ok.all()
    np.testing.assert_allclose(p, ref, atol=1e-5)


def test_new_settings_validated():
    smoothed = {"coordination": "smoothed-newton"}
    for kw in ({"active_set_max_sweeps": 0}, {"cold_start_sample": -1}, {"smoothing_after": 0, **smoothed},
               {"barrier_rounds": 0, **smoothed}, {"barrier_start": 0.0, **smoothed}, {"barrier_shrink": 1.0, **smoothed},
               {"barrier_accuracy": -1.0, **smoothed}, {"barrier_end": 1.0, **smoothed}, {"coordination": "smooth"}):
        with pytest.raises(ValueError, match=rf"MPCSettings\.(\w+\.)?{next(iter(kw))}(\.\w+)? = .*: must be"):
            MPCSettings(**kw)
    assert MPCSettings().station_solver == "auto"


@pytest.mark.parametrize("stations", [BatchStations, ActiveSetStations])
@pytest.mark.parametrize("barrier", [5.0, 0.05])
def test_barrier_replies_are_the_smoothed_dual_derivatives(stations, barrier):
    """Fixed-barrier replies: sum of values is the smoothed dual term, its gradient the summed plans
    (envelope theorem) and -d(sum p)/dlambda the reported sensitivity; all strictly interior."""
    rng = np.random.default_rng(5)
    pr = random_problem(rng, 5, p_min=1.0)
    prices = rng.uniform(0, 20, H)
    pool = stations(pr, SET)
    rep = pool.respond(prices, want_sensitivity=True, barrier=barrier)
    assert not rep.failed.any() and stations.capabilities.barrier
    m = pr.mask
    assert np.all(rep.p[m] > pr.p_min[:, None].repeat(H, 1)[m]) and np.all(rep.p[m] < pr.p_max[:, None].repeat(H, 1)[m])
    h = 1e-5
    plus = [pool.respond(prices + h * e, barrier=barrier) for e in np.eye(H)]
    minus = [pool.respond(prices - h * e, barrier=barrier) for e in np.eye(H)]
    grad = np.array([(a.value.sum() - b.value.sum()) / (2 * h) for a, b in zip(plus, minus)])
    np.testing.assert_allclose(grad, rep.p.sum(0), atol=1e-4 * max(1.0, barrier))
    fd = np.column_stack([-(a.p.sum(0) - b.p.sum(0)) / (2 * h) for a, b in zip(plus, minus)])
    np.testing.assert_allclose(rep.sensitivity, fd, atol=1e-3, rtol=1e-4)
    assert np.all(np.linalg.eigvalsh(rep.sensitivity) >= -1e-9)


def test_barrier_replies_tend_to_exact_replies():
    rng = np.random.default_rng(8)
    pr = random_problem(rng, 6)
    prices = rng.uniform(0, 30, H)
    exact = ActiveSetStations(pr, SET).respond(prices)
    pool = ActiveSetStations(pr, SET)
    errs = [np.max(np.abs(pool.respond(prices, barrier=b).p - exact.p)) for b in (1.0, 1e-2, 1e-4)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-2
    # a barrier round leaves the exact replies (and their warm start) intact
    np.testing.assert_allclose(pool.respond(prices).p, exact.p, atol=1e-9)
