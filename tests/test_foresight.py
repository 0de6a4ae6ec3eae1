"""PEVs still to come (`ChargingProblem.arrival`, `pev_mpc.foresight`) and the `mpc-foresight` policy."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st_

from pev_env.config import EnvConfig
from pev_env.core import ChargingCore
from pev_env.network import site_network
from pev_env.scenario import Scenario
from pev_env.schedule import plug_schedule
from pev_mpc import ChargingProblem, MPCSettings, solve_centralised, solve_decentralised
from pev_mpc.decentralised import make_station_pool
from pev_mpc.foresight import ComingPEVs, coming_pevs, with_coming
from pev_mpc.objective import laxity_steps
from pev_mpc.policies import ForesightMPC, make_policy
from tests.test_network_coordinator import H, assert_agree, network_problem, random_network


def coming(problem: ChargingProblem, seed: int, m: int = 4) -> ComingPEVs:
    """m PEVs that arrive within the horizon (some leave after it) at random stations."""
    rng = np.random.default_rng(seed)
    arrival = rng.integers(1, problem.horizon, m)
    departure = arrival + rng.integers(1, 2 * problem.horizon, m)
    return ComingPEVs(rng.integers(0, problem.n_stations, m), arrival, departure, rng.uniform(1.0, 20.0, m))


def test_arrival_masks_the_steps_before_it_and_is_checked():
    base = dict(x0=np.zeros(3), r=[5.0, 5.0, 0.0], s=[5.0, 5.0, 0.0], d=[4, 6, 0], p_min=0.0, p_max=7.0, eta=0.9,
                dt_h=0.25, P_ref=10.0, horizon=6)
    problem = ChargingProblem(**base, arrival=[0, 2, 0])
    assert problem.mask.tolist() == [[True] * 4 + [False] * 2, [False] * 2 + [True] * 4, [False] * 6]
    assert np.all(problem.upper_plan()[1, :2] == 0.0) and np.all(problem.upper_plan()[1, 2:] == 7.0)
    # laxity counts from the arrival: 4 plugged steps less the 5 / (0.9 * 0.25 * 7) steps it needs
    assert laxity_steps(problem)[1] == pytest.approx(4 - 5 / (0.9 * 0.25 * 7))
    assert problem.subset(np.array([1])).arrival.tolist() == [2]
    for bad, why in (([0, 6, 0], "in \\[0, d\\)"), ([0, 1, 1], "0 where d = 0"), ([0, 1.5, 0], "integers")):
        with pytest.raises(ValueError, match=f"ChargingProblem.arrival .*{why}"):
            ChargingProblem(**base, arrival=bad)
    assert ChargingProblem(**base).arrival.tolist() == [0, 0, 0]


def test_with_coming_appends_columns_with_their_stations_gains():
    network = site_network(EnvConfig(network="caltech", n_stations=54, transformer_kw=40.0))
    problem = network_problem(network, 0)
    pevs = ComingPEVs(np.array([3, 7, 7]), np.array([2, 30, H - 1]), np.array([5, 40, H + 9]),
                      np.array([4.0, 9.0, 6.0]))
    out = with_coming(problem, pevs)
    n = problem.n_stations
    assert out.n_stations == n + 2                       # the PEV arriving at step 30 >= H = 12 is left out
    assert np.array_equal(out.network.gain[:, :n], network.gain) and out.network.limit is problem.network.limit
    assert np.array_equal(out.network.gain[:, n:], network.gain[:, [3, 7]])
    assert out.arrival[n:].tolist() == [2, H - 1] and out.d[n:].tolist() == [5, H]
    assert out.departure[n:].tolist() == [5, H + 9] and out.r[n:].tolist() == [4.0, 6.0]
    assert np.all(out.p_min[n:] == 0.0) and out.p_max[n:].tolist() == problem.p_max[[3, 7]].tolist()
    for name in ("x0", "r", "s", "d", "p_max", "departure", "arrival"):
        assert np.array_equal(getattr(out, name)[:n], getattr(problem, name))
    empty = ComingPEVs(*(np.zeros(0, dtype=int),) * 3, np.zeros(0))
    assert with_coming(problem, empty) is problem


def test_coming_pevs_reads_the_window_at_free_stations():
    scenario = Scenario(arrival=np.array([1, 5, 6, 9, 20]), departure=np.array([8, 12, 15, 30, 40]),
                        soc_init=np.array([0.0, 1.0, 0.0, 2.0, 0.0]), soc_target=np.array([4.0, 6.0, 3.0, 7.0, 5.0]),
                        capacity=np.full(5, 50.0), station=np.array([0, 1, 0, 2, 1]), n_stations=3, n_steps=48)
    busy = np.array([8, 4, 4])                          # station 0's PEV leaves at step 8
    got = coming_pevs(scenario, 4, 10, busy)
    assert got.station.tolist() == [1, 0, 2]            # the one of step 6 waits for station 0 (step 8); 20 is past
    assert got.arrival.tolist() == [1, 4, 5] and got.departure.tolist() == [8, 11, 26]
    assert got.energy_kwh.tolist() == [5.0, 3.0, 5.0]
    assert coming_pevs(scenario, 4, 0, busy).station.size == 0


def test_coming_pevs_take_the_station_and_step_the_plant_gives_them():
    # PEVs without a preferred station take the first free one, or wait for one, as the plant's schedule says
    scenario = Scenario(arrival=np.array([0, 3, 5]), departure=np.array([10, 20, 30]), soc_init=np.zeros(3),
                        soc_target=np.array([4.0, 5.0, 6.0]), capacity=np.full(3, 50.0),
                        station=np.array([0, -1, -1]), n_stations=2, n_steps=48)
    got = coming_pevs(scenario, 2, 10, np.array([10, 2]))
    assert got.station.tolist() == [1, 0]               # the second waits for station 0 until step 10
    assert got.arrival.tolist() == [1, 8] and got.departure.tolist() == [18, 28]
    schedule = plug_schedule(scenario)                  # what ChargingCore plugs in (core.schedule)
    assert schedule.station[1:].tolist() == [1, 0] and schedule.plug_step[1:].tolist() == [3, 10]


@pytest.mark.parametrize("objective_seed", [0, 1, 3])
def test_coming_pevs_are_coordinated_like_plugged_ones_on_caltech(objective_seed):
    network = site_network(EnvConfig(network="caltech", n_stations=54, transformer_kw=40.0))
    problem = network_problem(network, objective_seed)
    out = with_coming(problem, coming(problem, objective_seed, m=6))
    dec, cen = assert_agree(out, MPCSettings(horizon=H))
    assert np.all(dec.p[~out.mask] == 0.0) and np.all(cen.p[~out.mask] == 0.0)


@hsettings(max_examples=15, deadline=None)
@given(n=st_.integers(1, 10), rows=st_.integers(1, 3), cones=st_.booleans(), seed=st_.integers(0, 10**6),
       tightness=st_.floats(0.05, 1.5))
def test_coming_pevs_agree_with_centralised_on_random_networks(n, rows, cones, seed, tightness):
    problem = network_problem(random_network(n, rows, cones, seed), seed, tightness=tightness)
    assert_agree(with_coming(problem, coming(problem, seed)), MPCSettings(horizon=H))


@pytest.mark.parametrize("seed", range(3))
def test_coming_pevs_agree_with_centralised_under_the_area_limit(seed):
    problem = network_problem(random_network(8, 1, False, seed), seed)
    area = dataclasses.replace(problem, network=None, P_ref=25.0)
    out = with_coming(area, coming(area, seed))
    settings = MPCSettings(horizon=H)
    dec, cen = solve_decentralised(out, settings), solve_centralised(out, settings)
    assert dec.converged and abs(dec.objective - cen.objective) <= 1e-6 * max(1.0, abs(cen.objective))
    assert np.all(dec.p[~out.mask] == 0.0) and np.all(dec.p.sum(axis=0) <= 25.0 + 1e-6)


def test_station_qps_that_plan_from_step_zero_refuse_coming_pevs():
    problem = network_problem(random_network(6, 2, True, 1), 1)
    out = with_coming(problem, coming(problem, 1))
    with pytest.raises(ValueError, match="station_solver = 'active_set'.*'separable'"):
        make_station_pool(out, MPCSettings(horizon=H, station_solver="active_set"))
    with pytest.raises(ValueError, match="station_solver = 'auto' \\(active_set\\)"):
        make_station_pool(out, MPCSettings(horizon=H, objective="tracking"))


def run(policy, config: EnvConfig, scenario: Scenario) -> dict:
    """The episode metrics of `policy` on (config, scenario)."""
    core = ChargingCore(config, scenario)
    policy.reset(config, scenario, 0)
    obs = core.reset()
    while not core.done:
        obs = core.step(policy.act_array(obs)).observations
    return core.episode_metrics()


@pytest.fixture(scope="module")
def caltech_day():
    from pev_env.scenarios import make_scenario

    return make_scenario("acn-caltech-network", 0, EnvConfig(transformer_kw=25.0))


@pytest.fixture(scope="module")
def blind(caltech_day):
    """`mpc-foresight` told no arrivals."""
    return run(make_policy("mpc-foresight", settings=MPCSettings(foresight=0)), *caltech_day)


def test_foresight_of_nothing_is_the_decentralised_mpc_over_a_day(caltech_day, blind):
    """... with the bonus divided by Caltech's exchange ratio 4 (tests/test_history.py)."""
    day = run(make_policy("mpc-decentralised", settings=MPCSettings(max_horizon=288, early_weight=0.125)), *caltech_day)
    assert blind["unmet_energy_kwh"] == pytest.approx(day["unmet_energy_kwh"], abs=1e-6)


