"""Distributed station agents (Ray actors) give the in-process decentralised MPC's answers.

Runs against a real local Ray instance (one per module: start-up takes seconds).
"""

import sys

import numpy as np
import pytest

from pev_mpc import ChargingProblem, MPCSettings, solve_decentralised
from pev_mpc.batch_qp import BatchStations
from pev_mpc.decentralised import make_station_pool
from pev_mpc.distributed import RAY_MISSING, StationActors, StationShard, merge_replies, shard_bounds

H = 12


def random_instance(n: int, seed: int, tightness: float = 0.3) -> ChargingProblem:
    """n stations, mixed p_min / p_max / departures; the area limit binds for small tightness."""
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(0, 18, n)
    p_min = rng.choice([0.0, 0.0, 1.0], n)
    d = rng.integers(0, H + 1, n)
    return ChargingProblem(x0=x0, r=np.minimum(x0 + rng.uniform(1, 20, n), 24.0), s=np.full(n, 24.0), d=d,
                           p_min=p_min, p_max=rng.choice([7.0, 11.0, 22.0], n), eta=0.9, dt_h=5 / 60,
                           P_ref=tightness * 22.0 * n * (1 + 0.4 * np.cos(np.arange(H) / 3)) + n * 1.0,
                           horizon=H)


@pytest.fixture(scope="module")
def actors():
    pytest.importorskip("ray")
    group = StationActors(n_actors=2, num_cpus=2, object_store_memory=200 * 2**20)
    yield group
    group.shutdown()


# ---- without Ray -----------------------------------------------------------------------------
@pytest.mark.parametrize("n, k", [(0, 2), (1, 3), (5, 2), (10, 3), (10_001, 4)])
def test_shard_bounds_cover_all_stations_once(n, k):
    bounds = shard_bounds(n, k)
    assert len(bounds) == min(n, k)
    covered = np.concatenate([np.arange(lo, hi) for lo, hi in bounds]) if bounds else np.zeros(0)
    np.testing.assert_array_equal(covered, np.arange(n))
    sizes = [hi - lo for lo, hi in bounds]
    assert not sizes or max(sizes) - min(sizes) <= 1


def test_shard_bounds_rejects_zero_shards():
    with pytest.raises(ValueError, match="n_shards = 0"):
        shard_bounds(5, 0)


def test_sharded_replies_merge_to_the_whole_pool():
    pr, st = random_instance(9, 1), MPCSettings(horizon=H, objective="tracking")
    prices = np.linspace(0.0, 3.0, H)
    whole = BatchStations(pr, st).respond(prices, want_sensitivity=True)
    bounds = shard_bounds(pr.n_stations, 3)
    shards = []
    for lo, hi in bounds:
        shard = StationShard()
        assert shard.load(pr.subset(np.arange(lo, hi)), st) == hi - lo
        shards.append(shard.respond(prices, True))
    merged = merge_replies(shards, bounds, pr.n_stations, H, True)
    np.testing.assert_allclose(merged.p, whole.p, atol=1e-9)
    np.testing.assert_allclose(merged.value, whole.value, rtol=1e-9, atol=1e-9)
    scale = float(np.abs(whole.sensitivity).max())  # near-zero entries are rounding noise of the solver
    np.testing.assert_allclose(merged.sensitivity, whole.sensitivity, rtol=1e-7, atol=1e-9 * scale)
    assert merged.answered.all() and not merged.failed.any()
    missing = merge_replies([shards[0], None, shards[2]], bounds, pr.n_stations, H, False)
    lo, hi = bounds[1]
    assert not missing.answered[lo:hi].any() and missing.answered[:lo].all() and missing.sensitivity is None


def test_shard_passes_the_barrier_through():
    pr, st = random_instance(9, 1), MPCSettings(horizon=H, objective="tracking")
    prices = np.linspace(0.0, 3.0, H)
    shard = StationShard()
    shard.load(pr, st)
    whole = BatchStations(pr, st).respond(prices, True, barrier=0.5)
    rep = shard.respond(prices, True, barrier=0.5)
    np.testing.assert_allclose(rep.p, whole.p, atol=1e-9)
    np.testing.assert_allclose(rep.value, whole.value, rtol=1e-9)
    assert np.max(np.abs(rep.p - shard.respond(prices, True).p)) > 1e-3  # smoothed replies differ


def test_shard_respond_before_load_is_an_error():
    with pytest.raises(RuntimeError, match="load"):
        StationShard().respond(np.zeros(H), False)


def test_clear_error_without_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install -e \.\[distributed\]") as info:
        StationActors(n_actors=1)
    assert str(info.value) == RAY_MISSING


