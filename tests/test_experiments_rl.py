"""Learning functions (pev_env.learning): station features, action mapping, training reward, the station VecEnv and the saved policy."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.commands.config import TrainConfig
from experiments.controllers.rl_model import LearnedPolicy
from experiments.learning.rl import StationVecEnv, _acn_days, train, training_info
from pev_env.learning import (N_FEATURES, RewardWeights, action_to_kw, station_features,
                                    station_rewards)
from pev_env.core import ChargingCore
from pev_env.observation import N_OBS, OBS_INDEX
from pev_env.scenarios import make_scenario
from pev_mpc.policies import POLICIES
from pev_mpc.policies.base import Observed

finite = st.floats(0.0, 1e3, allow_nan=False)


def _obs(p_max: float, plugged: list[bool], remain: list[float], to_go: list[float], area: float, last: list[float],
         p_ref: float) -> np.ndarray:
    obs = np.zeros((len(plugged), N_OBS), dtype=np.float32)
    obs[:, OBS_INDEX["p_max"]] = p_max
    obs[:, OBS_INDEX["plugged"]] = plugged
    obs[:, OBS_INDEX["soc_remain"]] = np.where(plugged, remain, 0.0)
    obs[:, OBS_INDEX["steps_to_departure"]] = np.where(plugged, to_go, 0.0)
    obs[:, OBS_INDEX["P"]] = area
    obs[:, OBS_INDEX["action_last"]] = np.where(plugged, last, 0.0)
    obs[:, OBS_INDEX["P_ref"]] = p_ref
    return obs


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.booleans(), finite, st.integers(0, 300), finite), min_size=1, max_size=8),
       finite, st.floats(0.1, 500.0), st.floats(1.0, 50.0), st.floats(0.1, 10.0))
def test_features_are_finite_and_scale_free(rows, area, p_ref, p_max, scale) -> None:
    """Scaling every power (and energy) by the same factor leaves the features unchanged."""
    plugged, remain, to_go, last = (list(c) for c in zip(*rows))
    base = station_features(_obs(p_max, plugged, remain, to_go, area, last, p_ref), 0.9, 1 / 12)
    scaled = station_features(_obs(p_max * scale, plugged, [r * scale for r in remain], to_go, area * scale,
                                   [x * scale for x in last], p_ref * scale), 0.9, 1 / 12)
    assert base.shape == (len(rows), N_FEATURES) and base.dtype == np.float32 and np.isfinite(base).all()
    np.testing.assert_allclose(base, scaled, rtol=1e-3, atol=1e-3)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.booleans(), finite, st.floats(-3.0, 3.0)), min_size=1, max_size=8), st.floats(0.0, 5.0))
def test_action_stays_within_station_bounds_and_need(rows, p_min) -> None:
    plugged, remain, action = (np.array(c) for c in zip(*rows))
    config, _ = make_scenario("seed", 0)
    config = config.with_overrides({"n_stations": len(rows), "p_min": p_min})
    obs = _obs(config.p_max, plugged.tolist(), remain.tolist(), [10] * len(rows), 0.0, [0.0] * len(rows),
               config.P_ref)
    obs[:, OBS_INDEX["p_min"]] = p_min
    ob = Observed(obs, config.P_ref)
    kw = action_to_kw(action, obs, config)
    need = ob.need_kw(config.eta, config.dt_h)
    assert (kw[~ob.plugged] == 0).all()
    floor = ob.p_min  # the observed (float32) p_min, which the plant accepts as the bound
    assert (kw[ob.plugged] >= floor[ob.plugged]).all()
    assert (kw[ob.plugged] <= np.maximum(need, floor)[ob.plugged]).all()
    full = action_to_kw(np.ones(len(rows)), obs, config)
    np.testing.assert_allclose(full, np.where(ob.plugged, np.maximum(need, floor), 0.0))


def _episode_rewards(name: str, seed: int, policy: str) -> tuple[float, dict]:
    """Sum of training rewards x full-step energy over an episode run by a pev_mpc policy, and the metrics."""
    config, scenario = make_scenario(name, seed)
    core, ctrl = ChargingCore(config, scenario), POLICIES[policy]()
    obs = core.reset()
    ctrl.reset(config, scenario, seed)
    total = 0.0
    while not core.done:
        result = core.step(ctrl.act_array(obs))
        reward = station_rewards(obs, result.applied_kw, result.area_overload_kw, config)
        total += float((reward * config.eta * config.dt_h * config.p_max).sum())
        obs = result.observations
    return total, core.episode_metrics()


@pytest.mark.parametrize("name", ["seed", "seed-20"])
def test_reward_sums_to_delivered_energy_without_violations(name) -> None:
    """Within the area limit the episode's reward is the requested minus the unmet energy (kWh)."""
    total, m = _episode_rewards(name, 1, "edf")
    assert m["area_violation_steps"] == 0
    assert total == pytest.approx(m["energy_requested_kwh"] - m["unmet_energy_kwh"], abs=1e-3)


def test_violations_cost_more_than_they_deliver() -> None:
    total, m = _episode_rewards("seed", 1, "uncontrolled")
    assert m["area_violation_steps"] > 0 and total < m["energy_requested_kwh"] - m["unmet_energy_kwh"]


