"""ChargingCore, plug schedule, observation and reward on hand-computed examples."""
from __future__ import annotations

import numpy as np
import pytest

from pev_env.config import EnvConfig
from pev_env.core import ChargingCore
from pev_env.metrics import METRIC_COLUMNS
from pev_env.observation import N_OBS, OBS_FIELDS, OBS_INDEX
from pev_env.scenario import Scenario
from pev_env.schedule import plug_schedule


def run(core: ChargingCore, kw: float) -> None:
    while not core.done:
        core.step(np.full(core.n_stations, kw))


def test_schedule_first_free_and_waiting(tiny_scenario):
    s = plug_schedule(tiny_scenario)
    np.testing.assert_array_equal(s.station_pev, [[0, -1], [0, 1], [0, 1], [0, 1], [2, 1], [-1, 1]])
    np.testing.assert_array_equal(s.station, [0, 1, 0, -1])
    np.testing.assert_array_equal(s.plug_step, [0, 1, 4, -1])
    np.testing.assert_array_equal(s.unplug_step, [4, 6, 5, -1])
    np.testing.assert_array_equal(s.waited_steps, [0, 0, 2, 1])


def test_schedule_preferred_station_waits_for_its_station():
    sc = Scenario(arrival=[0, 0, 1, 1], departure=[2, 5, 4, 4], soc_init=[0.0] * 4, soc_target=[1.0] * 4,
                  capacity=[2.0] * 4, station=[1, -1, 1, -1], n_stations=3, n_steps=5)
    s = plug_schedule(sc)
    # PEV 0 takes station 1, PEV 1 the first free (0); PEV 2 waits for station 1 while station 2 is free
    np.testing.assert_array_equal(s.station_pev[:, 1], [0, 0, 2, 2, -1])
    np.testing.assert_array_equal(s.station, [1, 0, 1, 2])
    np.testing.assert_array_equal(s.waited_steps, [0, 0, 1, 0])


def test_dynamics_by_hand(tiny_config, tiny_scenario):
    core = ChargingCore(tiny_config, tiny_scenario)
    run(core, 10.0)
    h = core.history
    np.testing.assert_allclose(h.applied_kw, [[10, 0], [10, 10], [10, 10], [10, 10], [10, 10], [0, 10]])
    np.testing.assert_allclose(h.area_power_kw, [10, 20, 20, 20, 20, 10])
    np.testing.assert_allclose(h.area_overload_kw, [0, 8, 8, 8, 8, 0])
    np.testing.assert_array_equal(h.local_violation.nonzero(), ([0, 5], [1, 0]))  # 10 kW asked of free stations
    np.testing.assert_allclose(core.soc, [23.0, 3.75, 5.75, 0.0])
    np.testing.assert_allclose(h["soc"][:, 0], [20, 20.75, 21.5, 22.25, 23, 23, 23])
    m = core.episode_metrics()
    assert tuple(m) == METRIC_COLUMNS
    expected = {"energy_requested_kwh": 38.0, "energy_delivered_kwh": 7.5, "unmet_energy_kwh": 30.5,
                "unmet_energy_pct": 100 * 30.5 / 38, "pevs_total": 4, "pevs_fully_served": 0,
                "pevs_never_plugged": 1, "area_violation_steps": 4, "area_overload_max_kw": 8.0,
                "area_overload_kwh": 32 / 12, "local_violation_steps": 2, "peak_power_kw": 20.0}
    for key, value in expected.items():
        assert m[key] == pytest.approx(value), key


def test_capacity_cap_and_clipping(tiny_config):
    sc = Scenario(arrival=[0], departure=[3], soc_init=[23.5], soc_target=[24.0], capacity=[24.0], station=[1],
                  n_stations=2, n_steps=6)
    core = ChargingCore(tiny_config, sc)
    r = core.step([0.0, 50.0])
    assert r.applied_kw.tolist() == [0.0, 10.0] and r.local_violation.tolist() == [False, True]
    assert core.soc[0] == 24.0
    r = core.step([0.0, -3.0])
    assert r.applied_kw.tolist() == [0.0, 0.0] and r.local_violation.tolist() == [False, True]
    assert core.episode_metrics()["pevs_fully_served"] == 1


def test_float32_bound_is_not_a_violation():
    cfg = EnvConfig(n_stations=1, p_max=11.1, total_time=5.0)
    sc = Scenario(arrival=[0], departure=[1], soc_init=[0.0], soc_target=[24.0], capacity=[24.0], station=[-1],
                  n_stations=1, n_steps=1)
    r = ChargingCore(cfg, sc).step(np.array([11.1], dtype=np.float32))
    assert not r.local_violation[0] and r.applied_kw[0] == 11.1


