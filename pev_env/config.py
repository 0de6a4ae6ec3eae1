"""Environment configuration: one frozen dataclass with the seed defaults.

Every field is validated in one place (``EnvConfig.__post_init__``); a bad value
raises ``ValueError("EnvConfig.<field> = <value>: <allowed>")``.  Configurations
load from mappings, YAML or TOML files, and accept ``key=value`` overrides
(strings are coerced to the field type, as they come from a command line).

Station bounds ``p_min`` / ``p_max`` are a scalar (every station) or one value per station
(a sequence of length ``n_stations``; ``"6.6,50"`` on a command line); ``station_p_min`` /
``station_p_max`` always give the (N,) arrays.  A sequence of equal values is stored as the scalar.
While ``n_stations`` is not set, a sequence of any length is accepted: scenarios whose stations come from
their data (``acn:``) check it against those; ``station_p_min`` / ``station_p_max`` refuse a wrong length.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from pev_env.limits import MAX_PEVS, MAX_STATIONS
from pev_env.mapping_file import read_mapping_file
from pev_env.network import check_network_spec

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class EnvConfig:
    """Plant parameters (units in brackets); defaults are the seed's PEVChargeBattery."""

    n_stations: int = 6
    """Number of charging stations (agents)."""
    n_pevs: int = 10
    """Number of PEVs in a generated scenario."""
    p_min: tuple[float, ...] | float = 0.0
    """Minimum station power while plugged [kW]: a scalar or one value per station."""
    p_max: tuple[float, ...] | float = 22.0
    """Maximum station power while plugged (the station's rating) [kW]: a scalar or one value per station."""
    P_min: float = 0.0
    """Minimum area power [kW] (observed only)."""
    P_max: float = 200.0
    """Maximum area power [kW] (observed only)."""
    P_ref: float = 31.5
    """Operational area limit [kW]; not enforced by the plant, violations are recorded."""
    xi: float = 0.1
    """Charging losses (fraction); efficiency eta = 1 - xi."""
    soc_max: float = 24.0
    """Battery capacity [kWh]."""
    soc_ref: float = 24.0
    """Target state of charge [kWh]."""
    sampling_time: float = 5.0
    """Control step [minutes]."""
    total_time: float = 240.0
    """Episode length [minutes]."""
    charge_time_desired: float = 90.0
    """Desired charging duration of a session [minutes]."""
    initial_charge_max: float = 0.5
    """Upper bound of the initial SOC as a fraction of soc_max."""
    charge_duration_tolerance: float = 0.2
    """Relative spread of session durations around charge_time_desired."""
    random_start_coeff: float = 1.0
    """Scale of the random jitter of arrival times in the seed generator (0 = none)."""
    reward_weights: tuple[float, float, float] = (1.0, 2.0, 2.0)
    """Weights of the reward components (remaining SOC, local limit, area limit)."""
    shared_reward: bool = True
    """True: every agent receives the mean of the per-station rewards."""
    area_limit_fraction: float = 0.8
    """Binding scenarios (acn-*, synthetic-N, acn:/csv: specs): P_ref = this fraction of the least constant
    feasible area power (``pev_env.plant.binding_area_limit``), unless P_ref is set."""
    acn_battery_kwh: float = 60.0
    """ACN sessions (no battery recorded): assumed battery capacity [kWh], raised to a larger request ..."""
    acn_battery_max_kwh: float = 100.0
    """... up to this cap [kWh]: capacity = clip(request, acn_battery_kwh, acn_battery_max_kwh), target <= capacity."""
    network: str = "area"
    """Shared limits (``pev_env.network``): area (P_ref alone), caltech, jpl, tree:B1,B2 or network:PATH (YAML/JSON)."""
    transformer_kw: float = 150.0
    """network=caltech: the transformer's capacity [kW] (acnportal's transformer_cap)."""
    jpl_first_transformer_kw: float = 45.0
    """network=jpl: capacity of the transformer feeding the first floor [kW] (acnportal's first_transformer_cap)."""
    jpl_third_fourth_transformer_kw: float = 150.0
    """network=jpl: capacity of the transformer feeding the third and fourth floors [kW]."""
    voltage_v: float = 208.0
    """Station voltage [V]: station current = 1000 p / voltage_v (current limits of a network)."""

    def __post_init__(self) -> None:
        _validate(self)
        object.__setattr__(self, "_chosen", _differing(self))  # with_overrides / derive replace it

    # -- derived quantities -------------------------------------------------------
    @property
    def dt_h(self) -> float:
        """Sampling time in hours."""
        return self.sampling_time / 60.0

    @property
    def eta(self) -> float:
        """Charging efficiency 1 - xi."""
        return 1.0 - self.xi

    @property
    def n_steps(self) -> int:
        """Number of control steps in an episode."""
        return round(self.total_time / self.sampling_time)

    @property
    def station_p_min(self) -> np.ndarray:
        """(n_stations,) kW: p_min of every station."""
        return _per_station(self, "p_min")

    @property
    def station_p_max(self) -> np.ndarray:
        """(n_stations,) kW: p_max of every station."""
        return _per_station(self, "p_max")

    @property
    def user_set(self) -> frozenset[str]:
        """The fields the user chose: named by `with_overrides` or given to the constructor (even with the default
        value; a dataclasses.replace copy: the fields that differ from the default); values a scenario derived
        (`derive`) are not."""
        chosen = self.__dict__.get("_chosen")  # None while __post_init__ validates
        return chosen if chosen is not None else _differing(self)

    def is_set(self, name: str) -> bool:
        """True when the user chose field `name` (`user_set`), even if the value equals the default."""
        return name in self.user_set

    # -- construction -------------------------------------------------------------
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> EnvConfig:
        """Build from a mapping; unknown keys raise ValueError listing the valid keys."""
        return cls().with_overrides(mapping)

    @classmethod
    def from_file(cls, path: str | Path) -> EnvConfig:
        """Load from a .yaml/.yml or .toml file holding a flat table of fields."""
        return cls.from_mapping(read_mapping_file(path, "EnvConfig file"))

    def with_overrides(self, overrides: Mapping[str, Any] | Iterable[str]) -> EnvConfig:
        """Return a copy with fields replaced; accepts a mapping or ``"key=value"`` strings."""
        if not isinstance(overrides, Mapping):
            overrides = dict(_split_assignment(item) for item in overrides)
        valid = self.field_names()
        unknown = sorted(set(overrides) - set(valid))
        if unknown:
            raise ValueError(f"EnvConfig: unknown field(s) {unknown}; valid fields: {list(valid)}")
        types = {f.name: f.type for f in fields(self)}
        changes = {k: _coerce(k, v, types[k]) for k, v in overrides.items()}
        return self._copy(changes, self.user_set | set(changes))

    def derive(self, changes: Mapping[str, Any]) -> EnvConfig:
        """A copy with fields a scenario determines (typed values, `pev_env.plant`); the user's choices
        (`user_set`) stay as they are."""
        return self._copy(changes, self.user_set)

    def _copy(self, changes: Mapping[str, Any], chosen: frozenset[str]) -> EnvConfig:
        new = dataclasses.replace(self, **changes)
        object.__setattr__(new, "_chosen", frozenset(chosen))
        return new

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (tuples as lists), e.g. for results files."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


