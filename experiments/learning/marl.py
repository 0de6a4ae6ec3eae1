"""MAPPO: PPO with a centralised critic (TorchRL's clipped PPO loss and GAE) next to IPPO (`experiments.learning.rl`).

Same stations, features, actions and training reward as IPPO (`StationVecEnv` and SB3's `VecNormalize`
for the running feature/reward normalisation, so both algorithms see identical inputs); the differences:

* the critic is centralised: each station's value is computed from its own features *and* the features
  of every station of its plant (mean and max over the stations, permutation-invariant, so one critic
  serves plants of any size: seed, seed-20 and acn-caltech-train train together);
* the actor stays decentralised and shared (its own features only), so the saved model is the same kind
  as IPPO's (`experiments.controllers.rl_model`) and runs on any plant; the critic is discarded after training.

Training: rollouts of `n_steps` steps of every plant, generalised advantage estimates
(`torchrl.objectives.value.functional.generalized_advantage_estimate`), `n_epochs` passes of minibatches
through `torchrl.objectives.ClipPPOLoss`. Episode metrics go to training_log.csv and TensorBoard (tb/).

MAPPO-Lagrangian (`--algo mappo-lagrangian`): the fixed overload penalty of the reward is replaced by a Lagrange
multiplier lambda on the overload cost (`pev_env.learning.overload_cost`: a station's power / p_max while the
area limit or a network constraint is exceeded): the reward is progress - lambda cost, and after each batch
lambda <- max(0, lambda + lagrange_lr (mean cost per station-step of the batch - cost_limit)) (dual ascent on the
constrained problem max return s.t. mean cost <= cost_limit). The multiplier is logged (training_log.csv
`multiplier`, TensorBoard learner/multiplier) and its final value recorded in model.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecNormalize
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import ProbabilisticActor, ValueOperator
from torchrl.modules.distributions import IndependentNormal
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value.functional import generalized_advantage_estimate

from experiments.learning.rl import (LOG_STD_INIT, StationVecEnv, TrainingRecord, model_description, rollout_steps,
                                     train_into, training_info)
from experiments.controllers.rl_model import save_model
from pev_env.feasibility import action_bound

if TYPE_CHECKING:
    from experiments.commands.config import TrainConfig

GAE_LAMBDA = 0.95
CLIP_EPSILON = 0.2


def critic_inputs(features: np.ndarray, env: StationVecEnv) -> np.ndarray:
    """(stations, 3 inputs): each station's policy inputs, then their mean and max over its plant's stations."""
    pooled = np.empty((features.shape[0], 2 * features.shape[1]), dtype=np.float32)
    for plant in env.plants:
        block = features[plant.slice]
        pooled[plant.slice] = np.concatenate([block.mean(axis=0), block.max(axis=0)])
    return np.concatenate([features, pooled], axis=1).astype(np.float32)


def _mlp(n_in: int, n_out: int, hidden: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), nn.Tanh()]
        n_in = width
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


class _StateIndependentScale(nn.Module):
    """loc from the network, scale = exp(log_std) learned per action (as SB3's PPO)."""

    def __init__(self, net: nn.Sequential) -> None:
        super().__init__()
        self.net = net
        self.log_std = nn.Parameter(torch.full((1,), LOG_STD_INIT))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc = self.net(x)
        return loc, self.log_std.exp().expand_as(loc)


def actor_critic(n_in: int, hidden: tuple[int, ...]) -> tuple[nn.Sequential, ProbabilisticActor, ValueOperator]:
    """The actor's network, the Gaussian actor on it (state-independent scale) and the centralised critic."""
    actor_net = _mlp(n_in, 1, hidden)
    actor = ProbabilisticActor(TensorDictModule(_StateIndependentScale(actor_net), ["observation"], ["loc", "scale"]),
                               in_keys=["loc", "scale"], distribution_class=IndependentNormal, return_log_prob=True)
    return actor_net, actor, ValueOperator(_mlp(3 * n_in, 1, hidden), in_keys=["critic_input"])


def train_mappo(cfg: TrainConfig, progress: bool = True, argv: list[str] | None = None) -> Path:
    """Train MAPPO on cfg.scenarios x cfg.seeds; write the model, training_log.csv, learning_curve.png and tb/."""
    return train_into(cfg, _train, progress, argv)


def _train(cfg: TrainConfig, out: Path, progress: bool, argv: list[str] | None, start: float,
           env: StationVecEnv) -> Path:
    lagrangian = cfg.algo == "mappo-lagrangian"
    if lagrangian:
        env.multiplier = cfg.lagrange_init
    n_steps = rollout_steps(cfg, env.num_envs)
    venv = VecNormalize(env, norm_obs=True, norm_reward=True, clip_obs=10.0, gamma=cfg.gamma)
    actor_net, actor, critic = actor_critic(len(env.inputs), cfg.net_arch)
    loss = ClipPPOLoss(actor, critic, clip_epsilon=CLIP_EPSILON, entropy_coeff=cfg.ent_coef, critic_coeff=0.5,
                       normalize_advantage=True)
    optimiser = torch.optim.Adam(loss.parameters(), lr=cfg.learning_rate)
    record = TrainingRecord(out, env, progress, cfg.timesteps, cfg.algo.upper())
    obs = venv.reset()
    samples = 0
    bound = action_bound(cfg.action_mode)
    while samples < cfg.timesteps:
        for group in optimiser.param_groups:
            group["lr"] = cfg.learning_rate * (1.0 - samples / cfg.timesteps)
        batch, obs, cost = _rollout(venv, env, actor, critic, obs, n_steps, cfg.gamma,
                                    loss.tensor_keys.sample_log_prob, bound)
        samples += batch.numel()
        _update(loss, optimiser, batch, cfg)
        if lagrangian:
            env.multiplier = max(0.0, env.multiplier + cfg.lagrange_lr * (cost - cfg.cost_limit))
            record.extra = {"multiplier": env.multiplier, "batch_cost": cost}
        record.update(samples)
    record.close()
    info = training_info(cfg, argv, env, samples, start)
    info["algorithm_detail"] = {"gae_lambda": GAE_LAMBDA, "clip_epsilon": CLIP_EPSILON,
                                "critic_input": "own features + mean and max of the plant's station features"}
    if lagrangian:
        info["algorithm_detail"]["lagrange_multiplier_final"] = env.multiplier
    tensors = {"obs_mean": venv.obs_rms.mean, "obs_var": venv.obs_rms.var}
    linear = [m for m in actor_net if isinstance(m, nn.Linear)]
    names = [f"actor.{i}" for i in range(len(linear))]
    for name, layer in zip(names, linear):
        tensors[f"{name}.weight"] = layer.weight.detach().numpy()
        tensors[f"{name}.bias"] = layer.bias.detach().numpy()
    algorithm = (f"{cfg.algo}: PPO with a centralised critic (TorchRL ClipPPOLoss + GAE), one shared decentralised "
                 "actor for every station" + ("; overload cost weighted by a Lagrange multiplier learned by dual ascent"
                                              if lagrangian else ""))
    return save_model(out, tensors, model_description(cfg.algo, algorithm, cfg.price_alpha, "tanh", names,
                                                      venv.clip_obs, venv.epsilon, info, cfg.action_mode))


def _rollout(venv: VecNormalize, env: StationVecEnv, actor: ProbabilisticActor, critic: ValueOperator,
             obs: np.ndarray, n_steps: int, gamma: float, log_prob_key: str,
             bound: float) -> tuple[TensorDict, np.ndarray, float]:
    """n_steps steps of every station: a flat TensorDict with advantages and value targets, the last obs and the
    mean overload cost per station-step (`StationVecEnv.costs`)."""
    steps: list[dict[str, np.ndarray]] = []
    cost = 0.0
    # sample the actions: a ProbabilisticActor outside this context returns its mean (no exploration, no learning)
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        for _ in range(n_steps):
            td = TensorDict({"observation": torch.as_tensor(obs),
                             "critic_input": torch.as_tensor(critic_inputs(obs, env))}, batch_size=[len(obs)])
            actor(td)
            critic(td)
            action = td["action"].numpy()
            next_obs, reward, done, infos = venv.step(np.clip(action, -bound, bound))
            cost += float(env.costs.mean()) / n_steps
            final = next_obs.copy()
            for i in np.flatnonzero(done):
                final[i] = venv.normalize_obs(infos[i]["terminal_observation"])
            next_value = critic(TensorDict({"critic_input": torch.as_tensor(critic_inputs(final, env))},
                                           batch_size=[len(obs)]))["state_value"]
            steps.append({**{k: td[k].numpy() for k in ("observation", "critic_input", "action", "state_value")},
                          log_prob_key: td[log_prob_key].numpy(), "reward": reward.astype(np.float32), "done": done, "next_value": next_value.numpy()})
            obs = next_obs
    data = {k: torch.as_tensor(np.stack([s[k] for s in steps], axis=1)) for k in steps[0]}  # (stations, T, ...)
    column = (lambda x: x.reshape(*x.shape[:2], 1))
    advantage, target = generalized_advantage_estimate(
        gamma, GAE_LAMBDA, column(data["state_value"]), column(data["next_value"]), column(data["reward"]),
        column(data["done"]), column(data["done"]))
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in data.items() if k not in ("reward", "done", "next_value")}
    flat["advantage"], flat["value_target"] = advantage.reshape(-1, 1), target.reshape(-1, 1)
    flat["state_value"] = flat["state_value"].reshape(-1, 1)
    return TensorDict(flat, batch_size=[flat["advantage"].shape[0]]), obs, cost


def _update(loss: ClipPPOLoss, optimiser: torch.optim.Optimizer, batch: TensorDict, cfg: TrainConfig) -> None:
    """n_epochs passes of shuffled minibatches through the clipped PPO loss."""
    size = min(cfg.batch_size, batch.numel())
    for _ in range(cfg.n_epochs):
        order = torch.randperm(batch.numel())
        for begin in range(0, batch.numel() - size + 1, size):
            parts = loss(batch[order[begin:begin + size]])
            total = parts["loss_objective"] + parts["loss_critic"] + parts.get("loss_entropy", 0.0)
            optimiser.zero_grad()
            total.backward()
            nn.utils.clip_grad_norm_(loss.parameters(), 0.5)
            optimiser.step()
