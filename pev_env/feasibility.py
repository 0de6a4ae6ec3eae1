"""The feasibility layer of the learned agents: one number per station -> powers that keep the area limit and every
constraint of the site network (`pev_env.network.Network`), by the heuristics' own fill (`pev_env.allocation`).

The shared actor stays decentralised (each station computes its number from its own observation); the layer is
the site's allocator, like the smart panel that runs EDF or LLF: it sees every station's number and the network,
and grants the powers. Action modes (`ACTION_MODES`, recorded in model.json as `action_mode`):

* `raw`: a in [-1, 1] -> `action_to_kw` (the request goes to the plant as it is; it may exceed a limit, which the
  training reward penalises). The controllers `ppo`, `mappo`, `ppo-price`, `mappo-price`.
* `safe`: a is a *score*. Stations in order of decreasing score each take the largest rate up to the power that
  finishes their PEV this step (capped at p_max) that keeps every constraint feasible given the rates already
  granted (`sorted_fill`; on the area limit alone `priority_fill` of P_ref). LLF is this rule with the score
  -laxity; the learned score sees `laxity_log` (a monotone transform of LLF's key), so the actor can represent
  LLF's order exactly (one unit), and EDF's from `log_steps_to_departure`. Controllers `<algo>-safe`.
* `safe-rate`: a -> the requested rate `action_to_kw(a)`; requests that keep every constraint are applied as they
  are, otherwise each is capped by the fill in order of decreasing a (so safe-rate and raw differ only at steps
  where raw would exceed a limit). Controllers `<algo>-safe-rate`.
* `residual`: score = -laxity_log + a: residual RL on LLF's key (the policy learns a correction of the
  least-laxity order; a = 0 is LLF). A separate controller, `<algo>-residual`, reported as such.

The floors p_min of plugged stations are applied by the plant anyway; the layer fills above them. If the floors
alone exceed a limit no rate can help, and the plant records the violation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pev_env.allocation import priority_fill, sorted_fill
from pev_env.arrays import require_finite
from pev_env.learning import action_to_kw, laxity_log, need_kw
from pev_env.network import Network
from pev_env.observation import OBS_INDEX

RAW = "raw"
SAFE = "safe"
SAFE_RATE = "safe-rate"
RESIDUAL = "residual"
ACTION_MODES: tuple[str, ...] = (RAW, SAFE, SAFE_RATE, RESIDUAL)
"""How a station's action becomes power (module doc)."""
SCORE_MODES = (SAFE, RESIDUAL)
"""The modes whose action is a score (the order of the fill), not a rate."""


SCORE_BOUND = 100.0
"""Scores are clipped to [-SCORE_BOUND, SCORE_BOUND] (the learners want a finite action box; the actors' scores
stay far inside it: only their order matters)."""


def action_bound(mode: str) -> float:
    """The bound of a station's action: 1 for a rate in [-1, 1] (raw, safe-rate), SCORE_BOUND for a score."""
    return SCORE_BOUND if mode in SCORE_MODES else 1.0


def check_action_mode(mode: str, key: str = "action_mode") -> str:
    """`mode` if it is one of ACTION_MODES, else ValueError naming `key`, the value and the allowed modes."""
    if mode not in ACTION_MODES:
        raise ValueError(f"{key} = {mode!r}: allowed values: {', '.join(ACTION_MODES)}")
    return mode


def _is_area(network: Network) -> bool:
    """One row of gain 1 at every station: the area limit P_ref (filled as a budget)."""
    return network.n_constraints == 1 and bool(np.all(network.gain == 1))


def fill_in_order(network: Network, floor: np.ndarray, extra: np.ndarray, score: np.ndarray) -> np.ndarray:
    """floor + the extra powers (N,) kW granted in order of decreasing `score` (ties: station index), each the
    largest rate <= extra that keeps every constraint of `network` within its limit."""
    order = np.lexsort((np.arange(score.size), -np.asarray(score, dtype=np.float64)))
    if _is_area(network):
        return floor + priority_fill(extra, float(network.limit[0]) - float(floor.sum()), order)
    return floor + sorted_fill(network, floor, extra, order)


def feasible(network: Network, p_kw: np.ndarray) -> bool:
    """True when powers p (N,) kW keep every constraint of `network` within its limit (no tolerance)."""
    return bool(np.all(network.loads(p_kw) <= network.limit))


class FeasibilityLayer:
    """Actions (N,) of the shared actor -> powers (N,) kW by `mode` on `network` (the plant's, `core.network`)."""

    def __init__(self, mode: str, network: Network) -> None:
        self.mode = check_action_mode(mode)
        self.network = network
        self.asked_kw = np.zeros(0)
        """(N,) kW the last actions asked for before the layer: the requests of a rate (raw, safe-rate), the power
        that finishes each PEV (capped at p_max) for a score; minus the returned powers: what the layer withheld."""

    def __call__(self, action: np.ndarray, obs: np.ndarray, config: Any) -> np.ndarray:
        """Powers (N,) kW for actions (N,) at observations (N, N_OBS) of a plant with constants `config`."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        require_finite("action", a, "a learned action must be finite")
        if self.mode == RAW:
            self.asked_kw = action_to_kw(a, obs, config)
            return self.asked_kw
        o = np.asarray(obs, dtype=np.float64)
        plugged = o[:, OBS_INDEX["plugged"]] > 0.5
        floor = np.where(plugged, o[:, OBS_INDEX["p_min"]], 0.0)
        if self.mode == SAFE_RATE:
            self.asked_kw = action_to_kw(a, obs, config)
            if feasible(self.network, self.asked_kw):
                return self.asked_kw
            return fill_in_order(self.network, floor, np.maximum(self.asked_kw - floor, 0.0), a)
        a = np.clip(a, -SCORE_BOUND, SCORE_BOUND)
        score = a - laxity_log(obs, config.eta, config.dt_h) if self.mode == RESIDUAL else a
        extra = np.maximum(need_kw(obs, config) - floor, 0.0)
        self.asked_kw = floor + extra
        return fill_in_order(self.network, floor, extra, score)
