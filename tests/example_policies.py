"""A user's own policy for the plug-in tests: duck-typed (no `pev_mpc.policies.Policy` base class)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pev_env.observation import OBS_INDEX


class HalfPower:
    """Every plugged station requests half its p_max."""

    def __init__(self) -> None:
        self.last_stats: dict[str, Any] = {}

    def reset(self, config: Any, scenario: Any = None, seed: int | None = None) -> None:
        self.last_stats = {}

    def act_array(self, obs: np.ndarray) -> np.ndarray:
        plugged = obs[:, OBS_INDEX["plugged"]] > 0.5
        self.last_stats = {"iterations": 0, "converged": True}
        return np.where(plugged, 0.5 * obs[:, OBS_INDEX["p_max"]], 0.0).astype(np.float64)

    def act(self, observations: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        agents = sorted(observations, key=lambda a: int(a.split("_")[1]))
        kw = self.act_array(np.stack([observations[a] for a in agents]))
        return {a: np.array([v], dtype=np.float32) for a, v in zip(agents, kw)}


class NotAPolicy:
    """Lacks act_array."""

    def reset(self, config: Any) -> None:
        """Nothing."""
