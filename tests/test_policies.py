"""Unit and property tests of the policies (heuristics, allocation, MPC problem building, offline LP)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pev_env.config import EnvConfig
from pev_env.core import ChargingCore
from pev_env.observation import N_OBS, OBS_INDEX, build_observations
from pev_env.scenario import Scenario
from pev_env.scenarios import make_scenario
from pev_env.schedule import plug_schedule
from pev_mpc.coordinator import extrapolate_prices
from pev_mpc.policies import EDF, LLF, POLICIES, EqualShare, OfflineOptimal, Uncontrolled, make_policy
from pev_mpc.policies.allocation import priority_fill, scale_to_budget, water_fill
from pev_mpc.policies.base import Observed, exact_limit
from pev_mpc.policies.mpc import build_problem, safe_first_move
from pev_mpc.settings import MPCSettings
from pev_mpc.policies.offline import offline_plan

SHARING = (EDF, LLF, EqualShare)


def make_obs(config: EnvConfig, plugged, soc_remain, steps_to_departure, p_ref: float | None = None) -> np.ndarray:
    """(N, N_OBS) float32 observations the way the plant builds them."""
    plugged = np.asarray(plugged, dtype=bool)
    constants = {"p_min": config.p_min, "p_max": config.p_max, "P_max": config.P_max, "P_min": config.P_min}
    p_ref = config.P_ref if p_ref is None else p_ref
    return build_observations(
        constants, plugged, np.where(plugged, soc_remain, 0.0), 0.0, np.zeros(plugged.size),
        p_ref, np.where(plugged, steps_to_departure, 0), np.full(plugged.size, p_ref),  # area network, nothing drawn
    )


@st.composite
def situations(draw, p_min: float = 0.0):
    """A config and one step's observations with random plugged PEVs, needs and deadlines."""
    n = draw(st.integers(1, 12))
    p_max = draw(st.sampled_from([3.7, 6.6, 11.0, 22.0]))
    p_ref = draw(st.floats(0.1, min(n * p_max * 1.2, 200.0), allow_nan=False))
    config = EnvConfig(n_stations=n, p_min=p_min, p_max=p_max, P_ref=round(p_ref, 1))
    plugged = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    remain = np.array(draw(st.lists(st.floats(0.0, 30.0, allow_nan=False), min_size=n, max_size=n)))
    steps = np.array(draw(st.lists(st.integers(1, 40), min_size=n, max_size=n)))
    return config, make_obs(config, plugged, remain, steps)


def policy_for(cls, config: EnvConfig):
    policy = cls()
    policy.reset(config)
    return policy


def need_of(config: EnvConfig, obs: np.ndarray) -> np.ndarray:
    return Observed(obs, config.P_ref).need_kw(config.eta, config.dt_h)


# ---------------------------------------------------------------------------- heuristics
@settings(max_examples=60, deadline=None)
@given(situations())
def test_sharing_rules_respect_p_ref_and_need(case):
    config, obs = case
    need = need_of(config, obs)
    for cls in SHARING:
        a = policy_for(cls, config).act_array(obs)
        assert a.shape == (config.n_stations,)
        assert a.sum() <= config.P_ref + 1e-9, cls.name
        assert np.all(a >= 0.0) and np.all(a <= need + 1e-12), cls.name
        assert np.all(a[obs[:, OBS_INDEX["plugged"]] == 0] == 0.0)
        # work conserving: the budget is used up to what the PEVs can take
        assert a.sum() == pytest.approx(min(config.P_ref, need.sum()), abs=1e-9), cls.name


@settings(max_examples=60, deadline=None)
@given(situations())
def test_uncontrolled_charges_at_full_power_until_full(case):
    config, obs = case
    a = policy_for(Uncontrolled, config).act_array(obs)
    np.testing.assert_allclose(a, need_of(config, obs))


@settings(max_examples=60, deadline=None)
@given(situations())
def test_priority_rules_serve_in_order(case):
    config, obs = case
    ob = Observed(obs, config.P_ref)
    need = need_of(config, obs)
    per_step = ob.p_max * config.eta * config.dt_h
    keys = {EDF: ob.steps_to_departure, LLF: ob.steps_to_departure - ob.soc_remain / per_step}
    for cls, key in keys.items():
        a = policy_for(cls, config).act_array(obs)
        short = need - a > 1e-9
        # a station left short implies every strictly later-priority station got nothing
        for i in np.flatnonzero(short):
            assert np.all(a[(key > key[i]) & (need > 0)] <= 1e-12), cls.name