_DEFAULTS = {f.name: f.default for f in fields(EnvConfig)}
_dataclass_init = EnvConfig.__init__


@functools.wraps(_dataclass_init)
def _init_recording_choices(self: EnvConfig, *args: Any, **kwargs: Any) -> None:
    """The dataclass __init__, then every field passed counts as the user's choice (`user_set`), a default value
    included: `EnvConfig(transformer_kw=150)` keeps 150 kW on a scenario that would set 40. dataclasses.replace
    passes every field, so a call with all fields counts only those that differ from the default."""
    _dataclass_init(self, *args, **kwargs)
    given = frozenset(EnvConfig.field_names()[:len(args)]) | frozenset(kwargs)
    if len(given) < len(_DEFAULTS):
        object.__setattr__(self, "_chosen", self.user_set | given)


EnvConfig.__init__ = _init_recording_choices  # type: ignore[method-assign]


def _differing(cfg: EnvConfig) -> frozenset[str]:
    """The fields of `cfg` whose value differs from the EnvConfig default."""
    return frozenset(name for name, default in _DEFAULTS.items() if getattr(cfg, name) != default)


def _split_assignment(item: str) -> tuple[str, str]:
    key, sep, value = str(item).partition("=")
    if not sep or not key.strip():
        raise ValueError(f"EnvConfig override {item!r}: expected 'field=value'")
    return key.strip(), value.strip()


