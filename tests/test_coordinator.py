"""Area coordinator: projection, warm starts, iteration caps, missing replies, price update variants."""

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st_

from pev_mpc.pool import MINIMAL
from pev_mpc import (AreaCoordinator, BatchStations, ChargingProblem, MPCSettings, StationReplies, project_to_limit,
                     shift_prices, solve_centralised, solve_decentralised)

H = 8


def binding_problem(n=6, seed=0, P_ref=None):
    rng = np.random.default_rng(seed)
    return ChargingProblem(x0=rng.uniform(0, 15, n), r=np.full(n, 24.0), s=np.full(n, 24.0),
                           d=rng.integers(1, H + 1, n), p_min=0.0, p_max=22.0, eta=0.9, dt_h=5 / 60,
                           P_ref=np.full(H, 0.3 * 22 * n) if P_ref is None else P_ref, horizon=H)


@hsettings(max_examples=40, deadline=None)
@given(seed=st_.integers(0, 10_000), limit=st_.floats(0.0, 100.0))
def test_projection_never_exceeds_limit(seed, limit):
    rng = np.random.default_rng(seed)
    lower = rng.uniform(0, 2, (7, 3)) * (rng.random((7, 3)) < 0.5)
    p = lower + rng.uniform(0, 22, (7, 3))
    P_ref = np.full(3, max(limit, lower.sum(0).max()))
    out = project_to_limit(p, lower, P_ref)
    assert np.all(out.sum(0) <= P_ref + 1e-9)
    assert np.all(out <= p + 1e-12) and np.all(out >= lower - 1e-12)
    untouched = p.sum(0) <= P_ref
    np.testing.assert_array_equal(out[:, untouched], p[:, untouched])


def test_shift_prices():
    np.testing.assert_array_equal(shift_prices(np.array([1.0, 2.0, 3.0]), 3), [2.0, 3.0, 3.0])
    np.testing.assert_array_equal(shift_prices(np.array([1.0, 2.0]), 4), [2.0, 2.0, 2.0, 2.0])
    np.testing.assert_array_equal(shift_prices(None, 2), [0.0, 0.0])


@pytest.mark.parametrize("method", ["newton", "smoothed-newton", "nesterov", "gradient"])
def test_iteration_cap_still_respects_limit(method):
    pr = binding_problem(n=12, seed=2)
    sol = solve_decentralised(pr, MPCSettings(horizon=H, objective="tracking", coordination=method, max_iterations=3))
    assert sol.iterations <= 3
    assert np.all(sol.p.sum(0) <= pr.P_ref + 1e-9)
    v = pr.violation(sol.p)
    assert v["box_kw"] <= 1e-12 and v["cap_kwh"] <= 1e-9 and v["outside_kw"] == 0.0


# the conservative step 1/sum_i(1/mu_i) is only practical for a well-conditioned f_i (large eps)
@pytest.mark.parametrize("method, rounds", [("nesterov", 150), ("gradient", 600)])
def test_gradient_variants_converge(method, rounds):
    pr = binding_problem(n=3, seed=1)
    st = MPCSettings(horizon=H, objective="tracking", coordination=method, max_iterations=rounds, power_reg=0.5, primal_tol_kw=1e-2,
                     price_tol=1e-6)
    ref = solve_centralised(pr, st)
    sol = solve_decentralised(pr, st)
    assert sol.converged
    assert abs(sol.objective - ref.objective) / max(1.0, abs(ref.objective)) < 1e-3
    np.testing.assert_allclose(sol.prices, ref.prices, atol=0.05 * ref.prices.max())


def test_nesterov_faster_than_gradient():
    pr = binding_problem(n=3, seed=1)
    sol = {m: solve_decentralised(pr, MPCSettings(horizon=H, objective="tracking", coordination=m, max_iterations=250, power_reg=0.02, price_tol=1e-6,
                                                   primal_tol_kw=1e-2))
           for m in ("gradient", "nesterov")}
    assert sol["nesterov"].converged and sol["nesterov"].iterations < sol["gradient"].iterations


def test_warm_start_reduces_iterations():
    pr = binding_problem(n=20, seed=4)
    st = MPCSettings(horizon=H, objective="tracking")
    cold = solve_decentralised(pr, st)
    warm_prices = np.r_[0.0, cold.prices[:-1]]  # shifting this by one gives back cold.prices
    warm = solve_decentralised(pr, st, warm_prices=warm_prices)
    assert cold.converged and warm.converged and warm.iterations <= 2 < cold.iterations


class DroppingPool:
    """Wraps a pool; station 0's reply is lost in every second round."""

    capabilities = MINIMAL

    def __init__(self, inner):
        self.inner, self.n_stations, self.horizon, self.rounds = inner, inner.n_stations, inner.horizon, 0

    def respond(self, prices, want_sensitivity=False):
        rep = self.inner.respond(prices, want_sensitivity)
        self.rounds += 1
        answered = rep.answered.copy()
        if self.rounds % 2 == 0:
            answered[0] = False
        return StationReplies(p=np.where(answered[:, None], rep.p, np.nan), value=rep.value, answered=answered,
                              failed=rep.failed, sensitivity=rep.sensitivity)


