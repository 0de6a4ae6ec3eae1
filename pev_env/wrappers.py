"""Learning wrappers: the station features, the action mapping and the metric-aligned training reward of
`pev_env.learning` around the PettingZoo and Gymnasium plants, for any RL library.

* `StationLearningWrapper` (PettingZoo ParallelEnv): each agent observes its `station_features`
  (N_FEATURES,; with `price_alpha` > 0 also the area price of `pev_env.learning.AreaPrice`), acts with a in [-1, 1] (1,) mapped to kW by `action_to_kw`, and is rewarded by
  `station_rewards`; `state()` stays the plant's global state (for a centralised critic).
* `StationLearningGymWrapper` (Gymnasium, all stations as one agent): the features of every station
  flattened (N * N_FEATURES,), actions (N,) in [-1, 1], reward the sum of the station rewards.

`pev-experiments train` uses the same functions on its fast array path (`experiments.learning.rl.StationVecEnv`),
so a policy trained through these wrappers (e.g. SuperSuit + Stable-Baselines3) is the same kind of agent,
and can be saved and run by the harness (`experiments.learning.rl`, `experiments.controllers.rl_model`). The features are
scale-free but unbounded (Box(-inf, inf)): normalise them by running statistics (SB3's VecNormalize) as
the trainer does.

`action_mode` (`pev_env.feasibility.ACTION_MODES`): `raw` (default) maps a to kW as above; `safe`, `safe-rate` and
`residual` pass the actions through the feasibility layer (`FeasibilityLayer`) on the plant's network, so no step
exceeds the area limit or a network constraint; their agents also observe `pev_env.learning.SAFE_FEATURES`. The
step infos hold `layer_asked_kw`, what the actions asked for before the layer, beside `requested_kw`, what it
granted (the plant's request): their difference is what the layer withheld.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from pettingzoo.utils.wrappers import BaseParallelWrapper

from pev_env.feasibility import FeasibilityLayer, action_bound, check_action_mode
from pev_env.learning import AreaPrice, RewardWeights, input_names, overload_fraction, policy_inputs, station_rewards

ACTION_BOX = spaces.Box(-1.0, 1.0, (1,), np.float32)
"""The action of one learning station: a in [-1, 1] -> (a + 1) / 2 of its p_max (see `action_to_kw`)."""


def action_box(mode: str, n: int = 1) -> spaces.Box:
    """The actions of `n` stations in action mode `mode`: [-1, 1] for a rate, +-SCORE_BOUND for a score."""
    bound = action_bound(mode)
    return spaces.Box(-bound, bound, (n,), np.float32)


def feature_box(n_inputs: int) -> spaces.Box:
    """Box of `n_inputs` policy inputs (unbounded: normalise them by running statistics)."""
    return spaces.Box(-np.inf, np.inf, (n_inputs,), np.float32)


class _Inputs:
    """The policy inputs of every station, with the area price of a price-informed agent (reset per episode), and
    the feasibility layer that turns the actions into kW on the plant's network (rebuilt per episode)."""

    def __init__(self, price_alpha: float, action_mode: str) -> None:
        self.mode = check_action_mode(action_mode)
        self.names = input_names(price_alpha, action_mode)
        self.price = AreaPrice(price_alpha) if price_alpha > 0 else None
        self.raw: np.ndarray | None = None
        self.layer: FeasibilityLayer | None = None

    def reset(self, env: Any) -> None:
        self.layer = FeasibilityLayer(self.mode, env.unwrapped.core.network)
        if self.price is not None:
            self.price.reset()

    def __call__(self, raw: np.ndarray, config: Any) -> np.ndarray:
        self.raw = raw
        return policy_inputs(raw, config, self.price, self.mode)

    def kw(self, action: Any, config: Any) -> np.ndarray:
        """Powers (N,) kW of the actions (N,) at the last observation (`pev_env.feasibility`)."""
        if self.raw is None or self.layer is None:
            raise RuntimeError("step: call reset() first")
        return self.layer(np.asarray(action, dtype=np.float64).reshape(-1), self.raw, config)

    def asked_kw(self) -> np.ndarray:
        """(N,) kW the last actions asked for before the feasibility layer (`FeasibilityLayer.asked_kw`)."""
        return self.layer.asked_kw


class StationLearningWrapper(BaseParallelWrapper):
    """PettingZoo: station features in, a in [-1, 1] out, the training reward of `pev_env.learning` per agent."""

    def __init__(self, env: Any, weights: RewardWeights = RewardWeights(), price_alpha: float = 0.0,
                 action_mode: str = "raw") -> None:
        super().__init__(env)
        self.weights = weights
        self.inputs = _Inputs(price_alpha, action_mode)
        self._feature_box = feature_box(len(self.inputs.names))
        self._action_box = action_box(action_mode)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._feature_box

    def action_space(self, agent: str) -> spaces.Box:
        return self._action_box

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs, infos = self.env.reset(seed=seed, options=options)
        self.inputs.reset(self.env)
        return self._features(obs), infos

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        agents, raw, cfg = list(self.env.possible_agents), self.inputs.raw, self.env.config
        kw = self.inputs.kw(self.env.unwrapped.stacked_actions(actions, unit="in [-1, 1]"), cfg)
        obs, _, terminations, truncations, infos = self.env.step({a: np.array([k]) for a, k in zip(agents, kw)})
        for agent, asked in zip(agents, self.inputs.asked_kw()):
            infos[agent]["layer_asked_kw"] = float(asked)
        applied = np.array([infos[a]["applied_kw"] for a in agents])
        rewards = station_rewards(raw, applied, overload_fraction(infos[agents[0]], cfg), cfg, self.weights)
        return self._features(obs), dict(zip(agents, rewards.tolist())), terminations, truncations, infos

    def _features(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        agents = list(self.env.possible_agents)
        return dict(zip(agents, self.inputs(np.stack([obs[a] for a in agents]), self.env.config)))


class StationLearningGymWrapper(gym.Wrapper):
    """Gymnasium: every station's features (flattened), actions (N,) in [-1, 1], the summed training reward."""

    def __init__(self, env: gym.Env, weights: RewardWeights = RewardWeights(), price_alpha: float = 0.0,
                 action_mode: str = "raw") -> None:
        super().__init__(env)
        n = env.unwrapped.config.n_stations
        self.weights = weights
        self.inputs = _Inputs(price_alpha, action_mode)
        self.observation_space = feature_box(n * len(self.inputs.names))
        self.action_space = action_box(action_mode, n)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        self.inputs.reset(self.env)
        return self._features(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        raw, cfg = self.inputs.raw, self.env.unwrapped.config
        obs, _, terminated, truncated, info = self.env.step(self.inputs.kw(action, cfg))
        info = {**info, "layer_asked_kw": self.inputs.asked_kw()}
        reward = station_rewards(raw, info["applied_kw"], overload_fraction(info, cfg), cfg, self.weights)
        return self._features(obs), float(reward.sum()), terminated, truncated, info

    def _features(self, obs: np.ndarray) -> np.ndarray:
        cfg = self.env.unwrapped.config
        return self.inputs(np.asarray(obs).reshape(cfg.n_stations, -1), cfg).reshape(-1)
