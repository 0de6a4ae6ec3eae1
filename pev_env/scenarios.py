"""Named scenarios: `make_scenario(name, seed, base) -> (EnvConfig, Scenario)`.

| name          | stations           | PEVs           | episode  | generator / area limit                          |
|---------------|--------------------|----------------|----------|-------------------------------------------------|
| `seed`        | base (6)           | base (10)      | base     | seed proportional schedule, base P_ref (31.5 kW)|
| `seed-20`     | 5                  | 20             | 960 min  | seed proportional schedule, base P_ref          |
| `seed-30`     | 5                  | 30             | 960 min  | seed proportional schedule, base P_ref          |
| `acn-caltech` | all in the sample  | sessions       | 1440 min | real weekday (seed % 5), p_max 6.6 kW, binding  |
| `synthetic-N` | N                  | ~2 N           | base     | `generators.synthetic`, binding                 |

Binding area limit (acn-caltech, synthetic-N): P_ref = AREA_LIMIT_FRACTION (0.8) x the least
constant area power under which all deliverable energy could be supplied
(`generators.min_feasible_area_power`, computed from the sessions alone). So the limit binds
for every controller, including the offline optimum: about a fifth of the peak-window need is
infeasible. P_max (observed only) becomes max(base P_max, n_stations x p_max).

acn-caltech: the weekday is `seed % 5` of the shipped week (2019-05-06..10); the agents are all
42 stations of the sample (not only those used that day) so that the spaces do not change with
the seed; p_max = 6.6 kW per EVSE; soc_max = soc_ref = the largest session capacity.
"""

from __future__ import annotations

import re

from pev_env.acn import acn_scenario, load_acn_sessions, session_days
from pev_env.config import EnvConfig
from pev_env.generators import min_feasible_area_power, seed_schedule, synthetic
from pev_env.scenario import Scenario

SCENARIO_NAMES: tuple[str, ...] = ("seed", "seed-20", "seed-30", "acn-caltech")
"""Fixed names; `synthetic-N` (N >= 1 stations) is parsed in addition."""
SYNTHETIC_PATTERN = re.compile(r"synthetic-([1-9][0-9]*)")
AREA_LIMIT_FRACTION = 0.8
"""P_ref as a fraction of the least feasible constant area power (binding scenarios)."""
ACN_P_MAX_KW = 6.6
"""kW: Caltech ACN level-2 EVSE rating (32 A at 208 V)."""
_SEED_VARIANTS = {"seed-20": 20, "seed-30": 30}


def _binding_config(config: EnvConfig, scenario: Scenario) -> EnvConfig:
    """Set n_stations/n_pevs from the scenario and a binding P_ref (see module doc)."""
    least = min_feasible_area_power(scenario, config.p_max, config.eta, config.dt_h)
    p_ref = max(round(AREA_LIMIT_FRACTION * least, 1), 0.1)
    return config.with_overrides(
        {
            "n_stations": scenario.n_stations,
            "n_pevs": scenario.n_pevs,
            "P_ref": p_ref,
            "P_max": max(config.P_max, scenario.n_stations * config.p_max, p_ref),
        }
    )


def _acn(seed: int, base: EnvConfig) -> tuple[EnvConfig, Scenario]:
    frame = load_acn_sessions()
    days = session_days(frame, weekdays_only=True)
    day = days[seed % len(days)]
    stations = sorted(frame["station_id"].unique())  # fixed agents across days (spaces stay equal)
    scenario = acn_scenario(day=day, sampling_time=base.sampling_time, name=f"acn-caltech-{day}", stations=stations)
    soc_max = float(scenario.capacity.max())
    config = base.with_overrides(
        {"total_time": 1440.0, "p_max": ACN_P_MAX_KW, "p_min": 0.0, "soc_max": soc_max, "soc_ref": soc_max}
    )
    return _binding_config(config, scenario), scenario


def _synthetic(n_stations: int, seed: int, base: EnvConfig) -> tuple[EnvConfig, Scenario]:
    scenario = synthetic(
        n_stations, base.n_steps, seed, p_max=base.p_max, eta=base.eta, dt_h=base.dt_h, capacity=base.soc_max
    )
    return _binding_config(base, scenario), scenario


def make_scenario(name: str, seed: int, base: EnvConfig | None = None) -> tuple[EnvConfig, Scenario]:
    """The config and the scenario called `name`, drawn with `seed` (int >= 0).

    `base` supplies every field the scenario does not fix (default: the seed's EnvConfig).
    The returned config is consistent with the scenario (n_stations, n_pevs, total_time).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"make_scenario: seed = {seed!r}: must be an integer >= 0")
    base = base or EnvConfig()
    if name == "seed":
        return base, seed_schedule(base, seed, name=name)
    if name in _SEED_VARIANTS:
        config = base.with_overrides({"n_stations": 5, "n_pevs": _SEED_VARIANTS[name], "total_time": 960.0})
        return config, seed_schedule(config, seed, name=name)
    if name == "acn-caltech":
        return _acn(seed, base)
    match = SYNTHETIC_PATTERN.fullmatch(str(name))
    if match:
        return _synthetic(int(match.group(1)), seed, base)
    raise ValueError(f"scenario name = {name!r}: must be one of {list(SCENARIO_NAMES)} or 'synthetic-N' (N >= 1 stations)")
