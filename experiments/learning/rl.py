"""PPO with parameter sharing: one Stable-Baselines3 policy for every station.

`StationVecEnv` is an SB3 `VecEnv` over vectorised plants (`pev_env.core.ChargingCore`): every station of
every plant is one sub-environment, so one rollout step yields one sample per station and the policy is
shared by construction. The learning functions of `pev_env.learning` sit between the plant and PPO
(the plant and its reward are unchanged): each station's policy input is `station_features` of its own
observation, its action maps to kW by `action_to_kw`, and it learns from `station_rewards` (energy
delivered towards the target minus a penalty on power drawn while the area is over P_ref). The features
are normalised by SB3's `VecNormalize`. The trained actor and the normaliser's running mean/variance are
saved in the safe model format of `experiments.controllers.rl_model` (model.json + model.safetensors, no pickles),
which `LearnedPolicy` runs with the same features and action mapping (numpy only).

Held-out evaluation: training draws scenario seeds from TrainConfig.seeds (default 1000..1099) and, for real
data, the days of `acn-caltech-train`; the comparison uses seeds 0..4 and the days of `acn-caltech` /
`acn-caltech-eval`. model.json records under `training` the episodes training draws (`training_episodes`) and
whether the default evaluation draws any of them (`held_out`); if the training scenarios list `acn-caltech` itself
(day = seed % 5), `held_out_days` records which of its days training used. `plants` records the plants that
trained (the scenarios derive them from the base plant `config.env`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from itertools import cycle
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from tqdm import tqdm

from experiments.controllers.registry import DEFAULT_EVAL_SEEDS, DEFAULT_SCENARIOS, LEARNED_ALGOS, learned_name
from experiments.controllers.rl_model import DESCRIPTION_FILE, WEIGHTS_FILE, save_model
from experiments.learning.torch_threads import single_thread_torch
from experiments.outputs.outdir import claim, record
from experiments.outputs.provenance import environment_info, episode_set, file_checksum, plant_fields, to_dict
from experiments.outputs.results import save_figure, write_csv
from pev_env.feasibility import FeasibilityLayer, action_bound
from pev_env.learning import (AreaPrice, RewardWeights, input_names, overload_cost, overload_fraction, policy_inputs,
                              station_progress, station_rewards)

if TYPE_CHECKING:
    from experiments.commands.config import TrainConfig
    from pev_env.config import EnvConfig

LOG_FILE = "training_log.csv"
CURVE_FILE = "learning_curve.png"
TENSORBOARD_DIR = "tb"
TRAIN_OUTPUTS = (DESCRIPTION_FILE, WEIGHTS_FILE, LOG_FILE, CURVE_FILE, TENSORBOARD_DIR)
"""What train writes (removed by --overwrite in a folder without a manifest)."""
LOG_STD_INIT = -1.0
"""Initial log standard deviation of the Gaussian actions (exploration noise of about 0.18 p_max)."""


class _CoreSlot:
    """One ChargingCore of the vectorised environment, its slice of sub-environments and its feasibility layer."""

    def __init__(self, name: str, seeds: Any, offset: int, price_alpha: float = 0.0, action_mode: str = "raw",
                 base: EnvConfig | None = None) -> None:
        self.name, self._seeds, self.mode, self.base = name, seeds, action_mode, base
        self.ran: dict[str, dict[str, Any]] = {}
        """The plants this slot built: plant fingerprint -> `plant_fields` and the seeds drawn on it."""
        self.price = AreaPrice(price_alpha) if price_alpha > 0 else None
        self.reset()
        self.slice = slice(offset, offset + self.config.n_stations)

    def reset(self) -> np.ndarray:
        from pev_env.core import ChargingCore
        from pev_env.scenarios import make_scenario

        self.seed = next(self._seeds)
        config, scenario = make_scenario(self.name, self.seed, base=self.base)
        if hasattr(self, "config") and config.n_stations != self.config.n_stations:
            raise ValueError(f"train.scenarios: {self.name!r} changes its number of stations between seeds "
                             f"({self.config.n_stations} -> {config.n_stations}); allowed: fixed-size scenarios")
        self.config, self.core = config, ChargingCore(config, scenario)
        key, fields = plant_fields(config)
        seeds = self.ran.setdefault(key, {**fields, "seeds": []})["seeds"]
        if self.seed not in seeds:
            seeds.append(self.seed)
        self.layer = FeasibilityLayer(self.mode, self.core.network)
        if self.price is not None:
            self.price.reset()
        self.observe(self.core.reset())
        return self.obs

    def observe(self, obs: np.ndarray) -> None:
        """Take the observations of the current step and compute their policy inputs (`features()`)."""
        self.obs, self._inputs = obs, policy_inputs(obs, self.config, self.price, self.mode)

    def features(self) -> np.ndarray:
        """(stations, inputs) policy inputs of the current observations (`pev_env.learning.policy_inputs`)."""
        return self._inputs


class StationVecEnv(VecEnv):
    """SB3 VecEnv: sub-environment i is one station of one plant; plants restart with the next seed.

    The reward is `station_rewards` (the overload penalty), or with `multiplier` set (MAPPO-Lagrangian)
    `station_progress - multiplier * overload_cost`; `costs` holds the overload cost of the last step."""

    render_mode = None

    def __init__(self, scenarios: Sequence[str], seeds: Sequence[int], price_alpha: float = 0.0,
                 action_mode: str = "raw", base: EnvConfig | None = None) -> None:
        self._seed_cycle = cycle(seeds)
        self.plants: list[_CoreSlot] = []
        self.inputs = input_names(price_alpha, action_mode)
        """Names of the policy inputs (`pev_env.learning.input_names`)."""
        self.multiplier: float | None = None
        offset = 0
        for name in scenarios:
            self.plants.append(_CoreSlot(name, self._seed_cycle, offset, price_alpha, action_mode, base))
            offset = self.plants[-1].slice.stop
        self.finished: list[dict[str, Any]] = []
        """Episode metrics of every finished plant episode (scenario, seed, metric columns)."""
        self._actions = np.zeros(offset)
        self._returns = np.zeros(offset)
        self._lengths = np.zeros(offset, dtype=np.int64)
        self.costs = np.zeros(offset)
        box = spaces.Box(-np.inf, np.inf, (len(self.inputs),), np.float32)
        bound = action_bound(action_mode)
        super().__init__(offset, box, spaces.Box(-bound, bound, (1,), np.float32))

    def reset(self) -> np.ndarray:
        for plant in self.plants:
            plant.reset()
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return self._stacked()

    def _stacked(self) -> np.ndarray:
        return np.concatenate([p.features() for p in self.plants])

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float64).reshape(self.num_envs)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for plant in self.plants:
            sl, cfg = plant.slice, plant.config
            result = plant.core.step(plant.layer(self._actions[sl], plant.obs, cfg))
            exceeded = result.area_overload_kw > 0 or result.info["network_overload_pct"] > 0
            self.costs[sl] = overload_cost(plant.obs, result.applied_kw, exceeded)
            if self.multiplier is None:
                rewards[sl] = station_rewards(plant.obs, result.applied_kw, overload_fraction(result.info, cfg), cfg)
            else:
                rewards[sl] = station_progress(plant.obs, result.applied_kw, cfg) - self.multiplier * self.costs[sl]
            plant.observe(result.observations)
            if result.terminated:
                dones[sl] = True
                self._finish(plant, infos)
        self._returns += rewards
        self._lengths += 1
        for i in np.flatnonzero(dones):
            infos[i]["episode"] = {"r": float(self._returns[i]), "l": int(self._lengths[i])}
        self._returns[dones] = 0.0
        self._lengths[dones] = 0
        return self._stacked(), rewards, dones, infos

    def _finish(self, plant: _CoreSlot, infos: list[dict[str, Any]]) -> None:
        self.finished.append({"scenario": plant.name, "seed": plant.seed, **plant.core.episode_metrics()})
        last = plant.features()
        for row, i in enumerate(range(plant.slice.start, plant.slice.stop)):
            infos[i]["terminal_observation"] = last[row]
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


class TrainingRecord:
    """The record of a training run: finished-episode metrics (with the timestep) in training_log.csv, a
    progress bar, TensorBoard scalars in tb/ (when tensorboard is installed; the folder is made with the first
    scalar) and learning_curve.png."""

    def __init__(self, out: Path, env: StationVecEnv, progress: bool, total: int, label: str) -> None:
        self.out, self.env, self.rows, self.done = out, env, [], 0
        self.bar = tqdm(total=total, desc=label, unit="sample", disable=not progress)
        self.writer: Any = None
        self.extra: dict[str, float] = {}
        """Scalars of the learner logged with every update (e.g. the Lagrange multiplier)."""

    def _tensorboard(self) -> Any:
        """The SummaryWriter of tb/, made on first use; None when tensorboard is not installed."""
        if self.writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                return None
            record(self.out / TENSORBOARD_DIR)  # the tool's own folder: --overwrite removes it whole
            self.writer = SummaryWriter(str(self.out / TENSORBOARD_DIR))
        return self.writer

    def update(self, samples: int) -> None:
        """Advance to `samples` trained; log the episodes finished since the last call."""
        self.bar.update(samples - self.done)
        self.done = samples
        if self.extra and self._tensorboard() is not None:
            for key, value in self.extra.items():
                self.writer.add_scalar(f"learner/{key}", value, samples)
        if not self.env.finished:
            return
        new = [{"timesteps": samples, **self.extra, **m} for m in self.env.finished]
        self.env.finished.clear()
        self.rows += new
        write_csv(self.out / LOG_FILE, pd.DataFrame(self.rows))
        writer = self._tensorboard()
        for row in new:
            if writer is not None:
                for key in ("unmet_energy_kwh", "area_violation_steps", "area_overload_kwh", "network_violation_steps"):
                    if key in row:
                        writer.add_scalar(f"{row['scenario']}/{key}", row[key], samples)
        self.bar.set_postfix(unmet_kwh=f"{new[-1]['unmet_energy_kwh']:.1f}",
                             violations=new[-1]["network_violation_steps"])

    def close(self) -> None:
        """Close the bar and the TensorBoard writer; plot the learning curve."""
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
        if self.rows:
            from experiments.outputs import plots

            fig = plots.learning_curve(pd.DataFrame(self.rows))
            save_figure(fig, self.out / CURVE_FILE)
            plots.close(fig)


def saved_line(folder: Path) -> str:
    """The line `train` prints: the model folder and the files it holds (tb/ only when TensorBoard logs were
    written, learning_curve.png only when an episode finished)."""
    names = ["model.json + model.safetensors"] + [n for n in (LOG_FILE, CURVE_FILE) if (folder / n).is_file()]
    if (folder / TENSORBOARD_DIR).is_dir() and any((folder / TENSORBOARD_DIR).iterdir()):
        names.append(f"{TENSORBOARD_DIR}/")
    return f"saved {folder} ({', '.join(names)})"


def rollout_steps(cfg: TrainConfig, stations: int) -> int:
    """Steps per rollout: cfg.n_steps, or fewer when the budget is smaller than one rollout of every station
    (so `--timesteps 5000` trains about 5,000 samples); the budget is rounded up to whole rollouts, with one line
    saying so."""
    steps = max(1, min(cfg.n_steps, -(-cfg.timesteps // stations)))
    per_rollout = steps * stations
    total = -(-cfg.timesteps // per_rollout) * per_rollout
    if total != cfg.timesteps:
        print(f"train: {total:,} samples for timesteps = {cfg.timesteps:,}: whole rollouts of {steps} steps x "
              f"{stations} stations", file=sys.stderr)
    return steps


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, use one thread and torch's deterministic algorithms: the same seed gives the
    same weights on the same machine (and the same library versions)."""
    single_thread_torch()
    torch.use_deterministic_algorithms(True)
    set_random_seed(seed)  # random, numpy and torch (SB3's helper)