def test_foresight_holds_the_network_and_on_this_day_delivers_more(caltech_day, blind):
    """Between the offline optimum and the MPC told nothing on this day (more information need not help a
    receding-horizon controller on every day; on this one it does)."""
    seeing = run(make_policy("mpc-foresight"), *caltech_day)
    offline = run(make_policy("offline-optimal"), *caltech_day)
    assert seeing["network_violation_steps"] == 0 and seeing["local_violation_steps"] == 0
    assert offline["unmet_energy_kwh"] - 1e-6 <= seeing["unmet_energy_kwh"] < blind["unmet_energy_kwh"]


class NothingComes(ForesightMPC):
    """A forecast of one's own (here: no PEV will come)."""

    def coming(self, step, busy_until):
        return ComingPEVs(*(np.zeros(0, dtype=np.int64),) * 3, np.zeros(0))


def test_a_forecast_of_ones_own_replaces_the_scenarios_arrivals(caltech_day, blind):
    own = run(NothingComes(), *caltech_day)
    assert own["unmet_energy_kwh"] == pytest.approx(blind["unmet_energy_kwh"], abs=1e-9)


def test_foresight_needs_the_scenario_and_a_valid_window():
    with pytest.raises(ValueError, match="scenario = None"):
        make_policy("mpc-foresight").reset(EnvConfig(n_stations=2))
    with pytest.raises(ValueError, match="MPCSettings.policy.foresight = -1: must be an int in \\[0, 2016\\]"):
        MPCSettings(foresight=-1)
    with pytest.raises(ValueError, match="objective.name = 'tracking': mpc-foresight .* 'deadline' objective only"):
        make_policy("mpc-foresight", settings=MPCSettings(objective="tracking"))
