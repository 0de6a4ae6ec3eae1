"""PettingZoo and Gymnasium APIs: conformance, reproducibility, episode end, errors."""
from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test

import pev_env
from pev_env import (GYM_ID, METRIC_COLUMNS, N_OBS, OBS_FIELDS, EnvConfig, PEVChargeEnv, PEVChargeGymEnv,
                     make_scenario, parallel_env)
from pev_env.observation import fields_table
from pev_env.registration import register_envs


def rollout(env: PEVChargeEnv, seed: int, kw: float = 7.0) -> list:
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    while env.agents:
        out = env.step({a: np.array([kw], dtype=np.float32) for a in env.agents})
        trace.append(out)
    return trace


def assert_same(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        np.testing.assert_array_equal(a, b)


def test_parallel_api_test():
    parallel_api_test(parallel_env(), num_cycles=60)
    parallel_api_test(parallel_env(scenario_name="seed-20"), num_cycles=20)


def test_gymnasium_check_env_and_registration():
    register_envs()  # a second registration is a no-op
    env = gymnasium.make(GYM_ID)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # advice on normalised/infinite Box bounds only
        check_env(env.unwrapped)
    assert env.observation_space.shape == (6 * N_OBS,) and env.action_space.shape == (6,)


def test_exports():
    for name in ("EnvConfig", "Scenario", "PEVChargeEnv", "PEVChargeGymEnv", "ChargingCore", "OBS_FIELDS",
                 "N_OBS", "METRIC_COLUMNS", "make_scenario", "parallel_env"):
        assert hasattr(pev_env, name), name


def test_reset_seed_reproducible_and_matches_make_scenario():
    env = PEVChargeEnv()
    assert_same(rollout(env, 3), rollout(env, 3))
    assert env.core.scenario == make_scenario("seed", 3)[1]
    metrics = env.core.episode_metrics()
    assert tuple(metrics) == METRIC_COLUMNS
    rollout(env, 4)
    assert env.core.episode_metrics() != metrics
    # unseeded resets continue a generator seeded by the last seed
    env.reset(seed=5)
    env.reset()
    after_5 = env.core.scenario
    env.reset(seed=5)
    env.reset()
    assert env.core.scenario == after_5


def test_episode_end_and_infos():
    """The per-agent infos carry every quantity of the Gymnasium env's info (station_rewards as each agent's own
    station_reward), and the episode ends truncated, not terminated."""
    gym_env = PEVChargeGymEnv()
    gym_env.reset(seed=0)
    gym_keys = {k.replace("station_rewards", "station_reward") for k in gym_env.step(gym_env.action_space.sample())[4]}
    env = PEVChargeEnv()
    env.reset(seed=0)
    n_steps = env.config.n_steps
    for t in range(n_steps):
        obs, rewards, terms, truncs, infos = env.step({a: np.array([30.0]) for a in env.agents})
        assert not any(terms.values())
        assert all(truncs.values()) == (t == n_steps - 1)
        info = infos["cs_0"]
        assert info["t"] == t and info["requested_kw"] == 30.0 and info["applied_kw"] in (0.0, 22.0)
        assert info["area_power_kw"] == pytest.approx(sum(i["applied_kw"] for i in infos.values()))
        assert info["area_overload_kw"] == pytest.approx(max(info["area_power_kw"] - 31.5, 0.0))
        assert info["area_violation"] == (info["area_overload_kw"] > 0) and info["network_load"] == (
            pytest.approx(info["area_power_kw"]),)                     # the area network: one constraint, P_ref
        assert set(info) == gym_keys
        assert np.mean([i["station_reward"] for i in infos.values()]) == pytest.approx(rewards["cs_0"])
    assert env.agents == [] and env.core.done
    assert env.core.episode_metrics()["local_violation_steps"] == 6 * n_steps  # 30 kW always out of bounds
    with pytest.raises(RuntimeError, match="call reset"):
        env.step({})


def test_fixed_scenario_replays(tiny_config, tiny_scenario):
    env = PEVChargeEnv(config=tiny_config, scenario=tiny_scenario)
    assert env.possible_agents == ["cs_0", "cs_1"]
    assert_same(rollout(env, 1), rollout(env, 2))
    assert env.core.scenario is tiny_scenario
    default = PEVChargeEnv(scenario=tiny_scenario)  # config derived from the scenario
    assert default.config.n_stations == 2 and default.config.n_steps == 6


@pytest.mark.parametrize("actions, match", [
    ({"cs_0": [np.nan], "cs_1": [0.0]}, r"requested_kw\[0\] = nan: must be finite"),
    ({"cs_0": [1.0]}, r"missing agents \['cs_1'\]"),
    ({"cs_0": [1.0], "cs_1": [1.0], "cs_9": [1.0]}, r"unknown agents \['cs_9'\]"),
    ({"cs_0": [1.0, 2.0], "cs_1": [1.0, 2.0]}, r"each action must have shape \(1,\)"),
    ({"cs_0": [1.0, 2.0], "cs_1": [1.0]}, "must be a number or an array of shape"),
])
def test_bad_parallel_actions(tiny_config, tiny_scenario, actions, match):
    env = PEVChargeEnv(config=tiny_config, scenario=tiny_scenario)
    env.reset()
    with pytest.raises(ValueError, match=match):
        env.step(actions)


def test_gym_env_reward_is_station_sum_and_truncates(tiny_config, tiny_scenario):
    env = PEVChargeGymEnv(config=tiny_config, scenario=tiny_scenario)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2 * N_OBS,) and obs.dtype == np.float32
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(np.array([10.0, 10.0], dtype=np.float32))
        assert reward == pytest.approx(info["station_rewards"].sum()) and not terminated
        done = truncated
    assert env.core.t == 6
    with pytest.raises(ValueError, match="must be finite"):
        env.reset()
        env.step(np.array([np.inf, 0.0]))


def test_constructor_errors(tiny_scenario):
    with pytest.raises(ValueError, match="either a scenario or a scenario_name"):
        PEVChargeEnv(scenario=tiny_scenario, scenario_name="seed")
    with pytest.raises(ValueError, match="render_mode = 'window'"):
        PEVChargeEnv(render_mode="window")
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        PEVChargeGymEnv(scenario_name="nope")


def test_synthetic_named_scenario_keeps_spaces():
    env = PEVChargeEnv(scenario_name="synthetic-8", config=EnvConfig(total_time=60.0))
    for seed in (0, 1):
        env.reset(seed=seed)
        assert env.core.n_stations == 8 and len(env.agents) == 8


def test_render_rgb_array(tiny_config, tiny_scenario):
    env = PEVChargeEnv(config=tiny_config, scenario=tiny_scenario, render_mode="rgb_array")
    env.reset()
    env.step({a: np.array([5.0]) for a in env.agents})
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    assert PEVChargeEnv(config=tiny_config, scenario=tiny_scenario).render() is None


def test_docstring_table_matches_obs_fields():
    assert fields_table() in PEVChargeEnv.__doc__.replace("\n    ", "\n")
    assert [f.name for f in OBS_FIELDS][:8] == ["p_min", "p_max", "P_max", "P_min", "plugged", "soc_remain", "P",
                                               "action_last"]