@settings(max_examples=60, deadline=None)
@given(situations())
def test_equal_share_is_a_water_level(case):
    config, obs = case
    need = need_of(config, obs)
    a = policy_for(EqualShare, config).act_array(obs)
    short = need - a > 1e-9
    if short.any():  # the stations left short share one level, and nobody gets more than it
        level = a[short]
        assert np.ptp(level) <= 1e-9
        assert np.all(a <= level.max() + 1e-9)


def test_heuristics_floor_when_p_min_positive():
    config = EnvConfig(n_stations=4, p_min=2.0, p_max=11.0, P_ref=15.0)
    obs = make_obs(config, [1, 1, 0, 1], [20.0, 0.0, 0.0, 20.0], [5, 3, 0, 9])
    for cls in SHARING:
        a = policy_for(cls, config).act_array(obs)
        np.testing.assert_array_equal(a[[1, 2]], [2.0, 0.0])  # the floor even when full; free stays 0
        assert a.sum() == pytest.approx(15.0)


def test_edf_llf_examples():
    config = EnvConfig(n_stations=3, p_max=22.0, P_ref=30.0)  # 0.075 kWh per kW-step
    # station 0 departs last but needs 18 full-power steps in 12: EDF serves it last, LLF first
    obs = make_obs(config, [1, 1, 1], [30.0, 1.2, 0.5], [12, 4, 6])
    edf = policy_for(EDF, config).act_array(obs)
    llf = policy_for(LLF, config).act_array(obs)
    np.testing.assert_allclose(edf, [30.0 - 16.0 - 0.5 / 0.075, 16.0, 0.5 / 0.075])
    np.testing.assert_allclose(llf, [22.0, 8.0, 0.0])


# ---------------------------------------------------------------------------- allocation
caps = st.lists(st.floats(0.0, 50.0, allow_nan=False), min_size=1, max_size=20).map(np.array)


@settings(max_examples=100, deadline=None)
@given(caps, st.floats(-5.0, 400.0, allow_nan=False), st.randoms(use_true_random=False))
def test_allocations_are_feasible(cap, budget, rnd):
    order = np.array(rnd.sample(range(cap.size), cap.size))
    for a in (priority_fill(cap, budget, order), water_fill(cap, budget), scale_to_budget(cap, budget)):
        assert np.all(a >= 0.0) and np.all(a <= cap)
        assert a.sum() <= max(budget, 0.0) + 1e-9
        assert a.sum() == pytest.approx(min(max(budget, 0.0), cap.sum()), abs=1e-9)


def test_exact_limit_never_rounds_up():
    assert exact_limit(float(np.float32(31.5)), 31.5) == 31.5
    assert exact_limit(float(np.float32(33.3)), 33.3) == 33.3
    observed = float(np.float32(33.3))  # a time-varying limit that is not the config's
    assert exact_limit(observed, 10.0) <= 33.3


# ---------------------------------------------------------------------------- interface
def test_registry_and_make_policy():
    assert set(POLICIES) == {
        "uncontrolled", "edf", "llf", "equal-share", "round-robin", "mpc-decentralised", "mpc-decentralised-tracking",
        "mpc-distributed", "mpc-centralised", "mpc-foresight", "mpc-history", "offline-optimal",
    }
    for name, factory in POLICIES.items():
        assert make_policy(name).name == name == factory.name
    with pytest.raises(ValueError, match="must be one of"):
        make_policy("greedy")


def test_dict_api_matches_array_api_and_stays_below_p_ref():
    config = EnvConfig(n_stations=5, P_ref=33.3)  # not representable in float32
    obs = make_obs(config, [1, 1, 1, 0, 1], [20.0, 10.0, 5.0, 0.0, 7.0], [3, 9, 20, 0, 4])
    for cls in SHARING + (Uncontrolled,):
        policy = policy_for(cls, config)
        actions = policy.act({f"cs_{i}": obs[i] for i in range(5)})
        assert list(actions) == [f"cs_{i}" for i in range(5)]
        assert all(v.shape == (1,) and v.dtype == np.float32 for v in actions.values())
        vec = np.array([actions[f"cs_{i}"][0] for i in range(5)], dtype=np.float64)
        np.testing.assert_allclose(vec, policy.act_array(obs), rtol=1e-6)
        if cls is not Uncontrolled:
            assert vec.sum() <= 33.3 + 1e-9
        assert set(policy.last_stats) >= {"solve_time_s", "iterations", "converged"}


