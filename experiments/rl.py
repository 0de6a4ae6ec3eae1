"""PPO with parameter sharing: one Stable-Baselines3 policy for every station.

`StationVecEnv` is an SB3 `VecEnv` over vectorised plants (`pev_env.core.ChargingCore`): every station of
every plant is one sub-environment, so one rollout step yields one sample per station and the policy is
shared by construction. Observations are normalised for learning by SB3's `VecNormalize` wrapper (the
environment is unchanged); its running mean/variance are saved next to the model and applied by
`PPOPolicy`, the controller that runs a saved model through the common policy interface.

Action: a in [-1, 1] per station, the fraction (a + 1) / 2 of the useful power range
[p_min, max(p_min, min(p_max, need))] of the plugged PEV (need = power that finishes it this step); free
stations request 0. The same mapping is used in training and evaluation (`action_to_kw`).

Held-out evaluation: training draws scenario seeds from TrainConfig.seeds (default 1000..1099); the
comparison uses seeds 0..4, which training never sees (recorded in train_config.json).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from itertools import cycle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from tqdm import tqdm

from experiments.config import TrainConfig, to_dict
from experiments.provenance import environment_info
from experiments.results import atomic_path, write_csv, write_text
from pev_env.observation import N_OBS
from pev_mpc.policies.base import Observed, Policy

MODEL_FILE = "model.zip"
NORMALIZER_FILE = "normalizer.npz"
CONFIG_FILE = "train_config.json"
LOG_FILE = "training_log.csv"


def action_to_kw(action: np.ndarray, ob: Observed, config: Any) -> np.ndarray:
    """Map actions in [-1, 1] (N,) to requested powers (N,) kW for one step's observations."""
    fraction = (np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0) + 1.0) / 2.0
    upper = np.maximum(ob.need_kw(config.eta, config.dt_h), ob.p_min)
    return np.where(ob.plugged, ob.p_min + fraction * (upper - ob.p_min), 0.0)


class _Plant:
    """One ChargingCore of the vectorised environment and its slice of sub-environments."""

    def __init__(self, name: str, seeds: Any, offset: int) -> None:
        self.name, self._seeds = name, seeds
        self.reset()
        self.slice = slice(offset, offset + self.config.n_stations)

    def reset(self) -> np.ndarray:
        from pev_env.core import ChargingCore
        from pev_env.scenarios import make_scenario

        self.seed = next(self._seeds)
        config, scenario = make_scenario(self.name, self.seed)
        if hasattr(self, "config") and config.n_stations != self.config.n_stations:
            raise ValueError(f"train.scenarios: {self.name!r} changes its number of stations between seeds "
                             f"({self.config.n_stations} -> {config.n_stations}); allowed: fixed-size scenarios")
        self.config, self.core = config, ChargingCore(config, scenario)
        self.obs = self.core.reset()
        return self.obs


class StationVecEnv(VecEnv):
    """SB3 VecEnv: sub-environment i is one station of one plant; plants restart with the next seed."""

    render_mode = None

    def __init__(self, scenarios: Sequence[str], seeds: Sequence[int]) -> None:
        self._seed_cycle = cycle(seeds)
        self.plants: list[_Plant] = []
        offset = 0
        for name in scenarios:
            self.plants.append(_Plant(name, self._seed_cycle, offset))
            offset = self.plants[-1].slice.stop
        self.finished: list[dict[str, Any]] = []
        """Episode metrics of every finished plant episode (scenario, seed, DESIGN.md metrics)."""
        self._actions = np.zeros(offset)
        self._returns = np.zeros(offset)
        self._lengths = np.zeros(offset, dtype=np.int64)
        box = spaces.Box(-np.inf, np.inf, (N_OBS,), np.float32)
        super().__init__(offset, box, spaces.Box(-1.0, 1.0, (1,), np.float32))

    def reset(self) -> np.ndarray:
        for plant in self.plants:
            plant.reset()
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return self._stacked()

    def _stacked(self) -> np.ndarray:
        return np.concatenate([p.obs for p in self.plants]).astype(np.float32)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float64).reshape(self.num_envs)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for plant in self.plants:
            sl = plant.slice
            result = plant.core.step(action_to_kw(self._actions[sl], Observed(plant.obs, plant.config.P_ref), plant.config))
            rewards[sl] = result.rewards
            plant.obs = result.observations
            if result.terminated:
                dones[sl] = True
                self._finish(plant, result.observations, infos)
        self._returns += rewards
        self._lengths += 1
        for i in np.flatnonzero(dones):
            infos[i]["episode"] = {"r": float(self._returns[i]), "l": int(self._lengths[i])}
        self._returns[dones] = 0.0
        self._lengths[dones] = 0
        return self._stacked(), rewards, dones, infos

    def _finish(self, plant: _Plant, last_obs: np.ndarray, infos: list[dict[str, Any]]) -> None:
        self.finished.append({"scenario": plant.name, "seed": plant.seed, **plant.core.episode_metrics()})
        for row, i in enumerate(range(plant.slice.start, plant.slice.stop)):
            infos[i]["terminal_observation"] = last_obs[row].astype(np.float32)
            infos[i]["TimeLimit.truncated"] = False
        plant.reset()

    def close(self) -> None:
        """Nothing to release."""

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        return [getattr(self, method_name)(*args, **kwargs)] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))


