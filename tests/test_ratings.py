"""Per-station ratings: config, ACN rating rule, plant, observations, heuristics, offline optimum, MPC; consistency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pev_env import ChargingCore, EnvConfig, PEVChargeEnv, PEVChargeGymEnv, Scenario, acn
from pev_env.observation import OBS_INDEX
from pev_env.plant import check_consistent, plant_config
from pev_mpc.policies import make_policy

RATINGS = (6.6, 50.0, 6.6)


@pytest.fixture
def fast() -> tuple[EnvConfig, Scenario]:
    """Three stations, one a 50 kW fast charger; every PEV needs 30 kWh within an hour; P_ref binds."""
    scenario = Scenario(arrival=[0, 0, 0], departure=[12, 12, 12], soc_init=[0.0, 0.0, 0.0],
                        soc_target=[30.0, 30.0, 30.0], capacity=[60.0, 60.0, 60.0], station=[0, 1, 2],
                        n_stations=3, n_steps=12, p_min=0.0, p_max=RATINGS, sampling_time=5.0)
    return plant_config(scenario, EnvConfig(P_ref=40.0)), scenario


# ------------------------------------------------------------------------------ config
def test_config_accepts_scalars_and_per_station_values():
    cfg = EnvConfig(n_stations=3, p_max=RATINGS)
    assert cfg.p_max == RATINGS and cfg.station_p_max.tolist() == list(RATINGS)
    assert EnvConfig(n_stations=2, p_max=[7.2, 7.2]).p_max == 7.2  # equal values collapse to the scalar
    assert cfg.with_overrides(["p_max=11,22,33"]).p_max == (11.0, 22.0, 33.0)
    assert cfg.with_overrides({"p_max": "[1, 2, 3]", "p_min": "0.5"}).station_p_min.tolist() == [0.5] * 3
    assert cfg.as_dict()["p_max"] == list(RATINGS)
    for bad, pattern in [((1.0, 2.0), r"must be a number or 3 values"), ((1.0, -2.0, 3.0), "must be > 0"),
                         ((1.0, float("nan"), 3.0), "finite")]:
        with pytest.raises(ValueError, match=rf"EnvConfig\.p_max = .*{pattern}"):
            EnvConfig(n_stations=3, p_max=bad)
    with pytest.raises(ValueError, match=r"EnvConfig\.p_max = .*must be > 0 and >= p_min"):
        EnvConfig(n_stations=3, p_min=(1.0, 8.0, 1.0), p_max=7.0)


def test_experiments_config_coerces_per_station_values():
    from experiments.cli.loader import load_config
    from experiments.commands.config import CompareConfig

    cfg = load_config(CompareConfig, None, {"env.p_max": "6.6,50", "env.n_stations": "2"})
    assert cfg.env.p_max == (6.6, 50.0)
    assert load_config(CompareConfig, None, {"env.p_max": "11"}).env.p_max == 11.0


# ------------------------------------------------------------------------ rating rule
def _sessions(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    """(station_id, hours, delivered kWh) -> an ACN-like frame."""
    start = pd.Timestamp("2019-05-06 08:00", tz=acn.TIMEZONE)
    return pd.DataFrame({"station_id": [r[0] for r in rows], "arrival": [start] * len(rows),
                         "departure": [start + pd.Timedelta(hours=r[1]) for r in rows],
                         "delivered_energy_kwh": [r[2] for r in rows]})


def test_rating_rule_smallest_standard_rating_covering_the_sessions():
    frame = _sessions([("L2", 2.0, 13.9), ("L2", 5.0, 10.0), ("sparse", 3.0, 1.0), ("fast-L2", 1.0, 8.0),
                       ("dc", 1.0, 41.0), ("dc", 2.0, 8.0), ("broken", 0.0, 5.0)])
    ratings = acn.infer_ratings(frame, ["L2", "sparse", "fast-L2", "dc", "broken", "idle"])
    # 6.95 kW is within 6 % of 6.6; averages are lower bounds, so sparse / idle stations get the smallest rating
    np.testing.assert_array_equal(ratings, [6.6, 6.6, 7.7, 50.0, 6.6, 6.6])
    assert set(acn.STANDARD_RATINGS_KW) >= {6.6, 7.2, 11.5, 19.2, 50.0}
    override = acn.station_ratings(frame, ["L2", "dc"], {"L2": 11.5})
    np.testing.assert_array_equal(override, [11.5, 50.0])
    np.testing.assert_array_equal(acn.station_ratings(frame, ["L2", "dc"], 7.2), [7.2, 7.2])
    with pytest.raises(ValueError, match=r"station_id 'nope' not in stations"):
        acn.station_ratings(frame, ["L2"], {"nope": 3.0})


def test_a_rating_that_cannot_be_inferred():
    frame = _sessions([("ok", 2.0, 10.0), ("odd", 0.1, 80.0)])  # 800 kW on average: no standard EVSE
    with pytest.raises(ValueError, match=r"ACN station 'odd': rating cannot be inferred: a session averages 800\.0 kW"
                                         r".*set the ratings explicitly"):
        acn.infer_ratings(frame)


def test_shipped_caltech_stations_are_level_2():
    assert set(acn.infer_ratings(acn.load_acn_sessions(list(acn.MONTH_FILES)))) == {6.6}


# -------------------------------------------------------------------------------- plant
def test_plant_clips_and_observes_per_station(fast):
    config, scenario = fast
    core = ChargingCore(config, scenario)
    obs = core.reset()
    np.testing.assert_allclose(obs[:, OBS_INDEX["p_max"]], RATINGS)
    result = core.step(np.array([10.0, 60.0, 3.0]))
    np.testing.assert_allclose(result.applied_kw, [6.6, 50.0, 3.0])
    assert result.local_violation.tolist() == [True, True, False]
    assert not core.step(np.array([6.6, 50.0, 6.6])).local_violation.any()


def test_environment_spaces_follow_the_ratings(fast):
    config, scenario = fast
    env = PEVChargeEnv(scenario=scenario)
    assert env.config == config.with_overrides({"P_ref": env.config.P_ref, "P_max": env.config.P_max})
    assert [env.action_space(a).high[0] for a in env.possible_agents] == pytest.approx(list(RATINGS))
    assert env.observation_space("cs_1").high[OBS_INDEX["action_last"]] == pytest.approx(50.0)
    gym_env = PEVChargeGymEnv(scenario=scenario)
    np.testing.assert_allclose(gym_env.action_space.high, RATINGS)


@pytest.mark.parametrize("name", ["uncontrolled", "edf", "llf", "equal-share", "offline-optimal",
                                  "mpc-centralised", "mpc-decentralised"])
def test_controllers_honour_per_station_ratings(fast, name):
    config, scenario = fast
    policy = make_policy(name)
    core = ChargingCore(config, scenario)
    policy.reset(config, scenario, 0)
    obs = core.reset()
    while not core.done:
        obs = core.step(policy.act_array(obs)).observations
    history, metrics = core.history, core.episode_metrics()
    assert metrics["local_violation_steps"] == 0
    assert (history.applied_kw <= np.asarray(RATINGS) + 1e-6).all()
    if name != "uncontrolled":
        assert metrics["area_violation_steps"] == 0
    delivered = core.pev_table()["delivered_kwh"].to_numpy()
    assert delivered[1] > delivered[0] + 1.0  # the fast charger actually charges faster
    assert history.applied_kw[:, 1].max() > 6.6 + 1.0


def test_offline_optimum_is_a_lower_bound_with_ratings(fast):
    config, scenario = fast
    from pev_mpc.policies.offline import offline_plan
    from pev_env.schedule import plug_schedule

    plan, unmet = offline_plan(config, scenario, plug_schedule(scenario).station_pev)
    assert (plan <= np.asarray(RATINGS) + 1e-9).all() and (plan.sum(axis=1) <= config.P_ref + 1e-6).all()
    stored = plan.sum(axis=0) * config.eta * config.dt_h
    assert unmet == pytest.approx(90.0 - stored.sum(), abs=1e-6)


# -------------------------------------------------------------------------- consistency
def test_plant_config_derives_what_the_scenario_determines(fast):
    _, scenario = fast
    config = plant_config(scenario)
    assert (config.n_stations, config.n_pevs, config.n_steps, config.p_max) == (3, 3, 12, RATINGS)
    assert config.soc_max == config.soc_ref == 60.0 and 0 < config.P_ref < sum(RATINGS)
    acn_scenario = Scenario.from_acn(day="2019-05-07")
    env = PEVChargeEnv(scenario=acn_scenario)  # nothing from the seed's plant
    assert (env.config.n_stations, env.config.n_pevs, env.config.p_max) == (42, 48, 6.6)
    assert env.config.total_time == acn_scenario.n_steps * 5.0 and env.config.P_ref != EnvConfig().P_ref


@pytest.mark.parametrize(("changes", "pattern"), [
    ({"n_stations": 4, "p_max": 6.6}, r"scenario\.n_stations = 3 must equal config\.n_stations = 4"),
    ({"total_time": 120.0}, r"scenario\.n_steps = 12 must equal config\.n_steps = 24"),
    ({"sampling_time": 10.0, "total_time": 120.0}, r"scenario\.sampling_time = 5\.0 min must equal config\.sampling_time = 10\.0"),
    ({"p_max": 6.6}, r"scenario\.p_max\[1\] = 50\.0 kW must equal config\.p_max of station 1 = 6\.6 kW"),
    ({"p_min": 1.0}, r"scenario\.p_min\[0\] = 0\.0 kW must equal config\.p_min of station 0 = 1\.0 kW"),
])
def test_mismatched_plant_raises_naming_the_field(fast, changes, pattern):
    config, scenario = fast
    wrong = config.with_overrides(changes)
    for build in (lambda: ChargingCore(wrong, scenario), lambda: PEVChargeEnv(config=wrong, scenario=scenario),
                  lambda: check_consistent(wrong, scenario)):
        with pytest.raises(ValueError, match=pattern):
            build()


def test_scenario_bounds_are_validated():
    kwargs = dict(arrival=[0], departure=[2], soc_init=[0.0], soc_target=[1.0], capacity=[5.0], station=[0],
                  n_stations=2, n_steps=4)
    assert Scenario(**kwargs, p_max=7.2).p_max.tolist() == [7.2, 7.2]
    with pytest.raises(ValueError, match=r"Scenario\.p_max = .shape \(3,\).: must be a scalar or one value per station \(2\)"):
        Scenario(**kwargs, p_max=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"Scenario\.p_max\[1\] = 0\.5: must be > 0 kW and >= p_min\[1\] = 1\.0"):
        Scenario(**kwargs, p_min=1.0, p_max=[2.0, 0.5])
    with pytest.raises(ValueError, match=r"Scenario\.sampling_time = 0: must be None or > 0 minutes"):
        Scenario(**kwargs, sampling_time=0)
