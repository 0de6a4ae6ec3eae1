"""The causal forecast of arrivals from a site's other days (`pev_mpc.history`), the `mpc-history` policy, and
the bonus of the whole-day policies divided by the network's exchange ratio (`Network.exchange_ratio`)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from pev_env.config import EnvConfig
from pev_env.network import Network, area_network, site_network, tree_network
from pev_env.scenarios import make_scenario
from pev_mpc import MPCSettings
from pev_mpc.history import ArrivalHistory, day_key
from pev_mpc.policies import make_policy
from tests.test_foresight import run


def history(rows: list[tuple[int, int, int, float, int]], keys: tuple[str, ...]) -> ArrivalHistory:
    """(station, arrival, departure, energy, day) rows."""
    table = np.array(rows, dtype=float)
    return ArrivalHistory(table[:, 0].astype(int), table[:, 1].astype(int), table[:, 2].astype(int), table[:, 3],
                          table[:, 4].astype(int), keys)


FOUR_DAYS = history([(0, 10, 40, 8.0, 0), (0, 50, 60, 2.0, 0),   # day 0: the second session at 0 is not its first
                     (0, 14, 30, 4.0, 1), (1, 12, 20, 6.0, 1),
                     (1, 3, 9, 5.0, 2),                          # before the step: never expected
                     (2, 11, 99, 3.0, 3)], ("d0", "d1", "d2", "d3"))


def test_expected_pevs_are_the_days_first_sessions_at_free_stations():
    busy = np.array([5, 5, 13])                                  # station 2's PEV leaves at step 13
    got = FOUR_DAYS.expected(5, 50, busy)
    # station 0: days 0 and 1 (arrivals 10 and 14, stays 30 and 16), 2 of 4 days; station 1: day 1 only;
    # station 2: day 3 arrives at 11, while the station is still busy
    assert got.station.tolist() == [0, 1]
    assert got.arrival.tolist() == [12 - 5, 12 - 5] and got.departure.tolist() == [7 + 23, 7 + 8]
    assert got.energy_kwh.tolist() == pytest.approx([6.0 * 2 / 4, 6.0 / 4])
    later = FOUR_DAYS.expected(5, 50, np.array([5, 5, 5]))
    assert later.station.tolist() == [0, 1, 2] and later.energy_kwh[2] == pytest.approx(3.0 / 4)
    assert FOUR_DAYS.expected(5, 4, busy).station.size == 0       # nothing in steps 6 .. 9
    assert FOUR_DAYS.expected(10, 50, np.array([10, 10, 10])).station.tolist() == [0, 1, 2]   # day 0 at 50


def test_nowcast_weighs_the_sessions_seen_against_the_historys_mean():
    # by step 12 every day had one session (at steps 10, 12, 3 and 11): a mean of 1; by step 60 a mean of 1.5
    assert FOUR_DAYS.nowcast(12, 0) == pytest.approx(3 / 4)
    assert FOUR_DAYS.nowcast(12, 2) == pytest.approx(5 / 4)
    assert FOUR_DAYS.nowcast(60, 0) == pytest.approx(3 / 4.5)
    assert FOUR_DAYS.nowcast(12, 10) == 2.0 and FOUR_DAYS.nowcast(0, 0) == 1.0
    crowded = history([(0, 1, 5, 1.0, 0)] * 30, ("d0",))
    assert crowded.nowcast(2, 0) == 0.5


def test_mpc_history_counts_the_sessions_that_began_from_its_observations(caltech_day):
    from pev_env.core import ChargingCore

    config, scenario = caltech_day
    core = ChargingCore(config, scenario)
    policy = make_policy("mpc-history", settings=MPCSettings(history="acn-caltech", max_horizon=24))
    policy.reset(config, scenario, 0)
    obs = core.reset()
    for step in range(160):
        obs = core.step(policy.act_array(obs)).observations
        assert policy._seen == np.count_nonzero(np.asarray(scenario.arrival) <= step)
    assert policy._seen > 20


def test_leaving_out_a_day_drops_its_sessions_and_counts():
    without = FOUR_DAYS.leaving_out("d1")
    assert without.keys == ("d0", "d2", "d3") and without.n_days == 3
    assert without.day.tolist() == [0, 0, 1, 2] and without.arrival.tolist() == [10, 50, 3, 11]
    got = without.expected(5, 50, np.array([5, 5, 5]))
    assert got.station.tolist() == [0, 2] and got.energy_kwh.tolist() == pytest.approx([8.0 / 3, 3.0 / 3])
    assert FOUR_DAYS.leaving_out("elsewhere") is FOUR_DAYS


def test_read_maps_the_stations_of_the_episode_and_checks_the_site():
    config, day = make_scenario("acn-caltech", 0)
    read = ArrivalHistory.read("acn-caltech", day.station_ids, config)
    assert read.n_days == 5 and read.keys[0] == day_key(day)
    first = read.day == 0
    assert sorted(read.arrival[first].tolist()) == sorted(np.asarray(day.arrival).tolist())
    half = day.station_ids[: len(day.station_ids) // 2]
    some = ArrivalHistory.read("acn-caltech", half, config)
    assert 0 < some.station.size < read.station.size and some.station.max() < len(half)
    with pytest.raises(ValueError, match="mpc.policy.history = 'acn-caltech': no session .* same site"):
        ArrivalHistory.read("acn-caltech", ("elsewhere-1", "elsewhere-2"), config)


def test_read_refuses_a_history_on_other_steps(monkeypatch):
    """A family that keeps its own grid (a file's sampling time) against an episode on another."""
    import pev_mpc.history

    config, day = make_scenario("acn-caltech", 0)
    coarse = dataclasses.replace(config, sampling_time=15.0)
    monkeypatch.setattr(pev_mpc.history, "make_scenario", lambda spec, seed, base: (coarse, day))
    with pytest.raises(ValueError, match="history = 'acn-caltech': its steps are 15 min, the episode's 5 min"):
        ArrivalHistory.read("acn-caltech", day.station_ids, config)


def test_exchange_ratio_of_the_networks():
    assert area_network(4, 10.0).exchange_ratio == 1.0
    assert tree_network("tree:3,4", 60, 100.0).exchange_ratio == 1.0
    caltech = site_network(EnvConfig(network="caltech", n_stations=54, transformer_kw=40.0))
    assert caltech.exchange_ratio == pytest.approx(4.0)          # 2.40 / (1.20 cos 60 degrees), the primary rows
    assert site_network(EnvConfig(network="jpl")).exchange_ratio == pytest.approx(2 / math.cos(math.pi / 6))
    phasors = np.exp(1j * np.radians([0.0, 170.0]))
    assert Network("two", ("row",), phasors[None, :], np.array([10.0]), ("A",)).exchange_ratio == pytest.approx(
        1 / math.cos(math.radians(85.0)))
    half_turn = np.exp(1j * np.radians([0.0, 180.0]))
    assert Network("half", ("row",), half_turn[None, :], np.array([10.0]), ("A",)).exchange_ratio == math.inf


@pytest.fixture(scope="module")
def caltech_day():
    return make_scenario("acn-caltech-network", 1, EnvConfig(transformer_kw=40.0))


@pytest.mark.parametrize("name", ["mpc-foresight", "mpc-history"])
def test_whole_day_policies_divide_the_bonus_by_the_exchange_ratio(caltech_day, name):
    config, scenario = caltech_day
    settings = MPCSettings(history="acn-caltech")
    policy = make_policy(name, settings=settings)
    policy.reset(config, scenario, 0)
    assert policy.settings.early_weight == pytest.approx(0.5 / 4) and policy.settings.max_horizon == 288
    given = make_policy(name, settings=settings.replace(early_weight=0.3))
    given.reset(config, scenario, 0)
    assert given.settings.early_weight == 0.3
    area_config, area_day = make_scenario("acn-caltech", 1)
    policy.reset(area_config, area_day, 0)
    assert policy.settings.early_weight == 0.5


def test_the_forecast_leaves_out_the_episodes_day_and_reads_nothing_else_of_its_sessions(caltech_day):
    config, scenario = caltech_day

    def first(n: int, start: int = 0):
        return dataclasses.replace(scenario, **{name: getattr(scenario, name)[start:start + n] for name in
                                                ("arrival", "departure", "soc_init", "soc_target", "capacity",
                                                 "station")})

    same_day_by_another_name = make_scenario("acn:pev_env/data/caltech_2019-05-01_2019-08-31.csv.gz:2019-05-07", 0,
                                             config)
    forecasts, days = [], []
    for day_config, day in ((config, scenario), same_day_by_another_name, (config, first(3)), (config, first(5, 10))):
        policy = make_policy("mpc-history", settings=MPCSettings(history="acn-caltech"))
        policy.reset(day_config, day, 0)
        days.append(policy._history.n_days)
        forecasts.append(policy.coming(90, np.full(day.n_stations, 90)))
    assert days == [4, 4, 5, 5]                  # 2019-05-07 is a day of the shipped week
    assert all(np.array_equal(a, b) for a, b in zip(forecasts[2], forecasts[3])) and forecasts[2].station.size > 0


def test_mpc_history_holds_the_network_on_a_day(caltech_day):
    got = run(make_policy("mpc-history", settings=MPCSettings(history="acn-caltech", max_horizon=96)), *caltech_day)
    offline = run(make_policy("offline-optimal"), *caltech_day)
    assert got["network_violation_steps"] == 0 and got["local_violation_steps"] == 0
    assert got["unmet_energy_kwh"] >= offline["unmet_energy_kwh"] - 1e-6


def test_a_bad_history_is_refused():
    with pytest.raises(ValueError, match="MPCSettings.policy.history = '': must be a scenario name"):
        MPCSettings(history="")
    with pytest.raises(ValueError, match="mpc.policy.history"):
        make_policy("mpc-history", settings=MPCSettings(history="no-such-site"))