@pytest.mark.parametrize("shared", [False, True])
def test_rewards(tiny_config, tiny_scenario, shared):
    core = ChargingCore(tiny_config.with_overrides({"shared_reward": shared}), tiny_scenario)
    r0 = core.step([10.0, 10.0])  # station 1 free: local violation only
    r1 = core.step([10.0, 10.0])  # both plugged, area 20 > 12
    per_station_0 = [-(24 - 20.75) / 24, -2.0]
    per_station_1 = [-(24 - 21.5) / 24 - 2, -(10 - 0.75) / 24 - 2]
    for result, per_station in ((r0, per_station_0), (r1, per_station_1)):
        np.testing.assert_allclose(result.info["station_rewards"], per_station)
        expected = np.full(2, np.mean(per_station)) if shared else per_station
        np.testing.assert_allclose(result.rewards, expected)
    assert core.episode_metrics()["episode_reward"] == pytest.approx(np.mean(per_station_0) + np.mean(per_station_1))


def test_observations(tiny_config, tiny_scenario):
    core = ChargingCore(tiny_config, tiny_scenario)
    obs = core.reset()
    assert obs.shape == (2, N_OBS) and obs.dtype == np.float32 and len(OBS_FIELDS) == N_OBS
    i = OBS_INDEX
    assert obs[0, i["plugged"]] == 1 and obs[1, i["plugged"]] == 0
    assert obs[0, i["soc_remain"]] == 4.0 and obs[0, i["steps_to_departure"]] == 4
    assert obs[1, i["soc_remain"]] == 0 and obs[1, i["steps_to_departure"]] == 0
    np.testing.assert_array_equal(obs[:, [i["p_min"], i["p_max"], i["P_max"], i["P_min"], i["P_ref"]]],
                                  [[0, 10, 200, 0, 12]] * 2)
    obs = core.step([4.0, 0.0]).observations
    assert obs[:, i["P"]].tolist() == [4.0, 4.0] and obs[:, i["action_last"]].tolist() == [4.0, 0.0]
    assert obs[1, i["plugged"]] == 1 and obs[1, i["steps_to_departure"]] == 5
    assert obs[0, i["soc_remain"]] == pytest.approx(4.0 - 0.3)


@pytest.mark.parametrize("bad, match", [
    ([np.nan, 0.0], r"requested_kw\[0\] = nan: must be finite"),
    ([0.0, np.inf], r"requested_kw\[1\] = inf: must be finite"),
    ([1.0, 2.0, 3.0], r"shape \(3,\): expected \(2,\)"),
    ([[1.0, 2.0]], r"shape \(1, 2\)"),
    (5.0, r"shape \(\): expected \(2,\)"),
    (["a", "b"], "must be numeric"),
])
def test_bad_actions_raise(tiny_config, tiny_scenario, bad, match):
    core = ChargingCore(tiny_config, tiny_scenario)
    with pytest.raises(ValueError, match=match):
        core.step(bad)
    assert core.t == 0  # nothing applied


def test_step_after_done_and_reset(tiny_config, tiny_scenario):
    core = ChargingCore(tiny_config, tiny_scenario)
    run(core, 3.0)
    first = core.episode_metrics()
    assert core.done and core.t == 6 and (core.station_pev == -1).all()
    with pytest.raises(RuntimeError, match="call reset"):
        core.step([0.0, 0.0])
    core.reset()
    assert core.t == 0 and core.history.applied_kw.shape == (0, 2)
    run(core, 3.0)
    assert core.episode_metrics() == first


def test_mismatched_config_rejected(tiny_scenario):
    with pytest.raises(ValueError, match="scenario.n_stations = 2 must equal config.n_stations = 6"):
        ChargingCore(EnvConfig(), tiny_scenario)


def test_pev_table(tiny_config, tiny_scenario):
    core = ChargingCore(tiny_config, tiny_scenario)
    run(core, 10.0)
    table = core.pev_table()
    for column in ("pev", "arrival", "departure", "station", "plug_step", "unplug_step", "soc_init_kwh",
                   "target_kwh", "delivered_kwh", "unmet_kwh", "served"):
        assert column in table.columns
    np.testing.assert_allclose(table["delivered_kwh"], [3.0, 3.75, 0.75, 0.0])
    np.testing.assert_allclose(table["unmet_kwh"], [1.0, 6.25, 18.25, 5.0])
    assert table["unmet_kwh"].sum() == pytest.approx(core.episode_metrics()["unmet_energy_kwh"])


def test_area_limit_boundary(tiny_config, tiny_scenario):
    core = ChargingCore(tiny_config, tiny_scenario)  # P_ref = 12 kW
    core.step([6.0, 0.0])
    at_limit = core.step([6.0, 6.0])
    above = core.step([6.0, 6.000001])
    assert at_limit.area_overload_kw == 0.0 and not at_limit.info["area_violation"]
    assert above.area_overload_kw == pytest.approx(1e-6) and above.info["area_violation"]
    assert core.episode_metrics()["area_violation_steps"] == 1
