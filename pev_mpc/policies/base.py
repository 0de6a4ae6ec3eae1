"""The policy interface shared by every controller, and the observation helpers.

A policy maps the stacked station observations ``(N, N_OBS)`` to requested station
powers ``(N,)`` kW (:meth:`Policy.act_array`, the fast path).  :meth:`Policy.act`
wraps it for the PettingZoo dicts (agents ``cs_0 .. cs_{N-1}``), so every policy has
one implementation of the control law.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from pev_env.network import Network, is_site, site_network
from pev_env.observation import N_OBS, OBS_INDEX

if TYPE_CHECKING:  # pragma: no cover
    from pev_env import EnvConfig, Scenario

_I_PMIN = OBS_INDEX["p_min"]
_I_PMAX = OBS_INDEX["p_max"]
_I_PLUGGED = OBS_INDEX["plugged"]
_I_REMAIN = OBS_INDEX["soc_remain"]
_I_PREF = OBS_INDEX["P_ref"]
_I_DEPART = OBS_INDEX["steps_to_departure"]


class Observed:
    """Named float64 views of one step's observations ``(N, N_OBS)``."""

    __slots__ = ("p_min", "p_max", "plugged", "soc_remain", "P_ref", "steps_to_departure")

    def __init__(self, obs: np.ndarray, nominal_P_ref: float) -> None:
        o = np.asarray(obs, dtype=np.float64)
        self.plugged: np.ndarray = o[:, _I_PLUGGED] > 0.5
        """Station has a PEV plugged in (N,) bool."""
        self.p_min: np.ndarray = o[:, _I_PMIN]
        """Station lower power bound (N,) kW."""
        self.p_max: np.ndarray = o[:, _I_PMAX]
        """Station upper power bound (N,) kW."""
        self.soc_remain: np.ndarray = np.where(self.plugged, np.maximum(o[:, _I_REMAIN], 0.0), 0.0)
        """Energy still missing to the plugged PEV's target (N,) kWh; 0 when free."""
        self.P_ref: float = exact_limit(float(np.min(o[:, _I_PREF])), nominal_P_ref)
        """Area limit for this step, kW (all stations observe the same value)."""
        self.steps_to_departure: np.ndarray = np.where(self.plugged, np.maximum(o[:, _I_DEPART], 0.0), 0.0)
        """Steps the plugged PEV can still charge (N,); 0 when free."""

    def floor_kw(self) -> np.ndarray:
        """Power the plant applies anyway (p_min while plugged, 0 when free), (N,) kW."""
        return np.where(self.plugged, self.p_min, 0.0)

    def departure_steps(self) -> np.ndarray:
        """Whole steps until the plugged PEV leaves (N,) int; 0 when free."""
        return np.where(self.plugged, np.rint(self.steps_to_departure), 0).astype(np.int64)

    def need_kw(self, eta: float, dt_h: float) -> np.ndarray:
        """Power that finishes the PEV this step, capped at p_max: min(p_max, soc_remain/(eta dt_h)), (N,) kW."""
        return np.minimum(self.p_max, self.soc_remain / (eta * dt_h)) * self.plugged


def exact_limit(observed: float, nominal: float) -> float:
    """Undo the float32 rounding of an observed limit without ever rounding it up, kW.

    The nominal (config) value is used when it is what was observed; otherwise the
    observed value less half a float32 ulp, which is <= the true limit.
    """
    if np.float32(nominal) == np.float32(observed):
        return float(nominal)
    return observed - float(np.spacing(np.float32(observed))) / 2.0


def stats(solve_time_s: float = 0.0, iterations: int = 0, converged: bool = True, **extra: Any) -> dict[str, Any]:
    """The ``last_stats`` dict every policy exposes."""
    return {"solve_time_s": float(solve_time_s), "iterations": int(iterations), "converged": bool(converged), **extra}


class Policy(ABC):
    """Base class: validation, timing, the PettingZoo dict form, ``last_stats``."""

    name: str = "policy"
    causal: bool = True
    """False for a policy that reads the episode's future sessions from the scenario (a bound, not a controller a
    site can run: offline-optimal, mpc-foresight); results mark it."""

    def __init__(self) -> None:
        self.config: EnvConfig | None = None
        self.network: Network | None = None
        """The plant's site network (`pev_env.network.site_network`), None for the area limit alone."""
        self.last_stats: dict[str, Any] = stats()

    # -- lifecycle -----------------------------------------------------------------
    def reset(self, config: EnvConfig, scenario: Scenario | None = None, seed: int | None = None) -> None:
        """Start an episode with plant parameters `config` (the scenario places the stations on a site
        network and gives OfflineOptimal its foresight); builds `network` unless config.network is 'area'."""
        if scenario is None and is_site(config.network):
            raise ValueError(f"{type(self).__name__}.reset: network {config.network!r} places each station by the "
                             "scenario's station ids: pass the scenario, reset(config, scenario)")
        self.config = config
        self.network = None if config.network == "area" else site_network(
            config, scenario.station_ids if scenario is not None else None)
        self.last_stats = stats()
        self._reset(config, scenario, seed)

    def _reset(self, config: EnvConfig, scenario: Scenario | None, seed: int | None) -> None:
        """Policy specific reset (default: nothing to do)."""

    # -- acting --------------------------------------------------------------------
    def act_array(self, obs: np.ndarray) -> np.ndarray:
        """Requested powers (N,) kW for the stacked observations (N, N_OBS)."""
        if self.config is None:
            raise RuntimeError(f"{type(self).__name__}.act_array called before reset(config)")
        obs = np.asarray(obs)
        n = self.config.n_stations
        if obs.shape != (n, N_OBS):
            raise ValueError(f"{type(self).__name__}: obs.shape = {obs.shape}: must be ({n}, {N_OBS})")
        if not np.all(np.isfinite(obs)):
            raise ValueError(f"{type(self).__name__}: obs contains NaN/inf: must be finite")
        start = time.perf_counter()
        action, info = self._act(Observed(obs, self.config.P_ref))
        elapsed = time.perf_counter() - start
        self.last_stats = stats(**{"solve_time_s": elapsed, **info})
        return action

    @abstractmethod
    def _act(self, ob: Observed) -> tuple[np.ndarray, dict[str, Any]]:
        """Return requested powers (N,) kW and stats entries (iterations, converged, ...)."""

    def act(self, observations: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """PettingZoo form: ``{"cs_i": obs_i}`` -> ``{"cs_i": np.array([kW], float32)}``."""
        if self.config is None:
            raise RuntimeError(f"{type(self).__name__}.act called before reset(config)")
        n = self.config.n_stations
        expected = {f"cs_{i}" for i in range(n)}
        if set(observations) != expected:
            raise ValueError(
                f"{type(self).__name__}.act: agents {sorted(observations)}: must be exactly cs_0..cs_{n - 1}"
            )
        agents = [f"cs_{i}" for i in range(n)]
        obs = np.stack([np.asarray(observations[a], dtype=np.float64).reshape(-1) for a in agents])
        action = to_float32_below(self.act_array(obs), Observed(obs, self.config.P_ref))
        return {a: np.array([v], dtype=np.float32) for a, v in zip(agents, action)}


def to_float32_below(action: np.ndarray, ob: Observed) -> np.ndarray:
    """Cast to float32 without rounding up above the station floor, so float32 sums stay <= P_ref."""
    a32 = action.astype(np.float32)
    up = (a32.astype(np.float64) > action) & (action > ob.floor_kw())
    a32[up] = np.nextafter(a32[up], np.float32(0.0))
    return a32

