"""Per-station observation: named float32 fields (the seed's 8, then P_ref and steps to departure)."""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from pev_env.config import EnvConfig


class ObsField(NamedTuple):
    name: str
    unit: str
    description: str


OBS_FIELDS: tuple[ObsField, ...] = (
    ObsField("p_min", "kW", "minimum station power while plugged"),
    ObsField("p_max", "kW", "maximum station power while plugged"),
    ObsField("P_max", "kW", "maximum area power"),
    ObsField("P_min", "kW", "minimum area power"),
    ObsField("plugged", "{0,1}", "1 when a PEV is plugged at the station during this step"),
    ObsField("soc_remain", "kWh", "max(target - soc, 0) of the plugged PEV, 0 when free"),
    ObsField("P", "kW", "area power applied in the last step (sum over stations)"),
    ObsField("action_last", "kW", "power applied at this station in the last step"),
    ObsField("P_ref", "kW", "area power limit for this step"),
    ObsField("steps_to_departure", "steps", "departure - t of the plugged PEV, 0 when free"),
)
OBS_INDEX: dict[str, int] = {f.name: i for i, f in enumerate(OBS_FIELDS)}
N_OBS: int = len(OBS_FIELDS)
_CONSTANT = ("p_min", "p_max", "P_max", "P_min")
MAX_STAY_MIN = 7 * 24 * 60.0
"""Longest stay of a PEV the observation bounds allow for (one week, minutes)."""


def obs_bounds(config: EnvConfig) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) finite float32 bounds (N, N_OBS) of the station observations of every episode of the plant
    `config` (and of every later draw of a named scenario, whose spaces fields are fixed):

    * p_min, p_max, action_last: the station's p_max;
    * P_max, P_min, P_ref and the area power P: max(P_max, sum of the station p_max) (P_ref <= P_max, and the
      applied powers are clipped to p_max; a binding scenario's P_max is max(base P_max, that sum, P_ref));
    * soc_remain: max(soc_max, acn_battery_max_kwh) kWh (targets are below the capacity: <= soc_max, or the
      ACN cap for the acn scenarios, whose soc_max is one day's largest session);
    * steps_to_departure: max(n_steps, MAX_STAY_MIN / sampling_time) (real sessions may run past the episode's
      end: the longest of the shipped ACN-Data lasts 150 h; a stay longer than a week would leave the box);
    * plugged: 1;

    each one float32 step above, so float32 rounding never leaves the box.
    """
    p_max = np.asarray(config.station_p_max, dtype=np.float32)
    area = max(float(config.P_max), float(p_max.sum()))
    high = np.empty((config.n_stations, N_OBS), dtype=np.float32)
    for name in ("p_min", "p_max", "action_last"):
        high[:, OBS_INDEX[name]] = p_max
    for name in ("P_max", "P_min", "P_ref", "P"):
        high[:, OBS_INDEX[name]] = area
    high[:, OBS_INDEX["soc_remain"]] = max(config.soc_max, config.acn_battery_max_kwh)
    high[:, OBS_INDEX["steps_to_departure"]] = max(config.n_steps, MAX_STAY_MIN / config.sampling_time)
    high[:, OBS_INDEX["plugged"]] = 1.0
    return np.zeros_like(high), np.nextafter(high, np.float32(np.inf))


def state_bounds(config: EnvConfig) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) float32 bounds of the global state: every station's observation (row-major), then t / n_steps."""
    low, high = obs_bounds(config)
    return (np.append(low.reshape(-1), np.float32(0.0)), np.append(high.reshape(-1), np.float32(1.0)))


def global_state(obs: np.ndarray, t: int, n_steps: int) -> np.ndarray:
    """The global state (N * N_OBS + 1,) float32 of the stacked observations at step t (`state_bounds`)."""
    return np.append(np.asarray(obs, dtype=np.float32).reshape(-1), np.float32(t / n_steps))


def fields_table() -> str:
    """Markdown table of the observation fields (index, name, unit, description)."""
    rows = ["| index | name | unit | description |", "|---|---|---|---|"]
    rows += [f"| {i} | `{f.name}` | {f.unit} | {f.description} |" for i, f in enumerate(OBS_FIELDS)]
    return "\n".join(rows)


def build_observations(
    constants: dict[str, float], plugged: np.ndarray, soc_remain_kwh: np.ndarray, area_power_kw: float,
    applied_last_kw: np.ndarray, p_ref_kw: float, steps_to_departure: np.ndarray,
) -> np.ndarray:
    """Fresh (N, N_OBS) float32 array; per-station inputs are length-N arrays (0 where free), constants
    scalars or length-N arrays (p_min / p_max per station)."""
    obs = np.empty((plugged.shape[0], N_OBS), dtype=np.float32)
    for name in _CONSTANT:
        obs[:, OBS_INDEX[name]] = constants[name]
    obs[:, OBS_INDEX["plugged"]] = plugged
    obs[:, OBS_INDEX["soc_remain"]] = soc_remain_kwh
    obs[:, OBS_INDEX["P"]] = area_power_kw
    obs[:, OBS_INDEX["action_last"]] = applied_last_kw
    obs[:, OBS_INDEX["P_ref"]] = p_ref_kw
    obs[:, OBS_INDEX["steps_to_departure"]] = steps_to_departure
    return obs
