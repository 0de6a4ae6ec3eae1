"""Controllers under site networks: exact allocation by the heuristics, the area network reproduces the area
path, the offline optimum against an independent cvxpy formulation, the centralised MPC's constraints and
price convention, and closed loops on a Caltech morning without a network violation."""
from __future__ import annotations

import dataclasses

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pev_env.config import EnvConfig
from pev_env.core import ChargingCore
from pev_env.network import Network, area_network, site_network
from pev_env.scenario import Scenario
from pev_env.scenarios import make_scenario
from pev_env.schedule import plug_schedule
from pev_mpc.centralised import solve_centralised
from pev_mpc.network_allocation import station_prices
from pev_mpc.network_allocation import max_min_fill, round_robin, scale_into_network, sorted_fill
from pev_mpc.objective import station_costs
from pev_mpc.policies import make_policy
from pev_mpc.policies.base import Observed
from pev_mpc.policies.offline import offline_plan
from pev_mpc.problem import ChargingProblem
from pev_mpc.settings import MPCSettings

from network_strategies import PHASES, networks

def _extra(draw, n: int) -> np.ndarray:
    return np.array(draw(st.lists(st.floats(0.0, 20.0), min_size=n, max_size=n)))


def _assert_feasible(network: Network, p: np.ndarray) -> None:
    assert np.all(network.loads(p) <= network.limit), (network.loads(p), network.limit)


@given(networks(), st.data())
def test_sorted_fill_never_exceeds_and_first_takes_its_largest_feasible_rate(network, data) -> None:
    n = network.n_stations
    extra = _extra(data.draw, n)
    order = np.array(data.draw(st.permutations(range(n))))
    floor = np.zeros(n)
    a = sorted_fill(network, floor, extra, order)
    assert np.all((0.0 <= a) & (a <= extra))
    _assert_feasible(network, floor + a)
    first = order[0]
    mag = network.magnitude[:, first]
    alone = np.min(network.limit[mag > 0] / mag[mag > 0], initial=np.inf)  # |g r| <= L from zero load
    assert a[first] == pytest.approx(min(extra[first], alone), rel=1e-9, abs=1e-12)


def _assert_short_stations_blocked(network, a: np.ndarray, extra: np.ndarray) -> None:
    """Every station granted less than its need loads a constraint at its limit."""
    tight = network.loads(a) >= network.limit * (1 - 1e-9)
    short = a < extra * (1 - 1e-9)
    assert np.all(~short | (network.loaded & tight[:, None]).any(axis=0))


@given(networks(linear=True), st.data())
def test_sorted_fill_on_linear_networks_leaves_no_station_able_to_grow(network, data) -> None:
    """A linear row's load only grows, so a station short of its need loads a row at its limit."""
    n = network.n_stations
    extra = _extra(data.draw, n)
    a = sorted_fill(network, np.zeros(n), extra, np.arange(n))
    _assert_short_stations_blocked(network, a, extra)


@given(networks(), st.data())
def test_round_robin_never_exceeds(network, data) -> None:
    n = network.n_stations
    extra = _extra(data.draw, n)
    a = round_robin(network, np.zeros(n), extra, np.arange(n), 0.5)
    assert np.all((0.0 <= a) & (a <= extra))
    _assert_feasible(network, a)


@given(networks(), st.data())
def test_max_min_fill_never_exceeds_and_blocks_every_short_station(network, data) -> None:
    """Max-min fairness: a station short of its need loads a constraint at its limit (its neighbours on
    that constraint were frozen with it, so its load does not move afterwards)."""
    n = network.n_stations
    extra = _extra(data.draw, n)
    a = max_min_fill(network, np.zeros(n), extra)
    assert np.all((0.0 <= a) & (a <= extra))
    _assert_feasible(network, a)
    _assert_short_stations_blocked(network, a, extra)


@given(networks(), st.data())
def test_scaling_into_the_network_is_feasible_and_largest(network, data) -> None:
    n = network.n_stations
    extra = _extra(data.draw, n)
    p = scale_into_network(network, np.zeros(n), extra)
    _assert_feasible(network, p)
    t = np.max(p / np.where(extra > 0, extra, 1.0), initial=0.0)
    if np.all(network.loads(extra) <= network.limit):
        np.testing.assert_array_equal(p, extra)
    elif t > 0:
        assert np.any(network.loads(extra * t * (1 + 1e-9)) > network.limit)


