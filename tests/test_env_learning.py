"""CTDE-ready plant (global state, finite observation bounds, render modes, gymnasium.make) and the learning
wrappers (PettingZoo, Gymnasium), checked by the libraries' own API checkers; a SuperSuit + SB3 smoke."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test, render_test
from pettingzoo.utils.conversions import parallel_to_aec

from experiments.learning.rl import StationVecEnv
from pev_env import PEVChargeEnv
from pev_env.gym_env import PEVChargeGymEnv
from pev_env.config import EnvConfig
from pev_env.learning import N_FEATURES, input_names, station_progress
from pev_env.wrappers import StationLearningGymWrapper, StationLearningWrapper

ROOT = Path(__file__).resolve().parents[1]


def test_parallel_env_passes_the_pettingzoo_checks_with_state() -> None:
    parallel_api_test(PEVChargeEnv(scenario_name="seed"), num_cycles=60)
    render_test(lambda render_mode=None: parallel_to_aec(PEVChargeEnv(scenario_name="seed", render_mode=render_mode)))


@pytest.mark.parametrize("name, seeds", [("seed", range(3)), ("seed-20", range(2)), ("acn-caltech-train", range(4)),
                                         ("synthetic-12", range(2))])
def test_observations_and_state_stay_in_their_finite_bounds(name, seeds) -> None:
    """Bounds derived from the config hold for every draw of the scenario (with an uncontrolled, violating plant)."""
    env = PEVChargeEnv(scenario_name=name)
    spaces = {a: env.observation_space(a) for a in env.possible_agents}
    assert all(np.isfinite(s.high).all() for s in spaces.values()) and np.isfinite(env.state_space.high).all()
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        full = {a: env.action_space(a).high for a in env.agents}
        while env.agents:
            assert all(spaces[a].contains(o) for a, o in obs.items())
            assert env.state_space.contains(env.state())
            obs, *_ = env.step(full)


def test_gym_env_and_wrapper_pass_the_gymnasium_checks() -> None:
    check_env(PEVChargeGymEnv(scenario_name="seed"), skip_render_check=True)
    check_env(StationLearningGymWrapper(PEVChargeGymEnv(scenario_name="seed")), skip_render_check=True)
    env = PEVChargeGymEnv(scenario_name="seed", render_mode="ansi")
    env.reset(seed=0)
    assert env.render().startswith("step 0/")


def test_gymnasium_make_with_the_module_prefix_in_a_fresh_interpreter(tmp_path) -> None:
    code = ("import gymnasium\n"
            "env = gymnasium.make('pev_env:PEVChargeBattery-v0', scenario_name='seed-20')\n"
            "obs, _ = env.reset(seed=1)\n"
            "print(obs.shape)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "(55,)"  # 5 stations x N_OBS = 11


@pytest.mark.parametrize("scenario, price_alpha, action_mode", [
    ("seed", 0.0, "raw"), ("seed", 0.1, "raw"), ("seed", 0.0, "safe"), ("acn-caltech-network", 0.0, "raw")])
def test_wrappers_match_the_trainers_array_path(scenario, price_alpha, action_mode) -> None:
    """Same inputs (with the area price of price-informed agents, the safe inputs of a safe agent) and rewards as
    `pev-experiments train` (StationVecEnv) for the same actions, on the area limit and on a site network."""
    vec = StationVecEnv([scenario], [7], price_alpha, action_mode)
    pz = StationLearningWrapper(PEVChargeEnv(scenario_name=scenario), price_alpha=price_alpha, action_mode=action_mode)
    gym_env = StationLearningGymWrapper(PEVChargeGymEnv(scenario_name=scenario), price_alpha=price_alpha,
                                        action_mode=action_mode)
    width = len(input_names(price_alpha, action_mode))
    first = vec.reset()
    obs, _ = pz.reset(seed=7)
    flat, _ = gym_env.reset(seed=7)
    agents = pz.possible_agents
    rng = np.random.default_rng(0)
    for _ in range(vec.plants[0].config.n_steps - 1):
        np.testing.assert_array_equal(np.stack([obs[a] for a in agents]), first)
        np.testing.assert_array_equal(flat.reshape(len(agents), width), first)
        action = rng.uniform(-1, 1, len(agents)).astype(np.float32)
        vec.step_async(action[:, None])
        first, rewards, _, _ = vec.step_wait()
        obs, pz_rewards, *_ = pz.step({a: np.array([x]) for a, x in zip(agents, action)})
        flat, gym_reward, *_ = gym_env.step(action)
        np.testing.assert_allclose([pz_rewards[a] for a in agents], rewards, rtol=1e-6, atol=1e-6)
        assert gym_reward == pytest.approx(float(rewards.sum()), abs=1e-4)
        if action_mode != "raw":
            assert pz.unwrapped.core.episode_metrics()["area_violation_steps"] == 0
    if scenario == "acn-caltech-network":  # random requests overload the network: the penalty counted it
        assert pz.unwrapped.core.episode_metrics()["network_violation_steps"] > 0
    parallel_api_test(StationLearningWrapper(PEVChargeEnv(scenario_name="seed")), num_cycles=30)


def test_supersuit_sb3_training_gives_the_agent_the_harness_runs(tmp_path) -> None:
    """SuperSuit + SB3 on the wrapper: normalize_obs works on the plant's finite bounds; the trained policy
    saved with the harness's exporter acts through `LearnedPolicy` exactly as SB3 does on the wrapper."""
    ss = pytest.importorskip("supersuit")
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    from experiments.controllers.rl_model import LearnedPolicy, save_model
    from experiments.learning.rl import describe, sb3_tensors

    ss.normalize_obs_v0(PEVChargeEnv(scenario_name="seed")).reset(seed=0)  # needs finite bounds
    venv = ss.pettingzoo_env_to_vec_env_v1(StationLearningWrapper(PEVChargeEnv(scenario_name="seed")))
    venv = VecNormalize(ss.concat_vec_envs_v1(venv, 1, num_cpus=0, base_class="stable_baselines3"), norm_reward=True)
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, device="cpu")
    model.learn(300)
    stats = venv.obs_rms
    folder = save_model(tmp_path / "m", sb3_tensors(model, stats.mean, stats.var),
                        describe(model, venv.clip_obs, venv.epsilon, {"trainer": "supersuit + sb3 test"}))
    policy = LearnedPolicy.load(folder)
    env = StationLearningWrapper(PEVChargeEnv(scenario_name="seed"))
    feats, _ = env.reset(seed=3)
    policy.reset(env.config)
    features = np.stack([feats[a] for a in env.possible_agents])
    sb3_action, _ = model.predict(venv.normalize_obs(features), deterministic=True)
    from pev_env.learning import action_to_kw

    expected = action_to_kw(sb3_action.reshape(-1), env.inputs.raw, env.config)
    np.testing.assert_allclose(policy.act_array(env.inputs.raw), expected, atol=1e-5)