def test_penalty_falls_on_drawing_stations_only() -> None:
    config, _ = make_scenario("seed", 0)
    obs = _obs(config.p_max, [True, True, False, True, True, True], [10.0] * 6, [5] * 6, 0.0, [0.0] * 6,
               config.P_ref)
    applied = np.array([22.0, 0.0, 0.0, 11.0, 0.0, 0.0])
    within = station_rewards(obs, applied, 0.0, config)
    over = station_rewards(obs, applied, 1.5, config)
    assert (within >= 0).all() and (over[[1, 2, 4, 5]] == within[[1, 2, 4, 5]]).all()
    assert over[0] < over[3] < 0  # penalty proportional to the power drawn
    with pytest.raises(ValueError, match="RewardWeights.violation"):
        RewardWeights(violation=-1.0)


def test_station_env_trains_on_acn_caltech_across_days() -> None:
    """acn-caltech has 42 stations on every day, so the plant restarts on the next day without error."""
    env = StationVecEnv(["seed", "acn-caltech"], [0, 1, 2])
    assert env.num_envs == 6 + 42
    first = env.reset()
    assert first.shape == (48, N_FEATURES) and np.isfinite(first).all()
    steps = make_scenario("acn-caltech", 0)[0].n_steps
    for _ in range(steps):
        env.step_async(np.zeros((env.num_envs, 1)))
        obs, rewards, dones, infos = env.step_wait()
    assert dones[6:].all() and "terminal_observation" in infos[6]
    acn = [row for row in env.finished if row["scenario"] == "acn-caltech"]
    assert len(acn) == 1 and acn[0]["pevs_total"] > 0
    assert env.plants[1].config.n_stations == 42 and np.isfinite(obs).all() and np.isfinite(rewards).all()


def test_acn_days_record_which_evaluation_seeds_are_held_out() -> None:
    assert _acn_days(TrainConfig(scenarios=("seed",))) is None
    days = _acn_days(TrainConfig(scenarios=("seed", "acn-caltech"), seeds=(1000, 1001, 1007)))
    assert days == {"acn_days_trained": [0, 1, 2], "acn_seeds_held_out": [3, 4]}


def test_model_json_records_the_plants_that_trained_and_whether_the_default_evaluation_is_held_out(tmp_path) -> None:
    """`training.config.env` is the base plant (area limit, 6 stations): `plants` names the Caltech network that
    trained, under the plant fingerprint a compare row of that episode has; `held_out` says the default
    evaluation draws the two training days (it advised evaluating on them before)."""
    from experiments.cli.main import main

    cfg = TrainConfig(scenarios=("acn-caltech-network",), seeds=(0, 1), out=str(tmp_path / "m"))
    env = StationVecEnv(cfg.scenarios, cfg.seeds, base=cfg.env)
    info = training_info(cfg, ["test"], env, 0, 0.0)
    assert info["config"]["env"]["network"] == "area"
    [(key, plant)] = info["plants"]["acn-caltech-network"].items()
    assert plant == {"network": "caltech", "transformer_kw": 40.0, "n_stations": 42, "p_max": 6.6,
                     "P_ref": pytest.approx(277.2), "seeds": [0]}
    assert main(["compare", "--scenarios", "acn-caltech-network", "--seeds", "0", "--controllers", "llf", "--out",
                 str(tmp_path / "c"), "-q", "--no-traces", "--no-plots"]) == 0
    assert list(json.loads((tmp_path / "c" / "run.json").read_text())["plants"]) == [key]
    assert info["training_episodes"] == {"acn-caltech-network": ["caltech-2019-05-06", "caltech-2019-05-07"]}
    assert info["held_out"].startswith("the default evaluation (seed, seed-20, acn-caltech, acn-caltech-network "
                                       "seeds 0-4) draws 2 training episode(s) (caltech-2019-05-06, "
                                       "caltech-2019-05-07): evaluate on other seeds or days")
    default = training_info(TrainConfig(), ["test"], env, 0, 0.0)["held_out"]
    assert default.startswith("the default evaluation (seed, seed-20, acn-caltech, acn-caltech-network seeds 0-4) "
                              "draws none of `training_episodes`: held out")


def test_short_training_policy_runs_on_held_out_days(tmp_path) -> None:
    """A short training on the training split saves a model whose policy acts on evaluation days."""
    out = tmp_path / "ppo"
    cfg = TrainConfig(scenarios=("seed", "acn-caltech-train"), seeds=(1000, 1001), timesteps=2000, n_steps=32,
                      batch_size=256, out=str(out))
    train(cfg, progress=False, argv=["test"])
    info = json.loads((out / "model.json").read_text())["training"]
    assert info["command"] == ["test"] and info["held_out_days"] is None
    policy = LearnedPolicy.load(out)
    config, scenario = make_scenario("acn-caltech-eval", 3)
    core = ChargingCore(config, scenario)
    obs = core.reset()
    policy.reset(config, scenario, 3)
    for _ in range(100):
        obs = core.step(policy.act_array(obs)).observations
    assert core.episode_metrics()["local_violation_steps"] == 0
