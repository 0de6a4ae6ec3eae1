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
from pev_env.learning import N_FEATURES, input_names
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


@pytest.mark.parametrize("price_alpha, action_mode", [(0.0, "raw"), (0.1, "raw"), (0.0, "safe")])
def test_wrappers_match_the_trainers_array_path(price_alpha, action_mode) -> None:
    """Same inputs (with the area price of price-informed agents, the safe inputs of a safe agent) and rewards as
    `pev-experiments train` (StationVecEnv) for the same actions."""
    vec = StationVecEnv(["seed"], [7], price_alpha, action_mode)
    pz = StationLearningWrapper(PEVChargeEnv(scenario_name="seed"), price_alpha=price_alpha, action_mode=action_mode)
    gym_env = StationLearningGymWrapper(PEVChargeGymEnv(scenario_name="seed"), price_alpha=price_alpha,
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