# ----------------------------------------------------------------------------------- the area network
def _observations(n: int, seed: int, P_ref: float) -> np.ndarray:
    from pev_env.observation import N_OBS, OBS_INDEX

    rng = np.random.default_rng(seed)
    obs = np.zeros((n, N_OBS))
    obs[:, OBS_INDEX["plugged"]] = rng.random(n) < 0.8
    obs[:, OBS_INDEX["p_max"]] = 22.0
    obs[:, OBS_INDEX["soc_remain"]] = rng.uniform(0.0, 20.0, n)
    obs[:, OBS_INDEX["steps_to_departure"]] = rng.integers(1, 30, n)
    obs[:, OBS_INDEX["P_ref"]] = P_ref
    return obs


@pytest.mark.parametrize("name", ["uncontrolled", "edf", "llf", "equal-share", "mpc-centralised"])
@pytest.mark.parametrize("seed", range(4))
def test_area_network_path_gives_the_area_actions(name, seed) -> None:
    """`network='area'` keeps the area code (Policy.network None); the network code on the one-row
    area network gives the same actions."""
    config = EnvConfig(n_stations=8, P_ref=40.0)
    obs = _observations(8, seed, config.P_ref)
    area = make_policy(name)
    area.reset(config)
    assert area.network is None
    on_network = make_policy(name)
    on_network.reset(config)
    on_network.network = area_network(8, config.P_ref)
    # the heuristics to rounding; the MPC to the solver's tolerance (network problems stop at a 1e-8 gap)
    tolerance = dict(rtol=0.0, atol=1e-4) if name.startswith("mpc") else dict(rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(on_network.act_array(obs), area.act_array(obs), **tolerance)


def test_area_network_centralised_prices_are_the_area_prices() -> None:
    config = EnvConfig(n_stations=8, P_ref=20.0)
    ob = Observed(_observations(8, 1, config.P_ref), config.P_ref)
    from pev_mpc.policies.mpc import build_problem

    settings = MPCSettings(horizon=6, horizon_to_departure=False)
    area = solve_centralised(build_problem(ob, config.eta, config.dt_h, settings), settings)
    network = area_network(8, config.P_ref)
    on_net = solve_centralised(build_problem(ob, config.eta, config.dt_h, settings, network), settings)
    assert on_net.prices.shape == (1, 6) and area.prices.shape == (6,)
    assert np.max(area.prices) > 0  # the limit binds
    np.testing.assert_allclose(on_net.prices[0].real, area.prices, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(on_net.p, area.p, atol=1e-5)


def test_area_network_offline_plan_is_the_area_plan(tiny_config, tiny_scenario) -> None:
    station_pev = plug_schedule(tiny_scenario).station_pev
    plan, unmet = offline_plan(tiny_config, tiny_scenario, station_pev)
    plan_net, unmet_net = offline_plan(tiny_config, tiny_scenario, station_pev,
                                       area_network(tiny_config.n_stations, tiny_config.P_ref))
    assert unmet_net == pytest.approx(unmet, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(plan_net, plan, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------------- offline optimum
def _independent_unmet(config: EnvConfig, scenario: Scenario, network: Network) -> float:
    """min sum of unmet energy with the network written on complex expressions, |G p_t| <= L per step."""
    station_pev = plug_schedule(scenario).station_pev
    plugged = station_pev >= 0
    T, n = plugged.shape
    p = cp.Variable((T, n))
    u = cp.Variable(scenario.n_pevs, nonneg=True)
    low = np.where(plugged, config.station_p_min, 0.0)
    high = np.where(plugged, config.station_p_max, 0.0)
    member = np.stack([(station_pev == j).astype(float) for j in range(scenario.n_pevs)])  # (M, T, n)
    delivered = config.eta * config.dt_h * cp.hstack([cp.sum(cp.multiply(member[j], p))
                                                      for j in range(scenario.n_pevs)])
    forced = config.eta * config.dt_h * (member * low).sum(axis=(1, 2))
    floor_load = np.abs(low @ network.gain.T)  # (T, J)
    constraints = [p >= low, p <= high, u >= scenario.energy_requested - delivered,
                   delivered <= np.maximum(scenario.energy_requested, forced),
                   cp.abs(p @ network.gain.T) <= np.maximum(network.limit[None, :], floor_load)]
    problem = cp.Problem(cp.Minimize(cp.sum(u)), constraints)
    problem.solve(solver=cp.CLARABEL)
    assert problem.status == cp.OPTIMAL
    return float(problem.value)


def _realised_unmet(plan: np.ndarray, config: EnvConfig, scenario: Scenario) -> float:
    station_pev = plug_schedule(scenario).station_pev
    steps, stations = np.nonzero(station_pev >= 0)
    delivered = np.bincount(station_pev[steps, stations], weights=plan[steps, stations],
                            minlength=scenario.n_pevs) * config.eta * config.dt_h
    return float(np.maximum(scenario.energy_requested - delivered, 0.0).sum())


def _cone_case(seed: int = 0) -> tuple[EnvConfig, Scenario, Network]:
    """Seven sessions on four stations over ten steps under three random phasor constraints."""
    rng = np.random.default_rng(seed)
    n, T, m = 4, 10, 7
    arrival = rng.integers(0, T - 2, m)
    scenario = Scenario(arrival=arrival, departure=np.minimum(arrival + rng.integers(2, 8, m), T),
                        soc_init=rng.uniform(0, 10, m), soc_target=np.full(m, 24.0), capacity=np.full(m, 24.0),
                        station=-np.ones(m, dtype=int), n_stations=n, n_steps=T)
    gain = rng.choice([-1.0, 0.0, 1.0], size=(3, n)) * PHASES[rng.integers(0, 3, n)] + 0.3 * rng.normal(size=(3, n))
    network = Network("random", ("a", "b", "c"), gain, rng.uniform(3.0, 12.0, 3), ("A",) * 3)
    return EnvConfig(n_stations=n, n_pevs=m, p_max=10.0, total_time=5.0 * T), scenario, network


@pytest.mark.parametrize("seed", range(4))
def test_offline_optimum_on_random_cone_networks(seed) -> None:
    config, scenario, network = _cone_case(seed)
    assert not network.is_linear
    plan, unmet = offline_plan(config, scenario, plug_schedule(scenario).station_pev, network)
    expected = _independent_unmet(config, scenario, network)
    assert expected > 0.1  # the network binds
    assert unmet == pytest.approx(expected, rel=1e-6)
    assert _realised_unmet(plan, config, scenario) == pytest.approx(expected, rel=1e-6)
    assert np.all(network.loads(plan.T) <= network.limit[:, None])


@pytest.mark.parametrize("fail, outcome", [({"early": 1}, "retried"), ({"early": 2}, "first stage's plan"),
                                           ({"unmet": 1}, "retried"), ({"unmet": 2}, "raises")])
def test_offline_cone_stage_that_clarabel_fails_is_retried_and_reported_inaccurate(monkeypatch, fail, outcome) -> None:
    """A Clarabel failure (cvxpy's SolverError, as on a held-out Caltech day at 25 kW) is retried once with other
    tolerances; a tie-break stage failing twice keeps the first stage's optimal plan; either is reported
    inaccurate. The unmet stage failing twice raises, naming it."""
    from pev_mpc.policies import offline
    from pev_mpc.policies.offline import offline_solution

    config, scenario, network = _cone_case()
    station_pev = plug_schedule(scenario).station_pev
    _, unmet0, accurate0 = offline_solution(config, scenario, station_pev, network)
    solve, calls, current = cp.Problem.solve, {}, {}

    def failing(problem, *args, **kwargs):
        options = {k: v for k, v in kwargs.items() if k != "solver"}
        current.update({"stage": name for name, first in offline._CLARABEL.items() if options == first})
        stage = current["stage"]                       # a retry (offline._CLARABEL_RETRY) is of the last stage tried
        calls[stage] = calls.get(stage, 0) + 1
        if calls[stage] <= fail.get(stage, 0):
            raise cp.error.SolverError("Solver 'CLARABEL' failed.")
        return solve(problem, *args, **kwargs)

    monkeypatch.setattr(cp.Problem, "solve", failing)
    if outcome == "raises":
        with pytest.raises(RuntimeError, match=r"OfflineOptimal SOCP \(unmet\) failed: Clarabel failed at .* and at"):
            offline_solution(config, scenario, station_pev, network)
        return
    plan, unmet, accurate = offline_solution(config, scenario, station_pev, network)
    assert accurate0 and not accurate
    assert unmet == pytest.approx(unmet0, rel=1e-5, abs=1e-6)
    assert _realised_unmet(plan, config, scenario) == pytest.approx(unmet0, rel=1e-5, abs=1e-6)
    assert np.all(network.loads(plan.T) <= network.limit[:, None] * (1 + 1e-9))
    assert calls == {stage: min(2, 1 + fail.get(stage, 0)) for stage in ("unmet", "early")}   # two tries at most


def _morning(spec: str = "acn-caltech", start: int = 84, steps: int = 48,
             **env: object) -> tuple[EnvConfig, Scenario]:
    """Steps start .. start + steps of a Caltech day on its network (sessions cut to the window)."""
    config, day = make_scenario(spec, 0, EnvConfig(network="caltech", **env))
    keep = (day.arrival < start + steps) & (day.departure > start)
    arrival = np.maximum(day.arrival[keep], start) - start
    departure = np.minimum(day.departure[keep], start + steps) - start
    scenario = dataclasses.replace(day, arrival=arrival, departure=departure,
                                   soc_init=day.soc_init[keep], soc_target=day.soc_target[keep],
                                   capacity=day.capacity[keep], station=day.station[keep], n_steps=steps,
                                   name=f"{day.name} {start}+{steps}")
    return config.with_overrides({"total_time": steps * config.sampling_time, "n_pevs": scenario.n_pevs}), scenario


@pytest.fixture(scope="module")
def caltech_morning() -> tuple[EnvConfig, Scenario]:
    return _morning(transformer_kw=40.0)


def test_offline_optimum_on_a_caltech_morning(caltech_morning) -> None:
    config, scenario = caltech_morning
    network = site_network(config, scenario.station_ids)
    plan, unmet = offline_plan(config, scenario, plug_schedule(scenario).station_pev, network)
    expected = _independent_unmet(config, scenario, network)
    assert expected > 1.0
    assert unmet == pytest.approx(expected, rel=1e-6)
    assert _realised_unmet(plan, config, scenario) == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------------------------- centralised MPC
@pytest.mark.parametrize("seed", range(3))
def test_centralised_mpc_respects_the_network_and_its_prices_satisfy_kkt(seed) -> None:
    """Primal feasibility; complementary slackness; a cone's multiplier points along its load; and
    stationarity: df/dp_ik + pi_ik = 0 where station i's bounds and cap do not bind (pi_ik =
    sum_j Re(conj(G_ji) y_jk))."""
    rng = np.random.default_rng(seed)
    n, H = 6, 5
    gain = np.vstack([PHASES[rng.integers(0, 3, n)] * rng.choice([0.0, 1.0], size=(2, n)),
                      np.ones((1, n))])
    network = Network("test", ("a", "b", "kW"), gain, np.array([6.0, 8.0, 30.0]), ("A", "A", "kW"))
    r = rng.uniform(1.0, 12.0, n)
    problem = ChargingProblem(x0=np.zeros(n), r=r, s=r, d=rng.integers(2, H + 1, n), p_min=0.0, p_max=11.0,
                              eta=0.9, dt_h=0.25, P_ref=1e3, horizon=H, network=network)
    settings = MPCSettings(horizon=H, horizon_to_departure=False)
    sol = solve_centralised(problem, settings)
    assert sol.converged and sol.prices.shape == (3, H) and np.iscomplexobj(sol.prices)
    assert problem.violation(sol.p)["network_rel"] <= 1e-7
    load = network.gain @ sol.p  # (J, H)
    y = sol.prices
    assert np.max(np.abs(y)) > 1e-3  # some constraint binds
    assert np.all(np.abs(y) * (network.limit[:, None] - np.abs(load)) <= 1e-5 * np.abs(y).max())
    active = np.abs(y) > 1e-4 * np.abs(y).max()
    assert np.all(np.abs(np.angle(y[active] * np.conj(load[active]))) <= 1e-3)
    assert np.allclose(y[2].imag, 0.0) and np.all(y[2].real >= 0.0)  # the linear row: mu * direction
    pi = station_prices(network, y)
    grad = station_costs(problem, settings).gradient(problem, sol.p)
    energy = problem.c * sol.p.sum(axis=1)
    free = problem.mask & (sol.p > 1e-4) & (sol.p < 11.0 - 1e-4) & (energy < problem.s - 1e-4)[:, None]
    assert free.sum() >= 3
    np.testing.assert_allclose(grad[free] + pi[free], 0.0, atol=1e-4 * max(1.0, np.abs(grad).max()))


# -------------------------------------------------------------------------------------------- closed loop
@pytest.mark.parametrize("name", ["llf", "edf", "round-robin", "equal-share", "offline-optimal", "mpc-centralised",
                                  "mpc-decentralised", "mpc-decentralised-tracking"])
def test_closed_loop_on_a_caltech_morning_never_violates_the_network(caltech_morning, name) -> None:
    config, scenario = caltech_morning
    network = site_network(config, scenario.station_ids)
    kwargs = {"settings": MPCSettings(horizon=6, max_horizon=12)} if name.startswith("mpc") else {}
    policy = make_policy(name, **kwargs)
    core = ChargingCore(config, scenario)
    policy.reset(config, scenario, 0)
    obs = core.reset()
    applied, rounds = [], []
    while not core.done:
        step = core.step(policy.act_array(obs))
        applied.append(step.applied_kw)
        rounds.append(policy.last_stats.get("iterations", 0))
        # the decentralised MPC certifies every step (Clarabel may flag a centralised step inaccurate)
        assert policy.last_stats.get("converged", True) or not name.startswith("mpc-decentralised")
        obs = step.observations
    loads = network.loads(np.array(applied).T)
    assert np.all(loads <= network.limit[:, None])
    assert loads.max(axis=1).max() > 0.5 * network.limit.min()  # the network is in use
    assert core.episode_metrics()["network_violation_steps"] == 0
    if name.startswith("mpc-decentralised"):  # the round goals: at most 25 in a step, mean <= 8
        assert max(rounds) <= 25 and np.mean(rounds) <= 8


def test_centralised_mpc_falls_back_to_its_shifted_plan_where_the_solver_fails(caltech_morning, monkeypatch) -> None:
    """A step whose solver fails acts on the last plan shifted by one step, flagged (not converged, one
    fallback), and the applied move still respects the network."""
    import cvxpy as cp

    import pev_mpc.policies.mpc as mpc

    config, scenario = caltech_morning
    policy = make_policy("mpc-centralised", settings=MPCSettings(horizon=6, max_horizon=12))
    core = ChargingCore(config, scenario)
    policy.reset(config, scenario, 0)
    obs = core.reset()
    for _ in range(12):
        obs = core.step(policy.act_array(obs)).observations
    last = policy._last.p.copy()

    def fail(*args, **kwargs):
        raise cp.error.SolverError("Solver 'CLARABEL' failed")

    monkeypatch.setattr(mpc, "solve_centralised", fail)
    applied = core.step(policy.act_array(obs)).applied_kw
    assert policy.last_stats["converged"] is False and policy.last_stats["fallbacks"] == 1
    np.testing.assert_array_equal(policy._last.p[:, :last.shape[1] - 1] <= last[:, 1:] + 1e-12, True)
    network = site_network(config, scenario.station_ids)
    assert np.all(network.loads(applied) <= network.limit)


def test_a_heuristic_of_ones_own_is_a_sort_key_that_keeps_the_network() -> None:
    """docs/extending.md: a SortedRule subclass with `_order` is filled in that order up to every constraint."""
    from pev_mpc.policies.heuristics import SortedRule

    class LargestNeedFirst(SortedRule):
        name = "largest-need"

        def _order(self, ob):
            return np.argsort(-ob.soc_remain, kind="stable")

    config, scenario = make_scenario("acn-caltech-network", 1)
    core, policy = ChargingCore(config, scenario), LargestNeedFirst()
    policy.reset(config, scenario, 1)
    obs = core.reset()
    while not core.done:
        obs = core.step(policy.act_array(obs)).observations
    metrics = core.episode_metrics()
    assert metrics["network_violation_steps"] == 0 and metrics["energy_delivered_kwh"] > 0
