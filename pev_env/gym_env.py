"""Gymnasium Env of the plant: one Box action for all stations (centralised control / single-agent RL)."""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from pev_env.config import EnvConfig
from pev_env.core import ChargingCore, EpisodeSource
from pev_env.observation import N_OBS, obs_bounds
from pev_env.parallel_env import RENDER_MODES, check_render_mode, render_state
from pev_env.scenario import Scenario


class PEVChargeGymEnv(gym.Env):
    """The PEV charging plant as one Gymnasium agent that sets every station's power.

    Same dynamics, scenarios and arguments as ``pev_env.PEVChargeEnv`` (see its docstring
    for the observation table).

    * Action: ``Box(0, p_max, (N,), float32)`` (p_max per station), requested kW per station; values outside
      the box are clipped and counted as local violations, NaN/inf raise ValueError.
    * Observation: the (N, N_OBS) per-station observations flattened row-major to
      ``Box(low, high, (N * N_OBS,), float32)`` (finite bounds of ``pev_env.observation.obs_bounds``); station i's
      fields are ``obs[i*N_OBS:(i+1)*N_OBS]``.
    * Reward: the sum over stations of the per-station rewards (``pev_env.reward``);
      ``config.shared_reward`` does not change it.
    * Episode end: ``truncated=True`` after ``config.n_steps`` steps (never ``terminated``).
    * ``info``: the core's raw step quantities (t, requested_kw, applied_kw, area_power_kw,
      area_overload_kw, area_violation, local_violation, station_rewards, network_load, network_overload_pct).
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}

    def __init__(self, config: EnvConfig | None = None, scenario: Scenario | None = None,
                 scenario_name: str | None = None, render_mode: str | None = None) -> None:
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self.source = EpisodeSource(config, scenario, scenario_name)
        self.config = self.source.config
        n = self.config.n_stations
        p_max = self.config.station_p_max
        low, high = obs_bounds(self.config, self.source.network)
        self.observation_space = spaces.Box(low.reshape(-1), high.reshape(-1), (n * N_OBS,), np.float32)
        self.action_space = spaces.Box(np.zeros(n, np.float32), p_max.astype(np.float32), (n,), np.float32)
        self.core: ChargingCore | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.core = self.source.start(seed, self.core)
        self.config = self.core.config
        obs = self.core.observations
        return obs.reshape(-1), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.core is None:
            raise RuntimeError("PEVChargeGymEnv.step: call reset() first")
        result = self.core.step(action)
        reward = float(result.info["station_rewards"].sum())
        return result.observations.reshape(-1), reward, False, result.terminated, result.info

    def render(self) -> np.ndarray | str | None:
        """The current state in ``render_mode`` (``pev_env.parallel_env.render_state``)."""
        return render_state(self.core, self.render_mode)
