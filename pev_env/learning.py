"""What one learning station sees, does and is rewarded for (the plant is unchanged).

Everything here is per station and uses only that station's observation plus the plant constants
every controller knows (p_max, eta, dt_h), so the shared policy stays decentralised. The same functions
serve the PettingZoo/Gymnasium wrappers (`pev_env.wrappers`), the in-package trainer's array path
(`experiments.learning.rl`) and the saved policies (`experiments.controllers.rl_model`).

* `station_features`: scale-free features of the station's own observation (fractions of p_max,
  P_ref and departure time), so one policy serves plants with 22 kW and 6.6 kW stations alike.
* `action_to_kw`: a in [-1, 1] -> request (a + 1) / 2 * p_max, capped by the power that finishes the
  PEV this step and raised to p_min; free stations request 0.
* `AreaPrice`: the optional price signal of price-informed agents: an area coordinator updates a price
  each step from the area residual, lambda <- max(0, lambda + alpha (P - P_ref) / P_ref) (P: the area power
  of the last step, as every station observes it), and broadcasts it; `with_price` appends it to the
  features. The same kind of signal the decentralised MPC's coordinator sends, so RL and MPC then differ
  only in how a station responds to prices.
* `station_rewards`: the training reward, aligned with the evaluation metrics: energy delivered
  towards the target this step (`station_progress`; summed over an episode it is the requested energy minus the
  unmet energy), minus a penalty on the power a station draws while a shared limit is exceeded: the area limit
  P_ref or any network constraint (`overload_cost`, scaled by `overload_fraction`; MAPPO-Lagrangian weights
  the cost by a learned multiplier instead).
* `laxity_log`, `safe_features` (SAFE_FEATURES): the extra inputs of the actors of the feasibility layer
  (`pev_env.feasibility`): LLF's key in a monotone transform, and the network headroom.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pev_env.observation import OBS_INDEX

FEATURES: tuple[str, ...] = (
    "plugged",            # {0, 1}
    "need_frac",          # power that finishes the PEV this step / p_max
    "rate_needed_frac",   # mean power that finishes the PEV by departure / p_max (clipped to 4)
    "laxity_frac",        # (steps to departure - steps needed at p_max) / steps to departure, in [-1, 1]
    "log_steps_to_departure",
    "area_frac",          # last area power P / P_ref
    "headroom_frac",      # (P_ref - P) / p_max: full-power stations that still fit under the limit
    "last_frac",          # power applied here last step / p_max
    "scaled_last_frac",   # last power scaled so that every station scaling alike would meet P_ref, / p_max
    "limit_frac",         # P_ref / p_max
    "just_plugged",       # plugged and drew nothing last step
)
N_FEATURES = len(FEATURES)
SAFE_FEATURES: tuple[str, ...] = (
    "laxity_log",         # sign(l) log(1 + |l|) of the laxity l = steps to departure - steps needed at p_max (LLF's key)
    "network_headroom_frac",  # the observed network_headroom / p_max (clipped to [-4, 4]): room on the tightest constraint
)
"""Inputs added for the actors of the feasibility layer (`pev_env.feasibility`, every action mode but raw): a
monotone transform of LLF's key, so a learned score can represent LLF's order, and the network headroom."""
_MAX_RATE = 4.0


def laxity_log(obs: np.ndarray, eta: float, dt_h: float) -> np.ndarray:
    """(N,) sign(l) log(1 + |l|) of each station's laxity l = steps to departure - steps needed at p_max (the key
    of LLF, `pev_mpc.policies.LLF`, in a strictly monotone transform); 0 where free."""
    o = np.asarray(obs, dtype=np.float64)
    plugged, _, p_max, remain = _station(o)
    per_step = eta * dt_h * p_max
    needed = np.divide(remain, per_step, out=np.zeros_like(per_step), where=per_step > 0)
    lax = np.where(plugged, np.maximum(o[:, OBS_INDEX["steps_to_departure"]], 0.0) - needed, 0.0)
    return np.sign(lax) * np.log1p(np.abs(lax))


def safe_features(obs: np.ndarray, eta: float, dt_h: float) -> np.ndarray:
    """(N, len(SAFE_FEATURES)) float32: `laxity_log` and the network headroom / p_max of each station."""
    o = np.asarray(obs, dtype=np.float64)
    headroom = o[:, OBS_INDEX["network_headroom"]] / np.maximum(o[:, OBS_INDEX["p_max"]], 1e-9)
    return np.stack([laxity_log(o, eta, dt_h), np.clip(headroom, -_MAX_RATE, _MAX_RATE)], axis=1).astype(np.float32)


def station_features(obs: np.ndarray, eta: float, dt_h: float) -> np.ndarray:
    """(N, N_FEATURES) float32 features of each station's own observation row (see FEATURES)."""
    o = np.asarray(obs, dtype=np.float64)
    p_max = np.maximum(o[:, OBS_INDEX["p_max"]], 1e-9)
    plugged = (o[:, OBS_INDEX["plugged"]] > 0.5).astype(np.float64)
    remain = np.maximum(o[:, OBS_INDEX["soc_remain"]], 0.0) * plugged
    to_go = np.maximum(o[:, OBS_INDEX["steps_to_departure"]], 0.0) * plugged
    area, last, limit = o[:, OBS_INDEX["P"]], o[:, OBS_INDEX["action_last"]], o[:, OBS_INDEX["P_ref"]]
    per_step = eta * dt_h * p_max  # kWh per step at full power
    steps_needed = remain / per_step
    safe_to_go = np.maximum(to_go, 1.0)
    limit_safe = np.maximum(limit, 1e-9)
    columns = (
        plugged,
        np.minimum(steps_needed, 1.0) * plugged,
        np.minimum(steps_needed / safe_to_go, _MAX_RATE) * plugged,
        np.clip((to_go - steps_needed) / safe_to_go, -1.0, 1.0) * plugged,
        np.log1p(to_go),
        area / limit_safe,
        (limit - area) / p_max,
        last / p_max,
        np.minimum(last * limit / np.maximum(area, 1e-9), limit) / p_max,
        limit / p_max,
        plugged * (last <= 1e-9),
    )
    return np.stack(columns, axis=1).astype(np.float32)