class _TrainingLog(BaseCallback):
    """Feeds SB3's progress to a `TrainingRecord`."""

    def __init__(self, record: TrainingRecord) -> None:
        super().__init__()
        self.record = record

    def _on_step(self) -> bool:
        self.record.update(self.num_timesteps)
        return True


def training_info(cfg: TrainConfig, argv: list[str] | None, env: StationVecEnv, samples: int,
                  start: float) -> dict[str, Any]:
    """The `training` record of model.json: command, configuration (`config.env` is the base plant), the plants that
    ran (per scenario: plant fingerprint -> `plant_fields` and seeds), the episodes `config.scenarios` x
    `config.seeds` draw and what that means for held-out evaluation, reward, time, versions."""
    episodes = {spec: sorted(episode_set([spec], cfg.seeds)) for spec in cfg.scenarios}
    return {
        "command": argv if argv is not None else sys.argv,
        "config": to_dict(cfg),
        "action_mode": cfg.action_mode,
        "stations_per_sample_batch": env.num_envs,
        "samples_trained": int(samples),
        "plants": {plant.name: {key: {**fields, "seeds": sorted(fields["seeds"])} for key, fields in plant.ran.items()}
                   for plant in env.plants},
        "training_episodes": episodes,
        "held_out": held_out_advice(set().union(*episodes.values())),
        "held_out_days": _acn_days(cfg),
        "training_reward": {"doc": station_rewards.__doc__.splitlines()[0], **asdict(RewardWeights())},
        "wall_time_s": round(time.perf_counter() - start, 2),
        "environment": environment_info(),
    }


