"""A causal forecast of arrivals from a site's other days (the `mpc-history` policy).

For each station that is free at a step, the forecast looks at the sessions that station had on the site's
other days within the next `window` steps of the same time of day (only each day's first such session, and
only after the station's current PEV leaves). If some days had one, it forecasts one expected PEV there: its
arrival and stay are those sessions' means, and its energy is their mean energy times the share of days that
had one. The policy scales their energies by how busy the day is so far: the sessions seen since the
episode began against the history's mean by the same step, (seen + NOWCAST_PRIOR) / (mean + NOWCAST_PRIOR),
kept within NOWCAST_RANGE (`ArrivalHistory.nowcast`). The MPC plans these expected PEVs like known ones
(`pev_mpc.foresight.with_coming`) and keeps room for them on the rows they will load. It reads the episode's
own sessions only to leave out a history day that has the same sessions (the same day, read through another
scenario name: `ArrivalHistory.leaving_out`, `day_key`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from pev_env.config import EnvConfig
from pev_env.scenario import Scenario
from pev_env.scenarios.registry import make_scenario, scenario_episodes
from pev_mpc.foresight import ComingPEVs

MAX_HISTORY_DAYS = 10_000
"""The most days (distinct episodes of the history's scenario) a history reads."""
NOWCAST_PRIOR = 3.0
"""Sessions added to both the day's count so far and the history's mean count in the nowcast factor (so that
the first sessions of a day do not swing it)."""
NOWCAST_RANGE = (0.5, 2.0)
"""The nowcast factor is kept within these bounds."""


def station_names(scenario: Scenario) -> tuple[str, ...]:
    """The scenario's station ids; '0', '1', ... when it has none."""
    return tuple(scenario.station_ids or (str(i) for i in range(scenario.n_stations)))


def day_key(scenario: Scenario) -> str:
    """A digest of a day's sessions (station ids, arrivals, departures): one day read through two scenario
    names has one key."""
    ids = station_names(scenario)
    digest = hashlib.sha256("\0".join(ids[s] if s >= 0 else "" for s in scenario.station).encode())
    for steps in (scenario.arrival, scenario.departure):
        digest.update(np.ascontiguousarray(steps, dtype=np.int64).tobytes())
    return digest.hexdigest()


class ArrivalHistory(NamedTuple):
    """The sessions of a site's other days, by the stations of one episode (arrays (S,))."""

    station: np.ndarray
    """int: the episode's index of the session's station."""
    arrival: np.ndarray
    """int: the step of its day at which it plugged in."""
    departure: np.ndarray
    """int: the step at which it left."""
    energy_kwh: np.ndarray
    """kWh it asked for."""
    day: np.ndarray
    """int: which history day it is from (an index of `keys`)."""
    keys: tuple[str, ...]
    """The history days' `day_key`s."""

    @property
    def n_days(self) -> int:
        """How many days the history has."""
        return len(self.keys)

    @classmethod
    def read(cls, spec: str, station_ids: Sequence[str], config: EnvConfig) -> ArrivalHistory:
        """The sessions of every distinct episode (day) of scenario `spec` built on `config`, at the stations
        `station_ids` of the episode (sessions at other stations are dropped). ValueError when a day's steps
        are not the episode's or no session is at its stations."""
        where = {sid: i for i, sid in enumerate(station_ids)}
        rows, keys = [], []
        for episode in sorted(set(scenario_episodes(spec, range(MAX_HISTORY_DAYS)))):
            day_config, day = make_scenario(spec, episode, config)
            if not np.isclose(day_config.dt_h, config.dt_h):
                raise ValueError(f"mpc.policy.history = {spec!r}: its steps are {day_config.dt_h * 60:g} min, the "
                                 f"episode's {config.dt_h * 60:g} min: a history must have the episode's steps")
            ids = station_names(day)
            station = np.array([where.get(ids[s], -1) if s >= 0 else -1 for s in day.station], dtype=np.int64)
            keep = station >= 0
            rows.append(np.column_stack([station[keep], np.asarray(day.arrival)[keep],
                                         np.asarray(day.departure)[keep], day.energy_requested[keep],
                                         np.full(int(keep.sum()), len(keys))]))
            keys.append(day_key(day))
        table = np.vstack(rows)
        if table.shape[0] == 0:
            raise ValueError(f"mpc.policy.history = {spec!r}: no session of its days is at a station of this "
                             "episode: a history must be of the same site")
        return cls(table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2].astype(np.int64),
                   table[:, 3], table[:, 4].astype(np.int64), tuple(keys))

    def leaving_out(self, key: str) -> ArrivalHistory:
        """This history without the days whose `day_key` is `key` (the episode's own day, when it holds it)."""
        stays = np.array([day != key for day in self.keys])
        if stays.all():
            return self
        keep = stays[self.day]
        renumber = np.cumsum(stays) - 1
        return ArrivalHistory(self.station[keep], self.arrival[keep], self.departure[keep], self.energy_kwh[keep],
                              renumber[self.day[keep]], tuple(np.array(self.keys)[stays]))

    def nowcast(self, step: int, seen: int) -> float:
        """How busy the day is against the history: (seen + NOWCAST_PRIOR) / (mean + NOWCAST_PRIOR), within
        NOWCAST_RANGE, where `seen` sessions began in steps 0 .. step and `mean` is the history's mean count of
        sessions that began by then."""
        mean = np.count_nonzero(self.arrival <= step) / self.n_days
        return float(np.clip((seen + NOWCAST_PRIOR) / (mean + NOWCAST_PRIOR), *NOWCAST_RANGE))

    def expected(self, step: int, window: int, busy_until: np.ndarray) -> ComingPEVs:
        """The expected PEVs of steps step + 1 .. step + window (module doc), in steps from now; busy_until (N,):
        the step at which each station's current PEV leaves (`step` when free)."""
        free_from = np.maximum(step, busy_until[self.station])
        pick = np.flatnonzero((self.arrival > free_from) & (self.arrival <= step + window))
        if pick.size == 0:
            none = np.zeros(0, dtype=np.int64)
            return ComingPEVs(none, none, none, np.zeros(0))
        pick = pick[np.lexsort((self.arrival[pick], self.station[pick], self.day[pick]))]
        _, first = np.unique(self.day[pick] * busy_until.size + self.station[pick], return_index=True)
        pick = pick[first]
        station, count = np.unique(self.station[pick], return_counts=True)
        at = np.searchsorted(station, self.station[pick])

        def mean(values: np.ndarray) -> np.ndarray:
            return np.bincount(at, values, station.size) / count

        arrival = np.maximum(np.rint(mean(self.arrival[pick])).astype(np.int64) - step, 1)
        stay = np.maximum(np.rint(mean(self.departure[pick] - self.arrival[pick])).astype(np.int64), 1)
        energy = mean(self.energy_kwh[pick]) * count / self.n_days
        return ComingPEVs(station, arrival, arrival + stay, energy)
