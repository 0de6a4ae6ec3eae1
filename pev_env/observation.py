"""Per-station observation: named float32 fields (the seed's 8, then P_ref and steps to departure)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


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


def obs_bounds(p_max: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) float32 bounds of an observation Box: (N_OBS,) for a scalar p_max, (N, N_OBS) per station."""
    p_max = np.asarray(p_max, dtype=np.float32)
    high = np.full((*p_max.shape, N_OBS), np.inf, dtype=np.float32)
    high[..., OBS_INDEX["plugged"]] = 1.0
    high[..., OBS_INDEX["action_last"]] = p_max
    return np.zeros_like(high), high


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