def test_overloading_a_site_network_is_penalised_by_both_rewards() -> None:
    """On acn-caltech-network P_ref never binds: the plant's w2 term and the training penalty must read the
    network's constraints, on exactly the steps network_violation_steps counts."""
    plain, unweighted = (PEVChargeEnv(scenario_name="acn-caltech-network", config=EnvConfig(reward_weights=w))
                         for w in ((1.0, 2.0, 2.0), (1.0, 2.0, 0.0)))
    learner = StationLearningWrapper(PEVChargeEnv(scenario_name="acn-caltech-network"))
    for env in (plain, unweighted, learner):
        env.reset(seed=2)
    agents = plain.possible_agents
    full = {a: np.array([6.6], np.float32) for a in agents}
    env_penalised = learner_penalised = 0
    while plain.agents:
        raw = np.array(learner.inputs.raw, dtype=np.float64)
        _, rewards, _, _, infos = plain.step(full)
        _, without_w2, *_ = unweighted.step(full)
        _, learned, _, _, l_infos = learner.step({a: np.array([1.0], np.float32) for a in agents})
        assert infos[agents[0]]["area_overload_kw"] == 0.0
        env_penalised += rewards[agents[0]] < without_w2[agents[0]] - 1e-12
        progress = station_progress(raw, np.array([l_infos[a]["applied_kw"] for a in agents]), learner.env.config)
        got = np.array([learned[a] for a in agents])
        learner_penalised += bool((got < progress - 1e-9).any())
        if l_infos[agents[0]]["network_overload_pct"] == 0:
            np.testing.assert_allclose(got, progress, rtol=1e-6)
    metrics = plain.unwrapped.core.episode_metrics()
    assert env_penalised == metrics["network_violation_steps"] > 0 and metrics["area_violation_steps"] == 0
    assert learner_penalised == learner.unwrapped.core.episode_metrics()["network_violation_steps"] > 0


