"""Per-station observation: named float32 fields (the seed's 8, then P_ref, steps to departure and the
network headroom); the global state of a centralised critic."""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from pev_env.network import Network, is_site, site_network

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
    ObsField("network_headroom", "kW", "least (limit - load) / abs(gain) over its network constraints (< 0: exceeded): "
             "the constraints' room for this station alone, not capped by its rating `p_max`"),
)
OBS_INDEX: dict[str, int] = {f.name: i for i, f in enumerate(OBS_FIELDS)}
N_OBS: int = len(OBS_FIELDS)
_CONSTANT = ("p_min", "p_max", "P_max", "P_min")
MAX_STAY_MIN = 7 * 24 * 60.0
"""Longest stay of a PEV the observation bounds allow for (one week, minutes)."""


def obs_bounds(config: EnvConfig, network: Network | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) finite float32 bounds (N, N_OBS) of the station observations of every episode of the plant
    `config` on `network` (default `site_network(config)`; the environments pass the network of their first
    episode: a named scenario's later draws keep its spaces fields and its constraints and gains):

    * p_min, p_max, action_last: the station's p_max;
    * P_max, P_min, P_ref and the area power P: max(P_max, sum of the station p_max) (P_ref <= P_max, and the
      applied powers are clipped to p_max; a binding scenario's P_max is max(base P_max, that sum, P_ref));
    * soc_remain: max(soc_max, acn_battery_max_kwh) kWh (targets are below the capacity: <= soc_max, or the
      ACN cap for the acn scenarios, whose soc_max is one day's largest session);
    * steps_to_departure: max(n_steps, MAX_STAY_MIN / sampling_time) (real sessions may run past the episode's
      end: the longest of the shipped ACN-Data lasts 150 h; a stay longer than a week would leave the box);
    * plugged: 1;
    * network_headroom (`headroom_bounds`): low -max_j L_j / |g_ij| over the constraints j station i loads,
      L_j = sum_k |g_kj| p_max_k the largest load (limits are > 0, loads <= L_j); high min_j limit_j / |g_ij|
      (loads >= 0) with the limits of an area or tree network taken at P_ref = the area bound above (they
      grow with P_ref, which a named scenario redraws); 0 and p_max where the station loads no constraint;

    all other lows 0; every high (and the headroom's low) one float32 step outside, so float32 rounding never
    leaves the box.
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
    low = np.zeros_like(high)
    head_low, high[:, OBS_INDEX["network_headroom"]] = headroom_bounds(
        config, site_network(config) if network is None else network, area)
    low[:, OBS_INDEX["network_headroom"]] = np.nextafter(head_low.astype(np.float32), np.float32(-np.inf))
    return low, np.nextafter(high, np.float32(np.inf))


def max_loads(network: Network, p_max: np.ndarray) -> np.ndarray:
    """(J,) the largest load of each constraint for powers in [0, p_max]: sum_i |gain_ji| p_max_i."""
    return network.magnitude @ np.asarray(p_max, dtype=np.float64)


def headroom_bounds(config: EnvConfig, network: Network, area_kw: float) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) (N,) kW of the `network_headroom` field (see `obs_bounds`; area_kw: the bound of P_ref)."""
    p_max = config.station_p_max
    loaded = network.loaded
    mag = np.where(loaded, network.magnitude, 1.0)
    low = -np.where(loaded, max_loads(network, p_max)[:, None] / mag, 0.0).max(axis=0, initial=0.0)
    if not is_site(config.network):  # area / tree: every limit is proportional to P_ref <= area_kw
        network = Network(network.name, network.names, network.gain, network.limit * (area_kw / config.P_ref),
                          network.units)
    return low, network.headroom_kw(np.zeros(network.n_constraints), p_max)


def state_bounds(config: EnvConfig, network: Network | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) float32 bounds of the global state (`global_state`): every station's observation (row-major,
    `obs_bounds`), t / n_steps in [0, 1], then each constraint's load in [0, its largest load `max_loads`]."""
    network = site_network(config) if network is None else network
    low, high = obs_bounds(config, network)
    top = np.nextafter(max_loads(network, config.station_p_max).astype(np.float32), np.float32(np.inf))
    return (np.concatenate([low.reshape(-1), [np.float32(0.0)], np.zeros_like(top)]),
            np.concatenate([high.reshape(-1), [np.float32(1.0)], top]))


def global_state(obs: np.ndarray, t: int, n_steps: int, network_load: np.ndarray) -> np.ndarray:
    """The global state (N * N_OBS + 1 + J,) float32 at step t (`state_bounds`): the stacked observations, the
    episode progress t / n_steps, then the load of each of the J network constraints (A or kW) under the last
    applied powers."""
    return np.concatenate([np.asarray(obs, dtype=np.float32).reshape(-1), [np.float32(t / n_steps)],
                           np.asarray(network_load, dtype=np.float32)])


def fields_table() -> str:
    """Markdown table of the observation fields (index, name, unit, description)."""
    rows = ["| index | name | unit | description |", "|---|---|---|---|"]
    rows += [f"| {i} | `{f.name}` | {f.unit} | {f.description} |" for i, f in enumerate(OBS_FIELDS)]
    return "\n".join(rows)


def build_observations(
    constants: dict[str, float], plugged: np.ndarray, soc_remain_kwh: np.ndarray, area_power_kw: float,
    applied_last_kw: np.ndarray, p_ref_kw: float, steps_to_departure: np.ndarray, network_headroom_kw: np.ndarray,
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
    obs[:, OBS_INDEX["network_headroom"]] = network_headroom_kw
    return obs