def held_out_advice(trained: set[str]) -> str:
    """The `held_out` line of model.json: whether the default evaluation (DEFAULT_SCENARIOS x DEFAULT_EVAL_SEEDS)
    draws any of the `trained` episodes."""
    default = f"{', '.join(DEFAULT_SCENARIOS)} seeds {DEFAULT_EVAL_SEEDS[0]}-{DEFAULT_EVAL_SEEDS[-1]}"
    seen = sorted(episode_set(DEFAULT_SCENARIOS, DEFAULT_EVAL_SEEDS) & trained)
    rule = "compare/evaluate list rows on a training episode under not_held_out (run.json, summary.md)"
    if not seen:
        return f"the default evaluation ({default}) draws none of `training_episodes`: held out; {rule}"
    return (f"the default evaluation ({default}) draws {len(seen)} training episode(s) "
            f"({', '.join(seen[:3])}{', ...' if len(seen) > 3 else ''}): evaluate on other seeds or days; {rule}")


def _batch_size(wanted: int, buffer: int) -> int:
    """The largest divisor of the rollout size `buffer` not above `wanted` (SB3 wants full minibatches)."""
    return max(b for b in range(1, min(wanted, buffer) + 1) if buffer % b == 0)


def _linear_decay(initial: float) -> Callable[[float], float]:
    """Learning-rate schedule falling linearly from `initial` to 0 (SB3 passes the remaining progress 1 -> 0)."""
    return lambda remaining: initial * remaining


