"""Vectorised plant core: state as numpy arrays over stations (N) and PEVs (M).

One step t (requests ``requested_kw``, shape (N,), kW):

* applied power = requested clipped to [p_min, p_max] at plugged stations, 0 at free ones;
* local violation: a request outside [p_min, p_max] while plugged (tolerance 1e-9 kW beyond the
  bound or its float32 rounding, so float32 actions at the bound are not violations), or
  a nonzero request to a free station (applied as 0);
* battery: ``soc <- min(soc + eta * dt_h * applied, capacity)`` for the plugged PEVs;
* area power = sum of applied powers; it is NOT limited: every step with area power
  > P_ref + 1e-9 kW is recorded (kW over P_ref, kWh over = kW over * dt_h);
* site network (``config.network``, ``pev_env.network.site_network`` for the scenario's station ids):
  every constraint's load |gain . applied| (A or kW) is recorded, none is enforced; the step's largest
  relative overload 100 (load - limit) / limit over the exceeded constraints (``pev_env.meter``), 0 when none;
* rewards per ``pev_env.reward``; the episode terminates when t reaches n_steps.

The PEV-to-station assignment comes from the action-independent ``plug_schedule``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pev_env import metrics
from pev_env.arrays import real_array, require_finite
from pev_env.config import EnvConfig
from pev_env.meter import NetworkMeter
from pev_env.network import Network, site_network
from pev_env.observation import build_observations
from pev_env.plant import check_consistent, plant_config, unbound_area_limit
from pev_env.reward import agent_rewards, station_rewards
from pev_env.scenario import Scenario
from pev_env.schedule import PlugSchedule, plug_schedule

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

TOL_KW = 1e-9
"""Tolerance (kW) of the local bounds and of the area limit."""


@dataclass(frozen=True, slots=True)
class StepResult:
    """Outcome of one ``ChargingCore.step``."""

    observations: np.ndarray
    """(N, N_OBS) float32 observations for the next step."""
    rewards: np.ndarray
    """(N,) float64 per-agent rewards (the mean for every agent when shared)."""
    applied_kw: np.ndarray
    """(N,) kW applied at each station."""
    area_power_kw: float
    """kW, sum of applied powers."""
    local_violation: np.ndarray
    """(N,) bool, request outside the station bounds (or nonzero at a free station)."""
    area_overload_kw: float
    """kW above P_ref (0 when within the limit)."""
    terminated: bool
    """True when the episode reached n_steps."""
    info: dict[str, Any]
    """Raw per-step quantities: t (step just applied), requested_kw, applied_kw, area_power_kw,
    area_overload_kw, area_violation, local_violation, station_rewards, network_load ((J,) load of each
    network constraint, A or kW) and network_overload_pct (the largest relative overload, 0 when none)."""


@dataclass(frozen=True)
class History:
    """Per-step arrays recorded so far (T = steps applied); also readable as ``history["name"]``."""

    requested_kw: np.ndarray
    """(T, N) kW requested."""
    applied_kw: np.ndarray
    """(T, N) kW applied."""
    local_violation: np.ndarray
    """(T, N) bool."""
    area_power_kw: np.ndarray
    """(T,) kW."""
    area_overload_kw: np.ndarray
    """(T,) kW above P_ref."""
    reward_mean: np.ndarray
    """(T,) mean per-station reward."""
    soc: np.ndarray
    """(T + 1, M) kWh per PEV, row 0 = initial SOC."""
    network_load: np.ndarray
    """(T, J) load of each constraint of ``ChargingCore.network`` (its unit: A or kW)."""
    network_overload_pct: np.ndarray
    """(T,) % the largest 100 (load - limit) / limit over the exceeded constraints, 0 when none."""

    def __getitem__(self, name: str) -> np.ndarray:
        return getattr(self, name)


class ChargingCore:
    """The plant on arrays; see the module doc for the dynamics and ``docs/INTERFACES.md`` for the API."""

    def __init__(self, config: EnvConfig, scenario: Scenario) -> None:
        check_consistent(config, scenario)
        config = unbound_area_limit(config)  # on a site network an unset P_ref never binds, as plant_config makes it
        self.config = config
        self.scenario = scenario
        self.schedule: PlugSchedule = plug_schedule(scenario)
        self.network: Network = site_network(config, scenario.station_ids)
        """The constraints measured every step (NetworkError, a ValueError, when they cannot be built)."""
        self._meter = NetworkMeter(self.network, config.station_p_max, TOL_KW)
        n, m, n_steps = config.n_stations, scenario.n_pevs, config.n_steps
        self._gain = config.eta * config.dt_h
        self._p_min, self._p_max = config.station_p_min, config.station_p_max
        self._lo = np.minimum(self._p_min, self._p_min.astype(np.float32)) - TOL_KW
        self._hi = np.maximum(self._p_max, self._p_max.astype(np.float32)) + TOL_KW
        self._constants = {"p_min": self._p_min, "p_max": self._p_max, "P_max": config.P_max, "P_min": config.P_min}
        self._free = np.full(n, -1, dtype=np.int64)
        self._requested = np.zeros((n_steps, n))
        self._applied = np.zeros((n_steps, n))
        self._local = np.zeros((n_steps, n), dtype=bool)
        self._area = np.zeros(n_steps)
        self._overload = np.zeros(n_steps)
        self._reward_mean = np.zeros(n_steps)
        self._soc_hist = np.zeros((n_steps + 1, m))
        self._load = np.zeros((n_steps, self.network.n_constraints))
        self._network_over = np.zeros(n_steps)
        self.reset()

    # -- state ------------------------------------------------------------------------
    @property
    def t(self) -> int:
        """Current step (number of steps applied)."""
        return self._t

    @property
    def done(self) -> bool:
        return self._t >= self.config.n_steps

    @property
    def n_stations(self) -> int:
        return self.config.n_stations

    @property
    def station_pev(self) -> np.ndarray:
        """(N,) PEV index plugged at each station during the current step, -1 = free."""
        return self.schedule.station_pev[self._t] if not self.done else self._free

    @property
    def soc(self) -> np.ndarray:
        """(M,) kWh per PEV (read-only view)."""
        view = self._soc.view()
        view.flags.writeable = False
        return view

    @property
    def observations(self) -> np.ndarray:
        """(N, N_OBS) float32 observations of the current step."""
        return self._obs

    @property
    def network_load(self) -> np.ndarray:
        """(J,) load of each network constraint under the last applied powers (0 before the first step; read-only)."""
        view = self._last_load.view()
        view.flags.writeable = False
        return view

    @property
    def history(self) -> History:
        """Read-only views of the arrays recorded so far (see ``History``)."""
        t = self._t
        views = [a.view() for a in (self._requested[:t], self._applied[:t], self._local[:t], self._area[:t],
                                    self._overload[:t], self._reward_mean[:t], self._soc_hist[:t + 1],
                                    self._load[:t], self._network_over[:t])]
        for view in views:
            view.flags.writeable = False
        return History(*views)

    # -- dynamics -----------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        """Restart the episode of the same scenario; return the (N, N_OBS) observations."""
        self._t = 0
        self._soc = self.scenario.soc_init.astype(np.float64)  # writable copy
        self._soc_hist[0] = self._soc
        zeros = np.zeros(self.config.n_stations)
        self._last_load = self._meter.loads(zeros, 0.0)
        self._obs = self._observe(zeros, 0.0)
        return self._obs

    def step(self, requested_kw: Any) -> StepResult:
        """Apply one step of requested powers (N,) kW; see the module doc."""
        if self.done:
            raise RuntimeError(f"ChargingCore.step: the episode ended at t = {self._t}; call reset()")
        cfg, t = self.config, self._t
        req = self._check_action(requested_kw)
        occ = self.schedule.station_pev[t]
        plugged = occ >= 0
        pev = occ[plugged]
        applied = np.where(plugged, np.clip(req, self._p_min, self._p_max), 0.0)
        local = np.where(plugged, (req < self._lo) | (req > self._hi), np.abs(req) > TOL_KW)
        soc = self._soc
        soc[pev] = np.minimum(soc[pev] + self._gain * applied[plugged], self.scenario.capacity[pev])
        area = float(applied.sum())
        overload = area - cfg.P_ref if area > cfg.P_ref + TOL_KW else 0.0
        load = self._meter.loads(applied, area)
        network_over = self._meter.overload_pct(load)
        remain = self._remaining(occ, plugged)
        per_station = station_rewards(cfg.reward_weights, cfg.soc_ref, plugged, remain, local,
                                      overload > 0 or network_over > 0)
        rewards = agent_rewards(per_station, cfg.shared_reward)

        self._requested[t], self._applied[t], self._local[t] = req, applied, local
        self._area[t], self._overload[t] = area, overload
        self._load[t], self._network_over[t] = load, network_over
        self._reward_mean[t] = per_station.mean()
        self._t = t + 1
        self._soc_hist[t + 1] = soc
        self._last_load = load
        self._obs = self._observe(applied, area)
        info = {"t": t, "requested_kw": req, "applied_kw": applied, "area_power_kw": area,
                "area_overload_kw": overload, "area_violation": overload > 0, "local_violation": local,
                "station_rewards": per_station, "network_load": load, "network_overload_pct": network_over}
        return StepResult(self._obs, rewards, applied, area, local, overload, self.done, info)

    def _check_action(self, requested_kw: Any) -> np.ndarray:
        n = self.config.n_stations
        try:
            req = real_array("requested_kw", requested_kw)
        except TypeError as exc:
            raise ValueError(f"requested_kw of type {type(requested_kw).__name__}: must be numeric (real, "
                             f"not complex or boolean), shape ({n},) kW ({exc})") from exc
        if req.shape != (n,):
            raise ValueError(f"requested_kw has shape {req.shape}: expected ({n},), one kW value per station")
        require_finite("requested_kw", req, "must be finite kW")
        return req

    def _observe(self, applied_last: np.ndarray, area_power: float) -> np.ndarray:
        occ = self.station_pev
        plugged = occ >= 0
        to_departure = np.zeros(self.config.n_stations)
        to_departure[plugged] = self.scenario.departure[occ[plugged]] - self._t
        return build_observations(self._constants, plugged, self._remaining(occ, plugged), area_power,
                                  applied_last, self.config.P_ref, to_departure,
                                  self._meter.headroom_kw(self._last_load))

    def _remaining(self, occ: np.ndarray, plugged: np.ndarray) -> np.ndarray:
        """(N,) kWh max(target - soc, 0) of the PEV at each station, 0 where free."""
        pev = occ[plugged]
        remain = np.zeros(self.config.n_stations)
        remain[plugged] = np.maximum(self.scenario.soc_target[pev] - self._soc[pev], 0.0)
        return remain

    # -- summaries ----------------------------------------------------------------------
    def episode_metrics(self) -> dict[str, float | int]:
        """Metrics of the steps applied so far, keyed by ``pev_env.metrics.METRIC_COLUMNS``."""
        t = self._t
        return metrics.episode_metrics(self.scenario, self.schedule, self._soc, self._area[:t], self._overload[:t],
                                       self._local[:t], self._reward_mean[:t], self.config.dt_h,
                                       self._network_over[:t])

    def pev_table(self) -> pd.DataFrame:
        """Per-PEV pandas DataFrame (see ``pev_env.metrics.pev_table``)."""
        return metrics.pev_table(self.scenario, self.schedule, self._soc)


class EpisodeSource:
    """Config and scenario for each reset: a fixed scenario, or a named generator drawn per seed.

    A fixed scenario without a config gets ``plant.plant_config(scenario)``; a given config must agree
    with it (``plant.check_consistent``, ValueError otherwise). ``network`` is the site network of the
    first episode (``site_network``; what the spaces' bounds are built for): every later episode must have
    the same constraints and gains (its limits may differ with P_ref).

    ``draw(seed)`` with a seed returns ``make_scenario(name, seed, base)`` exactly; without a seed
    it draws the next scenario seed from a generator seeded by the last explicit seed.  A named
    scenario may change config fields per draw (e.g. a binding P_ref), but not the ones that
    fix the spaces (``SPACE_FIELDS``).
    """

    SPACE_FIELDS = ("n_stations", "p_min", "p_max")

    def __init__(self, config: EnvConfig | None = None, scenario: Scenario | None = None,
                 scenario_name: str | None = None) -> None:
        if scenario is not None and scenario_name is not None:
            raise ValueError(f"scenario_name = {scenario_name!r}: give either a scenario or a scenario_name, not both")
        self.scenario = scenario
        self.name = scenario_name or "seed"
        self._base = config
        self._rng = np.random.default_rng()
        if scenario is not None:
            self.config = unbound_area_limit(config) if config else plant_config(scenario)
            check_consistent(self.config, scenario, type(self).__name__)
        else:
            self.config, scenario = self._generate(0)
        self.network: Network = site_network(self.config, scenario.station_ids)

    def _generate(self, seed: int) -> tuple[EnvConfig, Scenario]:
        from pev_env.scenarios import make_scenario

        return make_scenario(self.name, seed, base=self._base)

    def draw(self, seed: int | None = None) -> tuple[EnvConfig, Scenario]:
        """(config, scenario) of the next episode (see class doc)."""
        if self.scenario is not None:
            return self.config, self.scenario
        if seed is not None:
            seed = int(seed)
            self._rng = np.random.default_rng(seed)
        else:
            seed = int(self._rng.integers(2**31 - 1))
        config, scenario = self._generate(seed)
        for name in self.SPACE_FIELDS:
            if getattr(config, name) != getattr(self.config, name):
                raise RuntimeError(f"make_scenario({self.name!r}, {seed}) gives {name} = {getattr(config, name)}, "
                                   f"but the spaces were built for {getattr(self.config, name)}; "
                                   "pass a fixed scenario instead")
        return config, scenario

    def start(self, seed: int | None = None, core: ChargingCore | None = None) -> ChargingCore:
        """A core at t = 0 for the next episode: ``core`` reset when its scenario is reused, else a new one."""
        config, scenario = self.draw(seed)
        if core is not None and core.scenario is scenario and core.config == config:
            core.reset()
            return core
        core = ChargingCore(config, scenario)
        if core.network.gain.shape != self.network.gain.shape or not np.array_equal(core.network.gain,
                                                                                     self.network.gain):
            raise RuntimeError(f"{self.name} (seed {seed}): network {core.network.name} has other constraints or "
                               "gains than the one the spaces were built for; pass a fixed scenario instead")
        return core