def _coerce(name: str, value: Any, type_name: Any) -> Any:
    """Coerce a string (CLI/text input) or a list (YAML/TOML) to the field's type."""
    type_name = str(type_name)
    if type_name.startswith("tuple[float, ...] |"):
        return _station_values(name, value)
    if type_name.startswith("tuple"):
        if isinstance(value, str):
            value = [v for v in value.strip("[]() ").replace(",", " ").split()]
        try:
            return tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"EnvConfig.{name} = {value!r}: must be a sequence of 3 numbers") from None
    if not isinstance(value, str) or type_name == "str":
        return value
    text = value.strip()
    if type_name == "bool":
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"EnvConfig.{name} = {value!r}: must be one of {sorted(_TRUE | _FALSE)}")
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"EnvConfig.{name} = {value!r}: must be a number") from None
    if type_name == "int":
        return int(number) if number.is_integer() else number  # non-integers fail validation
    return number


def _station_values(name: str, value: Any) -> Any:
    """A scalar, or a per-station sequence, from text ('6.6', '6.6,50', '[6.6, 50]') or a YAML/TOML list."""
    if not isinstance(value, str):
        return tuple(value) if isinstance(value, (list, tuple)) else value
    items = value.strip("[]() ").replace(",", " ").split()
    try:
        values = [float(v) for v in items]
    except ValueError:
        raise ValueError(f"EnvConfig.{name} = {value!r}: must be a number or a comma-separated list of numbers "
                         "(one per station)") from None
    if len(values) == 1:
        return values[0]
    return tuple(values)


# -- validation (the one place) -----------------------------------------------------
def _fail(name: str, value: Any, allowed: str) -> None:
    raise ValueError(f"EnvConfig.{name} = {value!r}: {allowed}")


def _number(cfg: EnvConfig, name: str) -> float:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        _fail(name, value, "must be a finite number")
    return float(value)


def _integer(cfg: EnvConfig, name: str, minimum: int) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        _fail(name, value, f"must be an integer >= {minimum}")
    object.__setattr__(cfg, name, int(value))


def _check(cfg: EnvConfig, name: str, ok: bool, allowed: str) -> None:
    if not ok:
        _fail(name, getattr(cfg, name), allowed)


def _per_station(cfg: EnvConfig, name: str) -> np.ndarray:
    """(n_stations,) kW of p_min / p_max; a sequence of another length raises the one-line error."""
    values = np.asarray(getattr(cfg, name), dtype=np.float64).reshape(-1)
    if values.size not in (1, cfg.n_stations):
        _fail(name, getattr(cfg, name), f"must be a number or {cfg.n_stations} values (one per station, n_stations)")
    return np.broadcast_to(values, (cfg.n_stations,)).copy()


def _station_bound(cfg: EnvConfig, name: str) -> np.ndarray:
    """Normalise p_min / p_max (scalar, or one value per station; equal values -> the scalar); return the values.
    The length must be n_stations only when n_stations is set (else the scenario's stations decide)."""
    value = getattr(cfg, name)
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(np.asarray(value, dtype=object).ravel())
        if not items or cfg.is_set("n_stations") and len(items) not in (1, cfg.n_stations):
            _fail(name, value, f"must be a number or {cfg.n_stations} values (one per station, n_stations)")
        values = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, numbers.Real) or not math.isfinite(item):
                _fail(name, value, "must hold finite numbers (kW)")
            values.append(float(item))
        value = values[0] if len(set(values)) == 1 else tuple(values)
        object.__setattr__(cfg, name, value)
    else:
        object.__setattr__(cfg, name, _number(cfg, name))
    return np.asarray(getattr(cfg, name), dtype=np.float64).reshape(-1)