def _acn_days(cfg: TrainConfig) -> dict[str, list[int]] | None:
    """acn-caltech days (seed % 5) seen in training, and the evaluation seeds 0..4 whose day training never saw."""
    if "acn-caltech" not in cfg.scenarios:
        return None
    seen = sorted({s % 5 for s in cfg.seeds})
    return {"acn_days_trained": seen, "acn_seeds_held_out": [s for s in range(5) if s not in seen]}


def train(cfg: TrainConfig, progress: bool = True, argv: list[str] | None = None) -> Path:
    """Train PPO on cfg.scenarios x cfg.seeds; write the model (model.json + model.safetensors) and the training
    log into cfg.out (locked); the folder's path."""
    return train_into(cfg, _train, progress, argv)


def train_into(cfg: TrainConfig, trainer: Callable[[TrainConfig, Path, bool, list[str] | None, float, StationVecEnv], Path],
               progress: bool, argv: list[str] | None) -> Path:
    """Run `trainer` (cfg, the claimed folder, progress, argv, its start time, the seeded training plants) in
    cfg.out, locked for the training's outputs; the folder's path."""
    with claim(cfg.out, (DESCRIPTION_FILE,), overwrite=cfg.overwrite, outputs=TRAIN_OUTPUTS) as out:
        start = time.perf_counter()
        seed_everything(cfg.seed)
        env = StationVecEnv(cfg.scenarios, cfg.seeds, cfg.price_alpha, cfg.action_mode, cfg.env)
        return trainer(cfg, out, progress, argv, start, env)


def _train(cfg: TrainConfig, out: Path, progress: bool, argv: list[str] | None, start: float,
           env: StationVecEnv) -> Path:
    venv = VecNormalize(env, norm_obs=True, norm_reward=True, clip_obs=10.0, gamma=cfg.gamma)
    n_steps = rollout_steps(cfg, env.num_envs)
    model = PPO("MlpPolicy", venv, learning_rate=_linear_decay(cfg.learning_rate), n_steps=n_steps,
                batch_size=_batch_size(cfg.batch_size, n_steps * env.num_envs), n_epochs=cfg.n_epochs,
                gamma=cfg.gamma, ent_coef=cfg.ent_coef, seed=cfg.seed, device="cpu", verbose=0,
                policy_kwargs={"net_arch": list(cfg.net_arch), "log_std_init": LOG_STD_INIT})
    record = TrainingRecord(out, env, progress, cfg.timesteps, "IPPO")
    model.learn(total_timesteps=cfg.timesteps, callback=CallbackList([_TrainingLog(record)]))
    record.close()
    info = training_info(cfg, argv, env, model.num_timesteps, start)
    return save_model(out, sb3_tensors(model, venv.obs_rms.mean, venv.obs_rms.var),
                      describe(model, venv.clip_obs, venv.epsilon, info, cfg.price_alpha, cfg.action_mode))