# ---- real local Ray ----------------------------------------------------------------------------
@pytest.mark.parametrize("n, seed, coordination, solver", [
    (1, 0, "newton", "batch"),        # fewer stations than actors: one shard
    (7, 1, "newton", "batch"),
    (60, 2, "newton", "batch"),
    (60, 3, "nesterov", "batch"),     # stops at the iteration cap: same iterates either way
    (9, 4, "newton", "osqp"),         # one OSQP QP per station inside the actors
    (60, 2, "smoothed-newton", "active_set"),  # barrier rounds pass through the actors
])
def test_distributed_equals_in_process(actors, n, seed, coordination, solver):
    pr = random_instance(n, seed)
    st = MPCSettings(horizon=H, objective="tracking", coordination=coordination, station_solver=solver, max_iterations=60)
    warm = np.random.default_rng(seed).uniform(0.0, 2.0, H + 3)
    local = solve_decentralised(pr, st, warm_prices=warm)
    dist = solve_decentralised(pr, st, warm_prices=warm, pool=actors.pool(pr, st))
    assert (dist.converged, dist.iterations) == (local.converged, local.iterations)
    assert local.converged or coordination == "nesterov"
    tol = 1e-6 if solver == "batch" else 1e-3  # OSQP's own tolerance is looser than the interior point's
    np.testing.assert_allclose(dist.p, local.p, atol=tol)
    np.testing.assert_allclose(dist.prices, local.prices, atol=tol * max(1.0, float(local.prices.max())))
    assert abs(dist.objective - local.objective) <= tol * max(1.0, abs(local.objective))
    assert np.all(dist.p.sum(axis=0) <= pr.P_ref + 1e-9)
    assert dist.missing_replies == 0


def test_pool_is_reusable_across_control_steps(actors):
    st = MPCSettings(horizon=H, objective="tracking")
    for seed in (10, 11):  # the same actors reload new shards each step
        pr = random_instance(23, seed, tightness=0.2)
        np.testing.assert_allclose(solve_decentralised(pr, st, pool=actors.pool(pr, st)).p,
                                   solve_decentralised(pr, st).p, atol=1e-6)


def test_dead_actor_counts_as_missing_replies(actors):
    import ray

    pr, st = random_instance(12, 5, tightness=0.2), MPCSettings(horizon=H, objective="tracking", max_iterations=20)
    group = StationActors(n_actors=2, cpus_per_actor=0)  # the module's actors hold both CPUs
    try:
        pool = group.pool(pr, st)
        ray.kill(group.actors[1])
        sol = solve_decentralised(pr, st, pool=pool)
    finally:
        group.shutdown()
    lo, hi = pool.bounds[1]
    assert sol.missing_replies >= hi - lo
    assert np.all(sol.p.sum(axis=0) <= pr.P_ref + 1e-9)  # projection keeps the area limit
    np.testing.assert_allclose(sol.p[lo:hi], pr.lower_plan()[lo:hi])  # silent stations keep the safe plan


def test_invalid_actor_count():
    with pytest.raises(ValueError, match="n_actors = 0"):
        StationActors(n_actors=0)


def test_distributed_policy_acts_like_the_in_process_policy(actors):
    """mpc-distributed (station QPs in Ray actors) applies the in-process decentralised MPC's moves."""
    from pev_env import ChargingCore, make_scenario
    from pev_mpc.policies import make_policy

    config, scenario = make_scenario("seed", 1)
    in_process, distributed = make_policy("mpc-decentralised"), make_policy("mpc-distributed", actors=actors)
    for policy in (in_process, distributed):
        policy.reset(config, scenario, 1)
    core = ChargingCore(config, scenario)
    obs = core.reset()
    for _ in range(15):
        expected, got = in_process.act_array(obs), distributed.act_array(obs)
        np.testing.assert_allclose(got, expected, atol=1e-5)
        obs = core.step(expected).observations
    distributed.close()  # not its actors: they belong to the fixture
    assert actors.n_actors == 2


def test_sharded_separable_replies_merge_bids_and_exact_sensitivities():
    pr, st = random_instance(9, 2), MPCSettings(horizon=H)  # deadline objective: the separable stations
    prices = np.linspace(0.0, 3.0, H)
    omega = np.full(H, 0.5)
    whole = make_station_pool(pr, st).respond(prices, True, smoothing=omega, exact=True)
    bounds = shard_bounds(pr.n_stations, 3)
    shards = []
    for lo, hi in bounds:
        shard = StationShard()
        shard.load(pr.subset(np.arange(lo, hi)), st)
        shards.append(shard.respond(prices, True, smoothing=omega, exact=True))
    merged = merge_replies(shards, bounds, pr.n_stations, H, True)
    np.testing.assert_allclose(merged.exact_sensitivity, whole.exact_sensitivity, atol=1e-9)
    np.testing.assert_allclose(merged.bids.level, whole.bids.level, atol=1e-9)
    np.testing.assert_allclose(merged.bids.compliance, whole.bids.compliance)
    assert np.any(whole.bids.multiplier > 0)  # some budget binds
    np.testing.assert_allclose(merged.bids.multiplier, whole.bids.multiplier, atol=1e-9)
    partial = merge_replies([shards[0], None, shards[2]], bounds, pr.n_stations, H, True)
    assert partial.exact_sensitivity is None and partial.bids is None  # all shards or none