def test_bad_inputs_raise():
    config = EnvConfig(n_stations=3)
    with pytest.raises(RuntimeError, match="before reset"):
        EDF().act_array(np.zeros((3, N_OBS)))
    policy = policy_for(EDF, config)
    with pytest.raises(ValueError, match="obs.shape"):
        policy.act_array(np.zeros((4, N_OBS)))
    bad = np.zeros((3, N_OBS))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        policy.act_array(bad)
    with pytest.raises(ValueError, match="cs_0..cs_2"):
        policy.act({"cs_0": bad[0], "cs_1": bad[1]})
    with pytest.raises(ValueError, match="scenario = None"):
        OfflineOptimal().reset(config)


# ---------------------------------------------------------------------------- MPC building blocks
def test_build_problem_from_observations():
    config = EnvConfig(n_stations=4)
    obs = make_obs(config, [1, 0, 1, 1], [12.5, 0.0, 3.0, 0.0], [30, 0, 5, 2])
    fixed = MPCSettings(horizon=24, horizon_to_departure=False)
    problem = build_problem(Observed(obs, config.P_ref), config.eta, config.dt_h, fixed)
    np.testing.assert_array_equal(problem.d, [24, 0, 5, 2])
    np.testing.assert_array_equal(problem.departure, [30, 0, 5, 2])
    extended = build_problem(Observed(obs, config.P_ref), config.eta, config.dt_h, MPCSettings(horizon=24))
    assert extended.horizon == 48 and extended.d[0] == 30  # towards the departure, at most max_horizon
    np.testing.assert_allclose(problem.r, [12.5, 0.0, 3.0, 0.0])
    np.testing.assert_allclose(problem.s, problem.r)
    np.testing.assert_array_equal(problem.x0, 0.0)
    np.testing.assert_allclose(problem.P_ref, np.full(24, 31.5))
    assert (problem.eta, problem.dt_h) == (config.eta, config.dt_h)


def test_build_problem_with_p_min_stays_feasible():
    config = EnvConfig(n_stations=3, p_min=4.0, P_ref=6.0)
    obs = make_obs(config, [1, 1, 0], [0.5, 20.0, 0.0], [6, 30, 0])
    problem = build_problem(Observed(obs, config.P_ref), config.eta, config.dt_h,
                            MPCSettings(horizon=12, horizon_to_departure=False))
    problem.check_feasible()  # raises if the forced p_min energy or area power were infeasible
    assert problem.s[0] == pytest.approx(6 * 4.0 * config.eta * config.dt_h)


@settings(max_examples=60, deadline=None)
@given(situations(), st.integers(0, 2**31 - 1))
def test_safe_first_move_is_feasible(case, seed):
    config, obs = case
    ob = Observed(obs, config.P_ref)
    p0 = np.random.default_rng(seed).uniform(-5.0, 2 * config.p_max, config.n_stations)
    a = safe_first_move(p0, ob, config.eta, config.dt_h)
    assert np.all(a >= 0.0) and np.all(a <= ob.need_kw(config.eta, config.dt_h) + 1e-12)
    assert a.sum() <= config.P_ref + 1e-9


# ---------------------------------------------------------------------------- offline LP
def tiny_scenario(late_pev: bool) -> tuple[EnvConfig, Scenario]:
    """Two stations, an area limit of one station's power, 6 steps: optima known by hand.

    PEV 0 stays steps [0, 2) and needs 2 full-power steps, PEV 1 stays [0, 6) and needs 4;
    the optional PEV 2 stays [3, 6) and needs 3 (then the need exceeds the 6 available steps by 3).
    """
    config = EnvConfig(n_stations=2, n_pevs=3, p_max=10.0, P_ref=10.0, total_time=30.0)
    gain = config.eta * config.dt_h  # 0.075 kWh per kW-step
    m = 3 if late_pev else 2
    scenario = Scenario(
        arrival=np.array([0, 0, 3][:m]), departure=np.array([2, 6, 6][:m]),
        soc_init=np.zeros(m), soc_target=np.array([2, 4, 3][:m]) * 10.0 * gain,
        capacity=np.full(m, 24.0), station=np.full(m, -1), n_stations=2, n_steps=6,
    )
    return config, scenario


def test_offline_plan_serves_the_early_deadline_first():
    config, scenario = tiny_scenario(late_pev=False)
    plan, unmet = offline_plan(config, scenario, plug_schedule(scenario).station_pev)
    assert unmet == pytest.approx(0.0, abs=1e-7)
    np.testing.assert_allclose(plan, [[10, 0]] * 2 + [[0, 10]] * 4, atol=1e-6)


def test_offline_plan_of_an_episode_without_pevs_is_all_zeros():
    """No PEV, no plugged cell: the plan is zeros (an empty LP made scipy's linprog raise)."""
    config = EnvConfig(n_stations=3, total_time=30.0)
    empty = np.zeros(0)
    scenario = Scenario(arrival=empty.astype(int), departure=empty.astype(int), soc_init=empty, soc_target=empty,
                        capacity=empty, station=empty.astype(int), n_stations=3, n_steps=6)
    plan, unmet = offline_plan(config, scenario, plug_schedule(scenario).station_pev)
    assert unmet == 0.0 and plan.shape == (6, 3) and not plan.any()


