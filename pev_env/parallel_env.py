"""PettingZoo ParallelEnv of the plant: agents are charging stations."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from pev_env.config import EnvConfig
from pev_env.core import ChargingCore, EpisodeSource
from pev_env.observation import N_OBS, global_state, obs_bounds, state_bounds
from pev_env.scenario import Scenario


RENDER_MODES: tuple[str, ...] = ("rgb_array", "ansi", "human")


class PEVChargeEnv(ParallelEnv):
    """PEV charging in a load area; every charging station ``cs_i`` is an agent.

    A PEV plugs into the first free station at its arrival step and leaves at its departure
    step (``pev_env.schedule``).  Each step, every station requests a power; the plant
    applies it clipped to [p_min, p_max] while a PEV is plugged (0 while free) and charges
    the battery by ``eta * dt_h * power`` up to its capacity.  The area limit P_ref is not
    enforced: the sum of applied powers may exceed it and each such step is recorded; so are the
    loads of the site network's constraints (``config.network``, ``pev_env.network``), never enforced.

    ## Action space

    ``Box(0, p_max_i, (1,), float32)`` per agent: requested power in kW (p_max of that station).  Values outside the
    box are accepted, clipped, and counted as local violations; NaN/inf raise ValueError.

    ## Observation space

    ``Box(low, high, (11,), float32)`` per agent (``pev_env.observation.OBS_FIELDS``), with finite bounds
    derived from the config and the site network (``pev_env.observation.obs_bounds``; every low is 0 but
    ``network_headroom``'s, which is negative). ``network_headroom`` is the power the station alone could
    still add before a constraint it loads reaches its limit, under the last applied powers (exact on linear
    rows, a lower bound on three-phase cones; p_max when it loads none):

    | index | name | unit | description |
    |---|---|---|---|
    | 0 | `p_min` | kW | minimum station power while plugged |
    | 1 | `p_max` | kW | maximum station power while plugged |
    | 2 | `P_max` | kW | maximum area power |
    | 3 | `P_min` | kW | minimum area power |
    | 4 | `plugged` | {0,1} | 1 when a PEV is plugged at the station during this step |
    | 5 | `soc_remain` | kWh | max(target - soc, 0) of the plugged PEV, 0 when free |
    | 6 | `P` | kW | area power applied in the last step (sum over stations) |
    | 7 | `action_last` | kW | power applied at this station in the last step |
    | 8 | `P_ref` | kW | area power limit for this step |
    | 9 | `steps_to_departure` | steps | departure - t of the plugged PEV, 0 when free |
    | 10 | `network_headroom` | kW | least (limit - load) / abs(gain) over its network constraints (< 0: exceeded): the constraints' room for this station alone, not capped by its rating `p_max` |

    ## Global state (centralised training)

    ``state()`` is the stacked observations of every station (row-major, ``N * 11`` values), the episode
    progress ``t / n_steps``, then the load of each of the J constraints of the site network under the last
    applied powers (``env.core.network.names``, units ``env.core.network.units``: A or kW; 0 after a reset), in
    ``state_space`` (``pev_env.observation.state_bounds``): what a centralised critic (MAPPO, QMIX, ...) sees.
    The stations still act on their own observations.

    ## Rewards

    The seed's weighted penalties (``pev_env.reward``): remaining SOC, local limit, area
    limit.  With ``config.shared_reward`` every agent receives the mean over stations.

    ## Episode end

    After ``config.n_steps`` steps every agent is truncated and ``agents`` becomes empty.
    ``infos[agent]`` carries the raw step quantities of the Gymnasium env's ``info``, per agent: t,
    requested_kw, applied_kw, local_violation and station_reward (its own reward, unshared) of the station;
    area_power_kw, area_overload_kw, area_violation of the area; network_load (a tuple, one load per constraint
    of the site network) and network_overload_pct (the largest relative overload of a constraint, 0 when none).

    ## Arguments

    ``config`` (EnvConfig, base of a named scenario), ``scenario`` (fixed Scenario; then
    ``reset`` replays it; without ``config`` the plant is derived from it, ``pev_env.plant``; a
    ``config`` that disagrees with it raises ValueError), ``scenario_name`` (``pev_env.scenarios``
    name or spec, default ``"seed"``, redrawn from the seed at every ``reset``), ``render_mode``
    (None; ``"rgb_array"``: the frame of ``pev_env.render``; ``"ansi"``: a text line per station;
    ``"human"``: that text printed).
    """

    metadata = {"render_modes": list(RENDER_MODES), "name": "pev_charge_v0", "is_parallelizable": True,
                "render_fps": 4}

    def __init__(self, config: EnvConfig | None = None, scenario: Scenario | None = None,
                 scenario_name: str | None = None, render_mode: str | None = None) -> None:
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self.source = EpisodeSource(config, scenario, scenario_name)
        self.config = self.source.config
        self.possible_agents = [f"cs_{i}" for i in range(self.config.n_stations)]
        self.agents: list[str] = []
        p_max = self.config.station_p_max
        low, high = obs_bounds(self.config, self.source.network)
        self.observation_spaces = {a: spaces.Box(low[i], high[i], (N_OBS,), np.float32)
                                   for i, a in enumerate(self.possible_agents)}
        self.state_space = spaces.Box(*state_bounds(self.config, self.source.network), dtype=np.float32)
        self.action_spaces = {a: spaces.Box(0.0, float(p_max[i]), (1,), np.float32)
                              for i, a in enumerate(self.possible_agents)}
        self.core: ChargingCore | None = None

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        return self.action_spaces[agent]

    def state(self) -> np.ndarray:
        """The global state (``state_space``): every station's observation, t / n_steps, then the network loads."""
        if self.core is None:
            raise RuntimeError("PEVChargeEnv.state: call reset() first")
        return global_state(self.core.observations, self.core.t, self.config.n_steps, self.core.network_load)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start an episode: replay the fixed scenario or draw the named one from ``seed``."""
        self.core = self.source.start(seed, self.core)
        self.config = self.core.config
        obs = self.core.observations
        self.agents = list(self.possible_agents)
        return dict(zip(self.agents, obs)), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """Apply one action (requested kW, shape (1,)) per agent."""
        if not self.agents:
            raise RuntimeError("PEVChargeEnv.step: no live agents; call reset()")
        result = self.core.step(self.stacked_actions(actions))
        agents = self.agents
        done = result.terminated
        info = result.info
        t, area, overload = info["t"], result.area_power_kw, result.area_overload_kw
        network, load = info["network_overload_pct"], tuple(info["network_load"].tolist())
        infos = {a: {"t": t, "requested_kw": r, "applied_kw": p, "local_violation": v, "station_reward": w,
                     "area_power_kw": area, "area_overload_kw": overload, "area_violation": bool(info["area_violation"]),
                     "network_load": load, "network_overload_pct": network}
                 for a, r, p, v, w in zip(agents, info["requested_kw"].tolist(), result.applied_kw.tolist(),
                                          result.local_violation.tolist(), info["station_rewards"].tolist())}
        observations = dict(zip(agents, result.observations))
        rewards = dict(zip(agents, result.rewards.tolist()))
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, done)
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def stacked_actions(self, actions: dict[str, Any], unit: str = "kW") -> np.ndarray:
        """(N,) the actions of a dict agent -> action of shape (1,), in the order of `possible_agents`; a missing
        or unknown agent, or an action that is not one number, is a ValueError naming it (`unit` for the message)."""
        if not isinstance(actions, Mapping):
            raise ValueError(f"actions: got {type(actions).__name__}; expected a dict agent -> action of shape (1,)")
        if actions.keys() != self.action_spaces.keys():
            missing = [a for a in self.agents if a not in actions]
            unknown = [a for a in actions if a not in self.action_spaces]
            raise ValueError(f"actions: missing agents {missing[:5]}, unknown agents {unknown[:5]}; "
                             f"expected one action per agent in {self.agents[:3]}...")
        try:
            requests = np.array([actions[a] for a in self.possible_agents], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"actions: every action must be a number or an array of shape (1,) {unit} ({exc})") from exc
        if requests.shape not in ((self.config.n_stations,), (self.config.n_stations, 1)):
            raise ValueError(f"actions: stacked shape {requests.shape}; each action must have shape (1,) {unit}")
        return requests.reshape(-1)

    def render(self) -> np.ndarray | str | None:
        """The current state in ``render_mode`` (``render_state``)."""
        return render_state(self.core, self.render_mode)

    def close(self) -> None:
        """Nothing to release."""


def check_render_mode(render_mode: str | None, allowed: list[str]) -> str | None:
    """Return ``render_mode`` when it is None or in ``allowed``; else raise ValueError."""
    if render_mode is not None and render_mode not in allowed:
        raise ValueError(f"render_mode = {render_mode!r}: must be None or one of {allowed}")
    return render_mode


def render_state(core: ChargingCore | None, render_mode: str | None) -> np.ndarray | str | None:
    """After a reset: ``"rgb_array"`` the frame of ``pev_env.render.render_frame``, ``"ansi"`` the text of
    ``render_text``, ``"human"`` that text printed (returns None); None before a reset or without a mode."""
    if render_mode is None or core is None:
        return None
    from pev_env.render import render_frame, render_text

    if render_mode == "rgb_array":
        return render_frame(core)
    text = render_text(core)
    if render_mode == "ansi":
        return text
    print(text)
    return None


def parallel_env(**kwargs: Any) -> PEVChargeEnv:
    """PettingZoo-style constructor: ``pev_env.parallel_env(scenario_name="seed-20")``."""
    return PEVChargeEnv(**kwargs)
