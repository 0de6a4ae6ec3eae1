"""The plant config that belongs to a scenario: derive it (`plant_config`) or check it (`check_consistent`).

A `Scenario` determines n_stations and n_steps, and optionally the station bounds `p_min` / `p_max`
and its `sampling_time`. `plant_config(scenario, base)` takes everything else from `base`; a plant
whose config disagrees with its scenario raises a ValueError naming the field (`check_consistent`).

Binding area limit (`binding_area_limit`, used by acn-*, synthetic-N and the acn:/csv: specs):
P_ref = `area_limit_fraction` (default 0.8) x the least constant area power under which every
session's deliverable energy could be supplied (`generators.min_feasible_area_power`, from the
sessions alone), so part of the demand is infeasible for every controller. A base whose P_ref the user
set (`EnvConfig.is_set`, even to the default 31.5 kW) keeps its P_ref. P_max (observed only)
becomes max(base P_max, sum of the station ratings, P_ref).
"""

from __future__ import annotations

import numpy as np

from pev_env.config import EnvConfig
from pev_env.generators import min_feasible_area_power
from pev_env.network import is_site
from pev_env.scenario import Scenario

_BOUNDS = ("p_min", "p_max")


def binding_area_limit(config: EnvConfig, scenario: Scenario) -> EnvConfig:
    """`config` with n_stations / n_pevs of the scenario and the binding P_ref (module doc)."""
    config = config.derive({"n_stations": scenario.n_stations, "n_pevs": scenario.n_pevs})
    if config.is_set("P_ref"):
        p_ref = config.P_ref
    elif is_site(config.network):  # the site's limits replace the area limit
        return unbound_area_limit(config)
    else:
        least = min_feasible_area_power(scenario, config.station_p_max, config.eta, config.dt_h)
        p_ref = max(round(config.area_limit_fraction * least, 1), 0.1)
    p_max_area = max(config.P_max, float(config.station_p_max.sum()), p_ref)
    return config.derive({"P_ref": p_ref, "P_max": p_max_area})


def unbound_area_limit(config: EnvConfig) -> EnvConfig:
    """On a site network (caltech, jpl, network:PATH) whose P_ref the user did not set: P_ref = P_max =
    max(base P_max, sum of the station ratings), a limit that never binds, so the site's own limits
    are the only shared ones (the stations observe it as P_ref)."""
    if config.is_set("P_ref") or not is_site(config.network):
        return config
    top = max(config.P_max, float(config.station_p_max.sum()))
    return config.derive({"P_ref": top, "P_max": top})


def plant_config(scenario: Scenario, base: EnvConfig | None = None) -> EnvConfig:
    """The EnvConfig of `scenario` on top of `base` (default: EnvConfig()).

    From the scenario: n_stations, n_pevs, sampling_time (when it fixes one), total_time = n_steps x
    sampling_time, p_min / p_max (when it fixes them), soc_max = soc_ref = the largest capacity; then
    the binding area limit (module doc).
    """
    base = base or EnvConfig()
    sampling_time = scenario.sampling_time or base.sampling_time
    fields: dict[str, object] = {"n_stations": scenario.n_stations, "sampling_time": sampling_time,
                                 "total_time": scenario.n_steps * sampling_time}
    fields.update({f: tuple(getattr(scenario, f)) for f in _BOUNDS if getattr(scenario, f) is not None})
    if scenario.n_pevs:
        fields["soc_max"] = fields["soc_ref"] = float(scenario.capacity.max())
    return binding_area_limit(base.derive(fields), scenario)


def check_consistent(config: EnvConfig, scenario: Scenario, where: str = "ChargingCore") -> None:
    """Raise ValueError naming the first field in which `config` and `scenario` disagree."""
    for name in ("n_stations", "n_steps"):
        if getattr(config, name) != getattr(scenario, name):
            raise ValueError(f"{where}: scenario.{name} = {getattr(scenario, name)} must equal config.{name} = "
                             f"{getattr(config, name)}; build the config with pev_env.plant.plant_config(scenario)")
    if scenario.sampling_time is not None and scenario.sampling_time != config.sampling_time:
        raise ValueError(f"{where}: scenario.sampling_time = {scenario.sampling_time} min must equal "
                         f"config.sampling_time = {config.sampling_time} min")
    for name in _BOUNDS:
        fixed = getattr(scenario, name)
        given = getattr(config, f"station_{name}")
        if fixed is not None and not np.allclose(fixed, given, rtol=0.0, atol=1e-9):
            i = int(np.flatnonzero(~np.isclose(fixed, given, rtol=0.0, atol=1e-9))[0])
            raise ValueError(f"{where}: scenario.{name}[{i}] = {fixed[i]} kW must equal config.{name} of station {i} "
                             f"= {given[i]} kW; build the config with pev_env.plant.plant_config(scenario)")