class _TrainingLog(BaseCallback):
    """Writes the plant metrics of every finished training episode (with the timestep) to a CSV."""

    def __init__(self, env: StationVecEnv, path: Path, bar: tqdm) -> None:
        super().__init__()
        self.env, self.path, self.bar, self.rows = env, path, bar, []

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        if self.env.finished:
            self.rows += [{"timesteps": self.num_timesteps, **m} for m in self.env.finished]
            self.env.finished.clear()
            write_csv(self.path, pd.DataFrame(self.rows))
            self.bar.set_postfix(unmet_kwh=f"{self.rows[-1]['unmet_energy_kwh']:.1f}",
                                 violations=self.rows[-1]["area_violation_steps"])
        return True


def _batch_size(wanted: int, buffer: int) -> int:
    """The largest divisor of the rollout size `buffer` not above `wanted` (SB3 wants full minibatches)."""
    return max(b for b in range(1, min(wanted, buffer) + 1) if buffer % b == 0)


def train(cfg: TrainConfig, progress: bool = True, argv: list[str] | None = None) -> Path:
    """Train PPO on cfg.scenarios x cfg.seeds; write model, normaliser, config and log into cfg.out."""
    start = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    set_random_seed(cfg.seed)
    env = StationVecEnv(cfg.scenarios, cfg.seeds)
    venv = VecNormalize(env, norm_obs=True, norm_reward=True, clip_obs=10.0, gamma=cfg.gamma)
    model = PPO("MlpPolicy", venv, learning_rate=cfg.learning_rate, n_steps=cfg.n_steps,
                batch_size=_batch_size(cfg.batch_size, cfg.n_steps * env.num_envs), n_epochs=cfg.n_epochs,
                gamma=cfg.gamma, ent_coef=cfg.ent_coef, seed=cfg.seed, device="cpu", verbose=0,
                policy_kwargs={"net_arch": list(cfg.net_arch)})
    with tqdm(total=cfg.timesteps, desc="PPO", unit="sample", disable=not progress) as bar:
        model.learn(total_timesteps=cfg.timesteps, callback=CallbackList([_TrainingLog(env, out / LOG_FILE, bar)]))
    with atomic_path(out / MODEL_FILE) as tmp:
        model.save(tmp)
    with atomic_path(out / NORMALIZER_FILE) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, mean=venv.obs_rms.mean, var=venv.obs_rms.var, clip=venv.clip_obs, epsilon=venv.epsilon)
    info = {
        "command": argv if argv is not None else sys.argv,
        "config": to_dict(cfg),
        "stations_per_sample_batch": env.num_envs,
        "samples_trained": int(model.num_timesteps),
        "held_out": "training uses scenario seeds `config.seeds`; evaluate on other seeds (default 0..4)",
        "action": "a in [-1,1] -> p_min + (a+1)/2 * (max(p_min, min(p_max, need)) - p_min) while plugged, else 0",
        "wall_time_s": round(time.perf_counter() - start, 2),
        "environment": environment_info(),
    }
    write_text(out / CONFIG_FILE, json.dumps(info, indent=2) + "\n")
    return out / MODEL_FILE


class PPOPolicy(Policy):
    """A saved PPO model as a controller: normalise each station's observation, act deterministically."""

    name = "ppo"

    def __init__(self, model: PPO, normalizer: Mapping[str, Any]) -> None:
        super().__init__()
        self.model = model
        self._mean = np.asarray(normalizer["mean"], dtype=np.float64)
        self._std = np.sqrt(np.asarray(normalizer["var"], dtype=np.float64) + float(normalizer["epsilon"]))
        self._clip = float(normalizer["clip"])
        self._raw: np.ndarray | None = None

    @classmethod
    def load(cls, path: str | Path) -> PPOPolicy:
        """Load `model.zip` and the `normalizer.npz` next to it."""
        path = Path(path)
        norm_path = path.parent / NORMALIZER_FILE
        for p in (path, norm_path):
            if not p.exists():
                raise ValueError(f"ppo_model = {str(path)!r}: {p} not found; allowed: a model written by "
                                 "`pev-experiments train` (model.zip + normalizer.npz)")
        with np.load(norm_path) as data:
            normalizer = {k: data[k] for k in data.files}
        return cls(PPO.load(path, device="cpu"), normalizer)

    def act_array(self, obs: np.ndarray) -> np.ndarray:
        """Requested powers (N,) kW: the shared policy applied to each station's normalised observation."""
        self._raw = obs
        return super().act_array(obs)

    def _act(self, ob: Observed) -> tuple[np.ndarray, dict[str, Any]]:
        normed = np.clip((np.asarray(self._raw, dtype=np.float64) - self._mean) / self._std, -self._clip, self._clip)
        action, _ = self.model.predict(normed.astype(np.float32), deterministic=True)
        return action_to_kw(action, ob, self.config), {}