PRICE_FEATURE = "area_price"


class AreaPrice:
    """The area coordinator's price (dimensionless): lambda <- max(0, lambda + alpha (P - P_ref) / P_ref)."""

    def __init__(self, alpha: float) -> None:
        if not alpha > 0:
            raise ValueError(f"AreaPrice.alpha = {alpha!r}: must be > 0")
        self.alpha, self.value = alpha, 0.0

    def reset(self) -> None:
        self.value = 0.0

    def update(self, obs: np.ndarray) -> float:
        """The price after observing `obs` (N, N_OBS): the area power P of the last step against P_ref."""
        o = np.asarray(obs, dtype=np.float64)
        area, limit = float(o[0, OBS_INDEX["P"]]), max(float(o[0, OBS_INDEX["P_ref"]]), 1e-9)
        self.value = max(0.0, self.value + self.alpha * (area - limit) / limit)
        return self.value


def with_price(features: np.ndarray, price: float) -> np.ndarray:
    """The features (N, N_FEATURES) with the broadcast price appended as the last column."""
    return np.concatenate([features, np.full((features.shape[0], 1), price, dtype=features.dtype)], axis=1)


def input_names(price_alpha: float = 0.0, action_mode: str = "raw") -> list[str]:
    """Names of the policy inputs: FEATURES, then SAFE_FEATURES unless `action_mode` is raw, then the price when
    `price_alpha` > 0."""
    names = list(FEATURES) if action_mode == "raw" else [*FEATURES, *SAFE_FEATURES]
    return [*names, PRICE_FEATURE] if price_alpha > 0 else names


def policy_inputs(obs: np.ndarray, config: Any, price: AreaPrice | None = None,
                  action_mode: str = "raw") -> np.ndarray:
    """The inputs of the shared policy at observations `obs` (N, N_OBS) (`input_names`): the station features,
    the SAFE_FEATURES of an actor of the feasibility layer and, for a price-informed agent, the price after this
    observation (`price` is updated: call once per step)."""
    features = station_features(obs, config.eta, config.dt_h)
    if action_mode != "raw":
        features = np.concatenate([features, safe_features(obs, config.eta, config.dt_h)], axis=1)
    return features if price is None else with_price(features, price.update(obs))