def test_missing_replies_use_last_plan():
    pr = binding_problem(n=8, seed=5)
    st = MPCSettings(horizon=H, objective="tracking")
    sol = solve_decentralised(pr, st, pool=DroppingPool(BatchStations(pr, st)))
    ref = solve_centralised(pr, st)
    assert sol.missing_replies >= 1 and np.all(np.isfinite(sol.p))
    assert np.all(sol.p.sum(0) <= pr.P_ref + 1e-9)
    assert abs(sol.objective - ref.objective) / max(1.0, abs(ref.objective)) < 1e-3


def test_messages_and_stats():
    pr = binding_problem(n=5, seed=6)
    st = MPCSettings(horizon=H, objective="tracking")
    coord = AreaCoordinator(BatchStations(pr, st), pr, st).run()
    # ceiling report, broadcast and reply per round, plans sent and valued per exact gap check, a QP report
    # per station where the reported market cleared (tracking stations carry no bids)
    assert coord.messages == 5 + 2 * 5 * (coord.iterations + coord.history["gap_checks"]) \
        + 5 * coord.history["model_exchanges"]
    assert coord.converged and coord.residual_kw <= st.primal_tol_kw
    assert len(coord.history["residual_kw"]) >= 1


def test_steps_without_pevs_get_zero_price_at_once():
    """Horizon steps where no PEV is plugged have no effect on any plan: their price ceiling is zero, so a
    warm start with spurious prices there converges as fast as a clean one, with zero prices there."""
    pr = ChargingProblem(x0=np.array([2.0, 5.0, 1.0]), r=np.full(3, 24.0), s=np.full(3, 24.0), d=np.array([3, 5, 4]),
                         p_min=0.0, p_max=22.0, eta=0.9, dt_h=5 / 60, P_ref=np.full(H, 30.0), horizon=H)
    st = MPCSettings(horizon=H, objective="tracking")
    ref = solve_centralised(pr, st)
    clean = np.r_[0.0, ref.prices[:-1]]  # shifted by one inside solve_decentralised: gives back ref.prices
    spurious = clean.copy()
    spurious[6:] = 40.0                  # steps 5..7 after the shift: nobody plugged
    a = solve_decentralised(pr, st, warm_prices=clean)
    b = solve_decentralised(pr, st, warm_prices=spurious)
    assert a.converged and b.converged and b.iterations <= a.iterations <= 3
    np.testing.assert_array_equal(b.prices[5:], 0.0)
    assert abs(b.objective - ref.objective) / max(1.0, abs(ref.objective)) < 1e-6


def test_extrapolated_warm_start_follows_a_steady_drift_within_its_limit():
    from pev_mpc.coordinator import extrapolate_prices
    before = np.array([10.0, 9.9, 9.8, 9.7])
    last = np.array([10.0, 9.9, 9.8, 9.8])  # before, shifted by one step, plus 0.1
    moved = extrapolate_prices(last, before, limit=0.05)
    np.testing.assert_allclose(moved, last + 0.1)  # the same change once more
    tight = extrapolate_prices(last, before, limit=0.001)
    assert np.all(np.abs(tight - last) <= 0.001 * last.max() + 1e-12)
    np.testing.assert_array_equal(extrapolate_prices(last, None, 0.05), last)
    np.testing.assert_array_equal(extrapolate_prices(last, before, 0.0), last)
    assert np.all(extrapolate_prices(np.array([0.1, 0.0]), np.array([5.0, 5.0]), 1.0) >= 0.0)


@pytest.mark.parametrize("pool_name", ["separable", "active_set", "batch", "osqp"])
def test_pools_declare_their_capabilities_and_refuse_what_they_lack(pool_name):
    """Every pool has one respond signature (barrier, smoothing, exact keywords) and declares what it
    honours in one typed value; a request beyond it is refused, never silently ignored."""
    from pev_mpc.decentralised import POOLS
    from pev_mpc.pool import PoolCapabilities

    pr = binding_problem(4, seed=1)
    settings = MPCSettings(horizon=H, objective="deadline")
    pool = POOLS[pool_name](pr, settings)
    can = pool.capabilities
    assert isinstance(can, PoolCapabilities)
    prices = np.zeros(H)
    for keyword, value in (("barrier", 1.0), ("smoothing", np.ones(H)), ("exact", True)):
        kwargs = {keyword: value} if keyword != "exact" else {"smoothing": np.ones(H), "exact": True}
        if getattr(can, keyword) and (keyword != "exact" or can.smoothing):
            assert pool.respond(prices, True, **kwargs).p.shape == (pr.n_stations, H)
        else:
            with pytest.raises(ValueError, match=keyword):
                pool.respond(prices, True, **kwargs)
