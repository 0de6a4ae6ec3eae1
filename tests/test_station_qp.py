"""StationQP (OSQP, one station) against the batched interior-point path, and station fallbacks."""

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st_

from pev_mpc import BatchStations, ChargingProblem, MPCSettings, OSQPStations, StationQP

H = 12
SET = MPCSettings(horizon=H)


def random_problem(rng, n, p_min=0.0):
    x0 = rng.uniform(0, 20, n)
    return ChargingProblem(x0=x0, r=np.minimum(x0 + rng.uniform(0, 10, n), 24.0), s=np.full(n, 24.0),
                           d=rng.integers(0, H + 1, n), p_min=p_min, p_max=rng.choice([7.0, 11.0, 22.0], n),
                           eta=0.9, dt_h=5 / 60, P_ref=np.full(H, 10.0 * n), horizon=H)


@hsettings(max_examples=15, deadline=None)
@given(seed=st_.integers(0, 10_000), scale=st_.floats(0.0, 80.0))
def test_batch_equals_station_qp(seed, scale):
    rng = np.random.default_rng(seed)
    pr = random_problem(rng, 6, p_min=float(rng.choice([0.0, 1.0])))
    prices = rng.uniform(0, scale, H)
    batch = BatchStations(pr, SET).respond(prices, want_sensitivity=True)
    per = OSQPStations(pr, SET).respond(prices, want_sensitivity=True)
    assert not batch.failed.any() and not per.failed.any()
    np.testing.assert_allclose(batch.p, per.p, atol=2e-3)  # near-flat directions (eps = 1e-3) blur p slightly
    np.testing.assert_allclose(batch.value, per.value, rtol=1e-7, atol=1e-6)
    assert pr.violation(batch.p)["cap_kwh"] <= 1e-9 and pr.violation(batch.p)["box_kw"] == 0.0


def test_sensitivity_matches_finite_difference():
    rng = np.random.default_rng(3)
    pr = random_problem(rng, 4)
    prices = rng.uniform(0, 20, H)
    pool = BatchStations(pr, SET)
    pool.solve(prices)
    S = pool.sensitivity()
    h = 1e-4
    fd = np.column_stack([-(pool.solve(prices + h * e)[0].sum(0) - pool.solve(prices - h * e)[0].sum(0)) / (2 * h)
                          for e in np.eye(H)])
    np.testing.assert_allclose(S, fd, atol=1e-3)
    assert np.all(np.linalg.eigvalsh(S) >= -1e-9)


def test_station_qp_updates_linear_term_only():
    qp = StationQP(x0=5.0, r=24.0, s=24.0, d=8, p_min=0.0, p_max=22.0, c=0.075, horizon=H, settings=SET)
    solver = qp._solver
    cheap, _ = qp.solve(np.zeros(H))
    dear, _ = qp.solve(np.full(H, 200.0))
    assert qp._solver is solver and dear.sum() < cheap.sum() and np.all(cheap[8:] == 0)


def test_station_qp_failure_falls_back_and_counts():
    qp = StationQP(x0=5.0, r=24.0, s=24.0, d=8, p_min=1.0, p_max=22.0, c=0.075, horizon=H,
                   settings=MPCSettings(horizon=H, station_time_limit_s=1e-9))
    plan, ok = qp.solve(np.zeros(H))
    assert not ok and qp.failures == 1
    np.testing.assert_array_equal(plan, np.r_[np.full(8, 1.0), np.zeros(H - 8)])  # p_min while plugged


def test_batch_failure_falls_back_to_safe_plan():
    rng = np.random.default_rng(0)
    pr = random_problem(rng, 5, p_min=1.0)
    rep = BatchStations(pr, MPCSettings(horizon=H, station_max_iter=1)).respond(np.zeros(H))
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