def _station(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(plugged, p_min, p_max, soc_remain) float64 views of the observed rows; soc_remain is 0 when free."""
    o = np.asarray(obs, dtype=np.float64)
    plugged = o[:, OBS_INDEX["plugged"]] > 0.5
    remain = np.where(plugged, np.maximum(o[:, OBS_INDEX["soc_remain"]], 0.0), 0.0)
    return plugged, o[:, OBS_INDEX["p_min"]], o[:, OBS_INDEX["p_max"]], remain


def action_to_kw(action: np.ndarray, obs: np.ndarray, config: Any) -> np.ndarray:
    """Requested powers (N,) kW for actions in [-1, 1] (N,) at observations (N, N_OBS):
    clip((a+1)/2 * p_max, p_min, max(p_min, need)) while plugged (need: the power that finishes the PEV this
    step, at most p_max), else 0."""
    plugged, p_min, p_max, _ = _station(obs)
    fraction = (np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0) + 1.0) / 2.0
    return np.where(plugged, np.clip(fraction * p_max, p_min, np.maximum(need_kw(obs, config), p_min)), 0.0)


def need_kw(obs: np.ndarray, config: Any) -> np.ndarray:
    """(N,) kW: the power that finishes each plugged PEV this step, at most p_max (0 where free)."""
    plugged, _, p_max, remain = _station(obs)
    return np.minimum(p_max, remain / (config.eta * config.dt_h)) * plugged


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the training reward (dimensionless; energies in units of one full-power step)."""

    violation: float = 8.0
    """Penalty per full-power step drawn while a shared limit is exceeded (P_ref or a network constraint)."""
    overload: float = 3.0
    """Extra penalty per full-power step drawn, per unit of relative overload (`overload_fraction`)."""

    def __post_init__(self) -> None:
        for name in ("violation", "overload"):
            if getattr(self, name) < 0:
                raise ValueError(f"RewardWeights.{name} = {getattr(self, name)!r}: must be >= 0")


def station_rewards(obs: np.ndarray, applied_kw: np.ndarray, overload: float, config: Any,
                    weights: RewardWeights = RewardWeights()) -> np.ndarray:
    """(N,) training rewards for one step: progress - (violation + overload * `overload`) * applied/p_max.

    `obs` (N, N_OBS) is the observation the step acted on (its soc_remain is the energy still missing before
    the step), `applied_kw` the powers the plant applied and `overload` the step's worst relative overload
    of a shared limit (`overload_fraction`: the area limit or any network constraint; 0 when none is exceeded).
    Progress is the energy delivered towards the target, min(eta dt_h applied, soc_remain), divided by
    the energy of one full-power step eta dt_h p_max.
    """
    progress = station_progress(obs, applied_kw, config)
    if overload <= 0.0:
        return progress
    severity = weights.violation + weights.overload * overload
    return progress - severity * overload_cost(obs, applied_kw, True)


def overload_fraction(info: dict[str, Any], config: Any) -> float:
    """The step's worst relative overload of a shared limit, from the plant's step info: the larger of the area
    power above P_ref / P_ref and the largest (load - limit) / limit of a network constraint; 0 when none is
    exceeded. On the `area` network the only constraint is the area limit, and its relative overload is used."""
    area = info["area_overload_kw"] / max(config.P_ref, 1e-9)
    return area if config.network == "area" else max(area, info["network_overload_pct"] / 100.0)


def station_progress(obs: np.ndarray, applied_kw: np.ndarray, config: Any) -> np.ndarray:
    """(N,) energy delivered towards the target this step, min(eta dt_h applied, soc_remain), in units of one
    full-power step eta dt_h p_max (`obs`: the observation the step acted on)."""
    _, _, p_max, remain = _station(obs)
    applied = np.asarray(applied_kw, dtype=np.float64)
    full_step = config.eta * config.dt_h * np.maximum(p_max, 1e-9)
    return np.minimum(config.eta * config.dt_h * applied, remain) / full_step


def overload_cost(obs: np.ndarray, applied_kw: np.ndarray, exceeded: bool) -> np.ndarray:
    """(N,) the constraint cost of one step: each station's power / p_max while a limit is `exceeded` (the area
    limit or any network constraint), else 0. The penalty of `station_rewards` and the cost of MAPPO-Lagrangian."""
    if not exceeded:
        return np.zeros(np.asarray(applied_kw).shape)
    return np.asarray(applied_kw, dtype=np.float64) / np.maximum(_station(obs)[2], 1e-9)