def _validate(cfg: EnvConfig) -> None:
    _integer(cfg, "n_stations", 1)
    _check(cfg, "n_stations", cfg.n_stations <= MAX_STATIONS, f"must be <= {MAX_STATIONS}")
    _integer(cfg, "n_pevs", 0)
    _check(cfg, "n_pevs", cfg.n_pevs <= MAX_PEVS, f"must be <= {MAX_PEVS}")
    for name in ("P_min", "P_max", "P_ref", "xi", "soc_max", "soc_ref", "sampling_time",
                 "total_time", "charge_time_desired", "initial_charge_max", "charge_duration_tolerance",
                 "random_start_coeff", "area_limit_fraction", "acn_battery_kwh", "acn_battery_max_kwh",
                 "transformer_kw", "jpl_first_transformer_kw", "jpl_third_fourth_transformer_kw", "voltage_v"):
        object.__setattr__(cfg, name, _number(cfg, name))
    p_min, p_max = _station_bound(cfg, "p_min"), _station_bound(cfg, "p_max")
    _check(cfg, "p_min", bool((p_min >= 0).all()), "must be >= 0")
    comparable = p_min.size == 1 or p_max.size in (1, p_min.size)
    _check(cfg, "p_max", bool((p_max > 0).all() and (not comparable or (p_max >= p_min).all())),
           "must be > 0 and >= p_min")
    _check(cfg, "P_min", cfg.P_min >= 0, "must be >= 0")
    _check(cfg, "P_max", cfg.P_max > 0 and cfg.P_max >= cfg.P_min, "must be > 0 and >= P_min")
    _check(cfg, "P_ref", 0 < cfg.P_ref <= cfg.P_max and cfg.P_ref >= cfg.P_min,
           "must be > 0 and within [P_min, P_max]")
    _check(cfg, "xi", 0 <= cfg.xi < 1, "must be in [0, 1)")
    _check(cfg, "soc_max", cfg.soc_max > 0, "must be > 0")
    _check(cfg, "soc_ref", 0 < cfg.soc_ref <= cfg.soc_max, "must be in (0, soc_max]")
    _check(cfg, "sampling_time", cfg.sampling_time > 0, "must be > 0 (minutes)")
    _check(cfg, "total_time", cfg.total_time >= cfg.sampling_time, "must be >= sampling_time (minutes)")
    steps = cfg.total_time / cfg.sampling_time
    _check(cfg, "sampling_time", abs(steps - round(steps)) <= 1e-9 * steps,
           f"must divide total_time = {cfg.total_time:g} min into whole control steps ({steps:.4g} here; an "
           "episode is never stretched or cut)")
    _check(cfg, "charge_time_desired", cfg.charge_time_desired > 0, "must be > 0 (minutes)")
    _check(cfg, "initial_charge_max", 0 <= cfg.initial_charge_max <= 1, "must be in [0, 1]")
    _check(cfg, "charge_duration_tolerance", 0 <= cfg.charge_duration_tolerance < 1, "must be in [0, 1)")
    _check(cfg, "random_start_coeff", cfg.random_start_coeff >= 0, "must be >= 0")
    _check(cfg, "area_limit_fraction", 0 < cfg.area_limit_fraction <= 1, "must be in (0, 1]")
    _check(cfg, "acn_battery_kwh", cfg.acn_battery_kwh > 0, "must be > 0 (kWh)")
    _check(cfg, "acn_battery_max_kwh", cfg.acn_battery_max_kwh >= cfg.acn_battery_kwh, "must be >= acn_battery_kwh (kWh)")
    weights = cfg.reward_weights
    try:
        weights = tuple(float(w) for w in weights)
    except (TypeError, ValueError):
        _fail("reward_weights", weights, "must be a sequence of 3 finite numbers >= 0")
    _check(cfg, "reward_weights", len(weights) == 3 and all(math.isfinite(w) and w >= 0 for w in weights),
           "must be a sequence of 3 finite numbers >= 0")
    object.__setattr__(cfg, "reward_weights", weights)
    _check(cfg, "shared_reward", isinstance(cfg.shared_reward, bool), "must be a bool")
    for name in ("transformer_kw", "jpl_first_transformer_kw", "jpl_third_fourth_transformer_kw", "voltage_v"):
        _check(cfg, name, getattr(cfg, name) > 0, "must be > 0")
    _check(cfg, "network", isinstance(cfg.network, str), "must be a str: area, caltech, jpl, tree:B1,B2 or network:PATH")
    check_network_spec(cfg.network)