ACTIONS = {
    "raw": "a in [-1,1] -> clip((a+1)/2 * p_max, p_min, max(p_min, need)) while plugged, else 0",
    "safe": "a = score; in order of decreasing score each station takes the largest rate <= need keeping every "
            "limit (pev_env.feasibility)",
    "safe-rate": "a in [-1,1] -> the raw request, capped by the fill in order of decreasing a where the requests "
                 "would exceed a limit (pev_env.feasibility)",
    "residual": "score = -laxity_log + a (residual on LLF's key), then the safe fill (pev_env.feasibility)",
}
"""The `action` text of model.json for each action mode."""


def model_description(algo: str, algorithm: str, price_alpha: float, activation: str, layers: list[str],
                      clip: float, epsilon: float, training: dict[str, Any], action_mode: str = "raw") -> dict[str, Any]:
    """The model.json description of a shared station actor (`experiments.controllers.rl_model`) trained by `train --algo
    algo`; its controller is `registry.learned_name` (e.g. ppo-price, mappo-safe)."""
    return {
        "controller": learned_name(LEARNED_ALGOS[algo], price_alpha, action_mode),
        "algorithm": algorithm,
        "features": input_names(price_alpha, action_mode),
        "price_alpha": float(price_alpha),
        "action_mode": action_mode,
        "action": ACTIONS[action_mode],
        "activation": activation,
        "layers": layers,
        "normalizer": {"clip": float(clip), "epsilon": float(epsilon)},
        "training": training,
    }


def describe(model: PPO, clip: float, epsilon: float, training: dict[str, Any],
             price_alpha: float = 0.0, action_mode: str = "raw") -> dict[str, Any]:
    """The model.json description of an SB3 PPO station policy."""
    return model_description("ippo", "ippo: PPO with parameter sharing (Stable-Baselines3), one policy for every "
                             "station", price_alpha, _activation(model), [n for n, _ in _linear_layers(model)],
                             clip, epsilon, training, action_mode)


def _linear_layers(model: PPO) -> list[tuple[str, torch.nn.Linear]]:
    """(name, layer) of the actor's linear layers, input first: the policy network, then the action head."""
    hidden = [(f"policy_net.{i}", m) for i, m in enumerate(model.policy.mlp_extractor.policy_net)
              if isinstance(m, torch.nn.Linear)]
    return [*hidden, ("action_net", model.policy.action_net)]


def _activation(model: PPO) -> str:
    names = {torch.nn.Tanh: "tanh", torch.nn.ReLU: "relu"}
    if model.policy.activation_fn not in names:
        raise ValueError(f"activation {model.policy.activation_fn.__name__}: allowed Tanh, ReLU")
    return names[model.policy.activation_fn]


def sb3_tensors(model: PPO, mean: np.ndarray, var: np.ndarray) -> dict[str, np.ndarray]:
    """The actor's weights and biases and the normaliser's mean/variance as plain arrays."""
    tensors = {"obs_mean": np.asarray(mean), "obs_var": np.asarray(var)}
    for name, layer in _linear_layers(model):
        tensors[f"{name}.weight"] = layer.weight.detach().cpu().numpy()
        tensors[f"{name}.bias"] = layer.bias.detach().cpu().numpy()
    return tensors


def convert_sb3_zip(path: str | Path, out: str | Path) -> Path:
    """Convert a trusted Stable-Baselines3 `model.zip` (and the `normalizer.npz` beside it) into the safe format
    in folder `out`. This unpickles the zip: only for files the user trusts (`--trust-model`)."""
    path = Path(path)
    norm_path = path.parent / "normalizer.npz"
    if not norm_path.is_file():
        raise ValueError(f"ppo_model = {str(path)!r}: no normalizer.npz beside it; allowed: a model.zip written by "
                         "`pev-experiments train` before the safe format")
    with np.load(norm_path, allow_pickle=False) as norm:
        mean, var, clip, eps = (norm[k] for k in ("mean", "var", "clip", "epsilon"))
    model = PPO.load(path, device="cpu")
    training = {"converted_from": str(path), "converted_from_sha256": file_checksum(path, norm_path)}
    return save_model(out, sb3_tensors(model, mean, var), describe(model, float(clip), float(eps), training))
