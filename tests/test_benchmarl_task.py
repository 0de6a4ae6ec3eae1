"""The BenchMARL task (`experiments.learning.benchmarl_task`): its configs, its TorchRL env, short BenchMARL trainings
(MAPPO, IPPO, MASAC from BenchMARL's own yaml configs) and the hydra command line's config composition."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("benchmarl", reason="BenchMARL is not installed (pip install -e '.[benchmarl]' torch==2.13.0)")

import torch  # noqa: E402
from benchmarl.algorithms import IppoConfig, MappoConfig, MasacConfig  # noqa: E402
from benchmarl.experiment import Experiment, ExperimentConfig  # noqa: E402
from benchmarl.models import MlpConfig  # noqa: E402

from experiments.learning.benchmarl_task import CONF_DIR, GROUP, PevTask, register  # noqa: E402
from pev_env import PEVChargeEnv  # noqa: E402
from pev_env.learning import N_FEATURES  # noqa: E402
from pev_env.wrappers import StationLearningWrapper  # noqa: E402

ALGORITHMS = {"mappo": MappoConfig, "ippo": IppoConfig, "masac": MasacConfig}


@pytest.fixture
def one_thread():
    """Small MLPs on a shared CPU: one torch thread (as `pev-experiments train`), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_task_yaml_configs_and_bad_config_lines() -> None:
    assert PevTask.SEED_20.get_from_yaml().config == {"scenario": "seed-20", "env": {}, "price_alpha": 0.0}
    assert PevTask.ACN_CALTECH_TRAIN.get_from_yaml().config["scenario"] == "acn-caltech-train"
    with pytest.raises(ValueError, match="scenario.*nope"):
        PevTask.SEED.get_task({"scenario": "nope"})
    with pytest.raises(ValueError, match="unknown field 'scenarios'; allowed: scenario, env, price_alpha"):
        PevTask.SEED.get_task({"scenarios": "seed"})
    with pytest.raises(ValueError, match="env: .*P_reff"):
        PevTask.SEED.get_task({"env": {"P_reff": 40}})
    with pytest.raises(ValueError, match="price_alpha = 2"):
        PevTask.SEED.get_task({"price_alpha": 2})


def test_env_is_the_learning_wrapper_with_the_global_state() -> None:
    """Same features as `StationLearningWrapper` on the same seed; the state is the plant's; actions in [-1, 1];
    EnvConfig overrides and the price input reach the plant."""
    task = PevTask.SEED.get_task({"scenario": "seed", "env": {"network": "caltech"}, "price_alpha": 0.1})
    env = task.get_env_fun(num_envs=1, continuous_actions=True, seed=7, device="cpu")()
    td = env.reset()
    plant = env._env
    assert plant.env.config.network == "caltech" and task.group_map(env) == {GROUP: plant.possible_agents}
    n = len(plant.possible_agents)
    assert task.observation_spec(env)[GROUP, "observation"].shape == (n, N_FEATURES + 1)
    assert task.state_spec(env)["state"].shape == plant.state_space.shape
    action = task.action_spec(env)[GROUP, "action"]
    assert action.shape == (n, 1) and action.space.low.min() == -1 and action.space.high.max() == 1
    reference = StationLearningWrapper(PEVChargeEnv(plant.env.config, scenario_name="seed"), price_alpha=0.1)
    reference.reset(seed=7)  # as PettingZooWrapper(seed=7); env.reset() then draws the next scenario seed
    obs, _ = reference.reset()
    np.testing.assert_allclose(td[GROUP, "observation"].numpy(), np.stack([obs[a] for a in reference.possible_agents]))
    np.testing.assert_allclose(td["state"].numpy(), reference.state())


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_benchmarl_trains_on_the_task_and_reports(tmp_path, one_thread, algorithm: str) -> None:
    """200 frames of BenchMARL's algorithm with its default yaml configs: evaluation episodes run to the
    plant's end (48 steps of `seed`), and BenchMARL's json report and csv scalars are written."""
    config = ExperimentConfig.get_from_yaml()
    for name, value in {"max_n_frames": 200, "on_policy_collected_frames_per_batch": 100,
                        "on_policy_n_envs_per_worker": 1, "on_policy_minibatch_size": 50,
                        "on_policy_n_minibatch_iters": 1, "off_policy_collected_frames_per_batch": 100,
                        "off_policy_n_envs_per_worker": 1, "off_policy_n_optimizer_steps": 2,
                        "evaluation_interval": 200, "evaluation_episodes": 1, "loggers": ["csv"],
                        "save_folder": str(tmp_path)}.items():
        setattr(config, name, value)
    experiment = Experiment(task=PevTask.SEED.get_from_yaml(), algorithm_config=ALGORITHMS[algorithm].get_from_yaml(),
                            model_config=MlpConfig.get_from_yaml(), critic_model_config=MlpConfig.get_from_yaml(),
                            seed=0, config=config)
    experiment.run()
    assert experiment.total_frames == 200
    report = json.loads(next(tmp_path.rglob("*.json")).read_text())
    returns = report["pev"]["seed"][algorithm]["seed_0"]["absolute_metrics"]["return"]
    assert len(returns) == 1 and np.isfinite(returns[0])
    lengths = pd.read_csv(next(tmp_path.rglob("eval_reward_episode_len_mean.csv")), header=None)[1]
    assert lengths.eq(48).all() and len(lengths) >= 1


def test_hydra_config_composes_from_benchmarl_and_task_yaml() -> None:
    """`python -m experiments.learning.benchmarl_run algorithm=mappo task=pev/seed_20 +task.env.network=caltech` composes
    BenchMARL's experiment/algorithm/model yaml with the task's (checked against its TaskConfig)."""
    from benchmarl.hydra_config import load_task_config_from_hydra
    from hydra import compose, initialize_config_dir

    register()
    with initialize_config_dir(version_base=None, config_dir=str(CONF_DIR)):
        cfg = compose("config", overrides=["algorithm=mappo", "task=pev/seed_20", "+task.env.network=caltech"])
    assert cfg.algorithm.share_param_critic is True and cfg.experiment.max_n_frames == 3_000_000
    task = load_task_config_from_hydra(cfg.task, "pev/seed_20")
    assert isinstance(task, PevTask.associated_class())
    assert task.config == {"scenario": "seed-20", "env": {"network": "caltech"}, "price_alpha": 0.0}