def test_an_inaccurate_offline_plan_is_counted_once_in_the_results(monkeypatch):
    """A cone stage that Clarabel ends 'inaccurate' is not printed but reported: the first step of the
    episode is not converged (nonconverged_steps 1), the others are."""
    import pev_mpc.policies.offline as offline

    solve = offline._solve_socp
    monkeypatch.setattr(offline, "_solve_socp", lambda problem, stage: solve(problem, stage) and False)
    config, scenario = make_scenario("acn-caltech-network", 0, EnvConfig(network="caltech", transformer_kw=40.0))
    policy = OfflineOptimal()
    policy.reset(config, scenario, 0)  # three-phase: the cone program (an LP would be HiGHS, exact or raising)
    core = ChargingCore(config, scenario)
    obs, converged = core.reset(), []
    for _ in range(3):
        obs = core.step(policy.act_array(obs)).observations
        converged.append(policy.last_stats["converged"])
    assert not policy.accurate and converged[0] is False and all(converged[1:])


def test_offline_plan_unmet_when_overbooked():
    config, scenario = tiny_scenario(late_pev=True)
    plan, unmet = offline_plan(config, scenario, plug_schedule(scenario).station_pev)
    assert unmet == pytest.approx(3 * 10.0 * config.eta * config.dt_h, abs=1e-7)
    np.testing.assert_allclose(plan.sum(axis=1), config.P_ref, atol=1e-6)
    assert np.all(plan.sum(axis=1) <= config.P_ref + 1e-9)


def test_offline_matches_an_independent_cvxpy_model():
    import cvxpy as cp

    config, scenario = make_scenario("seed", 3)
    station_pev = plug_schedule(scenario).station_pev
    _, unmet = offline_plan(config, scenario, station_pev)
    p = cp.Variable(station_pev.shape, nonneg=True)
    delivered = []
    for j in range(scenario.n_pevs):
        mask = (station_pev == j).astype(float)
        delivered.append(config.eta * config.dt_h * cp.sum(cp.multiply(mask, p)))
    delivered = cp.hstack(delivered)
    soc = scenario.soc_init + delivered
    constraints = [p <= config.p_max * (station_pev >= 0), cp.sum(p, axis=1) <= config.P_ref,
                   soc <= scenario.capacity]
    problem = cp.Problem(cp.Minimize(cp.sum(cp.pos(scenario.soc_target - soc))), constraints)
    problem.solve(solver=cp.CLARABEL)
    assert unmet == pytest.approx(problem.value, abs=1e-5)


def test_offline_detects_a_different_scenario():
    config, scenario = tiny_scenario(late_pev=False)
    policy = OfflineOptimal()
    policy.reset(config, scenario)
    obs = make_obs(config, [0, 1], [0.0, 1.0], [0, 6])  # the schedule has both stations plugged at t=0
    with pytest.raises(RuntimeError, match="differ from the scenario"):
        policy.act_array(obs)


def test_decentralised_mpc_warm_starts_from_the_previous_prices(monkeypatch):
    """The policy hands the previous step's prices to solve_decentralised unshifted (it shifts them once),
    plus their last change (warm_extrapolation, default) or as they are (warm_extrapolation = 0)."""
    import pev_mpc.policies.mpc as mpc_module

    calls = []
    original = mpc_module.solve_decentralised

    def spy(problem, settings, warm_prices=None, pool=None):
        solution = original(problem, settings, warm_prices=warm_prices, pool=pool)
        calls.append((None if warm_prices is None else np.array(warm_prices), np.array(solution.prices)))
        return solution

    monkeypatch.setattr(mpc_module, "solve_decentralised", spy)
    config, scenario = make_scenario("seed", 0)
    for limit in (0.0, MPCSettings().warm_extrapolation):
        calls.clear()
        core = ChargingCore(config, scenario)
        policy = make_policy("mpc-decentralised", settings=MPCSettings(warm_extrapolation=limit))
        policy.reset(config, scenario, 0)
        obs = core.reset()
        for _ in range(12):
            obs = core.step(policy.act_array(obs)).observations
        assert calls[0][0] is None
        before = None
        for (_, previous), (warm, _) in zip(calls, calls[1:]):
            np.testing.assert_array_equal(warm, extrapolate_prices(previous, before, limit))
            if limit == 0.0:
                np.testing.assert_array_equal(warm, previous)
            before = previous
