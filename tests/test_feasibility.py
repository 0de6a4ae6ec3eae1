"""The feasibility layer of the learned agents (`pev_env.feasibility`): no action yields a violation on any network
(phasor gains included), safe-rate equals raw wherever raw keeps every limit, residual RL with a zero correction is
LLF, a safe model runs safe, and the same training seed gives the same weights."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from network_strategies import networks
from pev_env.core import ChargingCore
from pev_env.feasibility import ACTION_MODES, SCORE_BOUND, FeasibilityLayer, check_action_mode
from pev_env.learning import SAFE_FEATURES, input_names
from pev_env.network import Network, area_network
from pev_env.observation import N_OBS, OBS_INDEX
from pev_env.scenarios import make_scenario

CONFIG = SimpleNamespace(eta=0.9, dt_h=5 / 60)
TOL = 1e-9


def _obs(data: st.DataObject, n: int, floors: bool) -> np.ndarray:
    """Random station observations (n, N_OBS): plugged or free, p_min (0 or small), p_max, need, departure."""
    obs = np.zeros((n, N_OBS))
    obs[:, OBS_INDEX["plugged"]] = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    obs[:, OBS_INDEX["p_max"]] = data.draw(st.lists(st.floats(1.0, 50.0), min_size=n, max_size=n))
    if floors:
        obs[:, OBS_INDEX["p_min"]] = obs[:, OBS_INDEX["p_max"]] * data.draw(
            st.lists(st.floats(0.0, 0.05), min_size=n, max_size=n))
    obs[:, OBS_INDEX["soc_remain"]] = data.draw(st.lists(st.floats(0.0, 60.0), min_size=n, max_size=n))
    obs[:, OBS_INDEX["steps_to_departure"]] = data.draw(st.lists(st.integers(0, 300), min_size=n, max_size=n))
    return obs


def _feasible(network: Network, p: np.ndarray) -> bool:
    return bool(np.all(network.loads(p) <= network.limit * (1 + TOL) + TOL))


def _floors_fit(network: Network, obs: np.ndarray) -> bool:
    plugged = obs[:, OBS_INDEX["plugged"]] > 0.5
    return _feasible(network, np.where(plugged, obs[:, OBS_INDEX["p_min"]], 0.0))


@given(st.one_of(networks(), st.builds(area_network, st.integers(1, 8), st.floats(0.5, 200.0))), st.data())
def test_no_action_of_a_safe_mode_exceeds_a_limit(network, data) -> None:
    """Random scores or rates, limits and networks (phasor gains, cones, the area limit): every safe mode's powers
    keep every constraint (Network.loads <= limit), stay within [floor, need] and are 0 at free stations."""
    n = network.n_stations
    obs = _obs(data, n, floors=data.draw(st.booleans()))
    if not _floors_fit(network, obs):
        return  # the floors alone exceed a limit: no rate can help (the plant records it)
    action = np.array(data.draw(st.lists(st.floats(-2 * SCORE_BOUND, 2 * SCORE_BOUND), min_size=n, max_size=n)))
    plugged = obs[:, OBS_INDEX["plugged"]] > 0.5
    need = np.minimum(obs[:, OBS_INDEX["p_max"]], obs[:, OBS_INDEX["soc_remain"]] / (CONFIG.eta * CONFIG.dt_h))
    for mode in ("safe", "safe-rate", "residual"):
        p = FeasibilityLayer(mode, network)(action, obs, CONFIG)
        assert _feasible(network, p), (mode, network.loads(p), network.limit)
        assert np.all(p[~plugged] == 0.0)
        assert np.all(p[plugged] <= np.maximum(need, obs[:, OBS_INDEX["p_min"]])[plugged] + 1e-12)
        assert np.all(p[plugged] >= obs[plugged, OBS_INDEX["p_min"]] - 1e-12)


@given(networks(), st.data())
def test_safe_rate_differs_from_raw_only_where_raw_violates(network, data) -> None:
    """Where raw's requests keep every limit safe-rate applies them unchanged; elsewhere it caps them (never raises
    one) into the limits."""
    n = network.n_stations
    obs = _obs(data, n, floors=False)
    action = np.array(data.draw(st.lists(st.floats(-1.0, 1.0), min_size=n, max_size=n)))
    raw = FeasibilityLayer("raw", network)(action, obs, CONFIG)
    safe = FeasibilityLayer("safe-rate", network)(action, obs, CONFIG)
    if np.all(network.loads(raw) <= network.limit):
        np.testing.assert_array_equal(safe, raw)
    else:
        assert np.all(safe <= raw + 1e-12) and _feasible(network, safe)


def test_the_scores_decide_the_order_of_the_fill() -> None:
    """Area limit 10 kW, three stations needing 8 kW each: the highest score is served first, then the next."""
    obs = np.zeros((3, N_OBS))
    obs[:, OBS_INDEX["plugged"]] = 1
    obs[:, OBS_INDEX["p_max"]] = 8.0
    obs[:, OBS_INDEX["soc_remain"]] = 50.0
    p = FeasibilityLayer("safe", area_network(3, 10.0))(np.array([0.1, 3.0, -1.0]), obs, CONFIG)
    np.testing.assert_allclose(p, [2.0, 8.0, 0.0])


def _zero_actor(mode: str, controller: str) -> object:
    """A LearnedPolicy of `mode` whose actor outputs 0 for every input (a zero last layer)."""
    from experiments.controllers.rl_model import LearnedPolicy, SavedModel

    names = input_names(0.0, mode)
    tensors = {"obs_mean": np.zeros(len(names)), "obs_var": np.ones(len(names)),
               "l0.weight": np.ones((4, len(names))), "l0.bias": np.zeros(4),
               "l1.weight": np.zeros((1, 4)), "l1.bias": np.zeros(1)}
    description = {"controller": controller, "features": names, "price_alpha": 0.0, "action_mode": mode,
                   "activation": "tanh", "layers": ["l0", "l1"], "normalizer": {"clip": 10.0, "epsilon": 1e-8}}
    return LearnedPolicy(SavedModel(Path("."), description, tensors))


def _run(policy: object, name: str, seed: int, **overrides: object) -> dict:
    from pev_env.config import EnvConfig

    config, scenario = make_scenario(name, seed, base=EnvConfig().with_overrides(overrides) if overrides else None)
    core = ChargingCore(config, scenario)
    obs = core.reset()
    policy.reset(config, scenario, seed)
    while not core.done:
        obs = core.step(policy.act_array(obs)).observations
    return core.episode_metrics()


@pytest.mark.parametrize("name, overrides", [("seed-20", {}), ("acn-caltech-network", {"transformer_kw": 25.0})])
def test_residual_with_a_zero_correction_is_llf(name, overrides) -> None:
    """score = -laxity_log + 0 fills in LLF's order: the same episode as LLF, to the last kWh, under the area limit
    and on the Caltech network (so a learned score can represent LLF exactly)."""
    from pev_mpc.policies import make_policy

    llf = _run(make_policy("llf"), name, 1, **overrides)
    residual = _run(_zero_actor("residual", "ppo-residual"), name, 1, **overrides)
    assert residual["unmet_energy_kwh"] == llf["unmet_energy_kwh"]
    assert residual["network_violation_steps"] == 0 and residual["area_violation_steps"] == 0


def test_a_safe_model_records_its_mode_and_runs_safe_under_its_own_name_only(tmp_path) -> None:
    """The model file records the action mode and the extra inputs; a safe model never runs as `ppo` (preflight:
    the controller must match), and an unknown mode is refused."""
    from experiments.cli.preflight import check_model
    from experiments.controllers.rl_model import ModelError, load_model, save_model

    policy = _zero_actor("safe", "ppo-safe")
    folder = save_model(tmp_path / "m", policy.model.tensors, policy.model.description)
    loaded = load_model(folder)
    assert loaded.action_mode == "safe" and loaded.description["features"][-len(SAFE_FEATURES):] == list(SAFE_FEATURES)
    check_model("evaluate", "ppo-safe", str(folder), False)
    with pytest.raises(ValueError, match="a model of controller 'ppo-safe'"):
        check_model("evaluate", "ppo", str(folder), False)
    bad = {**policy.model.description, "action_mode": "clip"}
    with pytest.raises(ModelError, match="action_mode 'clip'"):
        save_model(tmp_path / "bad", policy.model.tensors, bad)
    with pytest.raises(ValueError, match="allowed values: raw, safe"):
        check_action_mode("clip")
    assert ACTION_MODES == ("raw", "safe", "safe-rate", "residual")


def _sha(path: Path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


@pytest.mark.parametrize("algo", ["ippo", "mappo-lagrangian"])
def test_the_same_seed_trains_the_same_model_file(tmp_path, algo) -> None:
    """Two tiny trainings (a few hundred samples) with the same seed write byte-identical weights; another seed
    does not."""
    from experiments.commands.config import TrainConfig

    if algo == "ippo":
        from experiments.learning.rl import train
    else:
        from experiments.learning.marl import train_mappo as train

    def run(out: str, seed: int) -> Path:
        cfg = TrainConfig(algo=algo, scenarios=("seed",), seeds=(1000, 1001), timesteps=180, n_steps=30,
                          batch_size=60, n_epochs=2, seed=seed, action_mode="safe", out=str(tmp_path / out))
        return train(cfg, progress=False, argv=["test"])

    first, second, other = run("a", 3), run("b", 3), run("c", 4)
    assert _sha(first) == _sha(second) != _sha(other)
    description = json.loads((first / "model.json").read_text())
    assert description["action_mode"] == "safe"
    assert description["training"]["samples_trained"] == 180
    if algo == "mappo-lagrangian":
        assert description["controller"] == "mappo-lagrangian-safe"
        assert description["training"]["algorithm_detail"]["lagrange_multiplier_final"] >= 0


def test_mappo_rollouts_sample_their_actions() -> None:
    """MAPPO explores: the rollout's actions are drawn from the Gaussian, not its mean (a ProbabilisticActor outside
    `set_exploration_type(RANDOM)` returns the mean, and PPO then learns nothing from its actions)."""
    import torch
    from stable_baselines3.common.vec_env import VecNormalize

    from experiments.learning.marl import _rollout, actor_critic
    from experiments.learning.rl import StationVecEnv

    torch.manual_seed(0)
    env = StationVecEnv(["seed"], [1000])
    venv = VecNormalize(env, gamma=0.99)
    actor_net, actor, critic = actor_critic(len(env.inputs), (8,))
    torch.nn.init.zeros_(actor_net[-1].weight)
    torch.nn.init.zeros_(actor_net[-1].bias)  # the mean action is 0 everywhere
    batch, _, _ = _rollout(venv, env, actor, critic, venv.reset(), 4, 0.99, "action_log_prob", 1.0)
    assert batch["action"].abs().min() > 0 and batch["action"].std() > 0.1