@pytest.mark.parametrize("action_mode", ["raw", "safe", "safe-rate", "residual"])
def test_learning_wrappers_refuse_non_finite_actions_and_missing_agents(action_mode) -> None:
    """A diverged policy (NaN actions) must not read as 'charges nothing': both wrappers raise, as the plant does."""
    pz = StationLearningWrapper(PEVChargeEnv(scenario_name="seed"), action_mode=action_mode)
    gym_env = StationLearningGymWrapper(PEVChargeGymEnv(scenario_name="seed"), action_mode=action_mode)
    pz.reset(seed=0)
    gym_env.reset(seed=0)
    agents = pz.possible_agents
    nan_one = {a: np.array([np.nan if i == 1 else 0.5], np.float32) for i, a in enumerate(agents)}
    with pytest.raises(ValueError, match=r"action\[1\] = nan: a learned action must be finite"):
        pz.step(nan_one)
    with pytest.raises(ValueError, match=r"action\[0\] = nan"):
        gym_env.step(np.full(len(agents), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"missing agents \['cs_3'\]"):
        pz.step({a: np.array([0.0], np.float32) for a in agents if a != "cs_3"})


@pytest.mark.parametrize("action_mode", ["raw", "safe-rate", "safe"])
def test_what_the_feasibility_layer_withheld_is_in_the_step_infos(action_mode) -> None:
    """Full-power actions on the Caltech network: the infos of both wrappers say what the actions asked for before
    the layer (`layer_asked_kw`) beside what the plant was sent (`requested_kw`); the layer withholds some of it
    on a network it would overload, nothing in raw mode."""
    pz = StationLearningWrapper(PEVChargeEnv(scenario_name="acn-caltech-network"), action_mode=action_mode)
    gym_env = StationLearningGymWrapper(PEVChargeGymEnv(scenario_name="acn-caltech-network"), action_mode=action_mode)
    pz.reset(seed=2)
    gym_env.reset(seed=2)
    agents, high = pz.possible_agents, float(pz.action_space("cs_0").high[0])
    withheld = 0.0
    for _ in range(150):
        _, _, _, _, infos = pz.step({a: np.array([high], np.float32) for a in agents})
        _, _, _, _, info = gym_env.step(np.full(len(agents), high, np.float32))
        asked = np.array([infos[a]["layer_asked_kw"] for a in agents])
        sent = np.array([infos[a]["requested_kw"] for a in agents])
        np.testing.assert_array_equal(info["layer_asked_kw"], asked)
        np.testing.assert_array_equal(info["requested_kw"], sent)
        assert (asked >= sent - 1e-9).all()
        withheld += float((asked - sent).sum())
    assert (withheld == 0.0) if action_mode == "raw" else withheld > 1.0
