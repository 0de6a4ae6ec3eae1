"""ACN-Data loader and one-day scenarios, on the packaged Caltech sample and tiny hand-made files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pev_env
from pev_env.acn import day_sessions, load_acn_sessions, session_days
from pev_env.scenario import Scenario

HEADER = "arrival,departure,requested_energy (kWh),delivered_energy (kWh),station_id,session_id,estimated_departure,claimed\n"


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return load_acn_sessions()


def test_sample_is_packaged_small_and_attributed():
    data = Path(pev_env.__file__).parent / "data"
    assert (data / "acn_caltech_sample.csv.gz").stat().st_size < 100_000
    readme = (data / "README.md").read_text()
    assert "CC BY 4.0" in readme and "ACN-Data" in readme and "Lee" in readme


def test_package_never_reads_the_shared_data_folder():
    sources = Path(pev_env.__file__).parent.rglob("*.py")
    assert not [p.name for p in sources if "/work/shared" in p.read_text() or "shared/data" in p.read_text()]


def test_load_sample_sessions(sample):
    assert len(sample) == 233
    assert {"arrival", "departure", "requested_energy_kwh", "delivered_energy_kwh", "station_id", "session_id"} <= set(
        sample.columns
    )
    assert str(sample["arrival"].dt.tz) == "America/Los_Angeles"
    assert (sample["departure"] > sample["arrival"]).all()
    assert sample["arrival"].is_monotonic_increasing
    # kWh: plausible per-session energies (a few to tens of kWh, never negative)
    assert sample["requested_energy_kwh"].between(0, 150).all()
    assert sample["delivered_energy_kwh"].between(0, 100).all()
    assert 5 < sample["requested_energy_kwh"].median() < 40


def test_sample_covers_one_monday_to_sunday_week(sample):
    days = session_days(sample)
    assert days == [dt.date(2019, 5, 6) + dt.timedelta(days=k) for k in range(7)]
    assert session_days(sample, weekdays_only=True) == days[:5]


def test_day_sessions_on_the_step_grid(sample):
    day = day_sessions(sample, "2019-05-07", sampling_time=5)
    assert len(day) == 48
    assert (day["arrival"].dt.date == dt.date(2019, 5, 7)).all()
    assert day["arrival_step"].between(0, 287).all() and (day["departure_step"] >= 1).all()
    assert (day["departure_step"] > day["arrival_step"]).all()
    local = day["arrival"].dt.hour * 60 + day["arrival"].dt.minute
    np.testing.assert_array_equal(day["arrival_step"], local // 5)
    stations = sorted(sample["station_id"].unique())  # every station of the file is an agent
    np.testing.assert_array_equal(day["station"], [stations.index(i) for i in day["station_id"]])


def test_from_acn_scenario(sample):
    s = Scenario.from_acn(day="2019-05-07")
    assert isinstance(s, Scenario) and s.name == "acn-caltech-2019-05-07"
    day = day_sessions(sample, "2019-05-07")
    assert (s.n_pevs, s.n_stations, s.sampling_time) == (48, 42, 5.0)
    assert s.n_steps == max(288, day["departure_step"].max()) > 288  # a PEV leaves after midnight: kept
    assert np.all(s.soc_init == 0) and np.all(s.soc_target <= s.capacity)
    assert np.all((s.capacity >= 60.0) & (s.capacity <= 100.0))
    np.testing.assert_allclose(s.soc_target, np.minimum(day["requested_energy_kwh"], 100.0))
    assert Scenario.from_acn(day=None).name == "acn-caltech-2019-05-06"  # first day of the file


def test_from_acn_with_fixed_stations_and_coarser_steps(sample):
    stations = sorted(sample["station_id"].unique())[::-1]
    s = Scenario.from_acn(day=dt.date(2019, 5, 11), sampling_time=15, stations=stations)
    day = day_sessions(sample, "2019-05-11", 15)
    assert (s.n_stations, s.n_steps) == (len(stations), max(96, day["departure_step"].max()))
    ids = day["station_id"]
    np.testing.assert_array_equal(s.station, [stations.index(i) for i in ids])


def _write(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "sessions.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


def test_missing_request_uses_delivered_clips_next_day_and_drops_short(tmp_path):
    path = _write(
        tmp_path,
        [
            "2019-05-06 10:02:00-07:00,2019-05-07 09:00:00-07:00,,12.5,CA-2,a,x,True",  # runs past midnight
            "2019-05-06 10:02:00-07:00,2019-05-06 10:04:00-07:00,5,4,CA-1,b,x,True",  # shorter than a step
            "2019-05-06 07:00:00-07:00,2019-05-06 09:59:00-07:00,130,40,CA-1,c,x,True",  # huge request
            "2019-05-07 01:00:00-07:00,2019-05-07 09:00:00-07:00,5,4,CA-3,d,x,True",  # another day
        ],
    )
    s = Scenario.from_acn(path, day="2019-05-06")
    np.testing.assert_array_equal(s.arrival, [84, 120])
    np.testing.assert_array_equal(s.departure, [119, (1440 + 540) // 5])  # next morning: the episode extends
    assert s.n_steps == (1440 + 540) // 5 and s.name == "acn-sessions-2019-05-06"
    np.testing.assert_allclose(s.soc_target, [100.0, 12.5])  # capped to 100 kWh; delivered fallback
    np.testing.assert_allclose(s.capacity, [100.0, 60.0])
    np.testing.assert_array_equal(s.station, [0, 1])
    assert s.n_stations == 3  # CA-3 arrives only on another day, but is a station of the file


def test_loader_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("arrival,departure,station_id\n")
    with pytest.raises(ValueError, match=r"missing columns \['requested_energy \(kWh\)', 'delivered_energy \(kWh\)'\]"):
        load_acn_sessions(bad)
    path = _write(tmp_path, ["2019-05-06 10:00:00-07:00,2019-05-06 12:00:00-07:00,5,4,CA-1,a,x,True"])
    with pytest.raises(ValueError, match=r"ACN day = 2019-05-09: no sessions arrive that day in .*nearest days with sessions: 2019-05-06"):
        Scenario.from_acn(path, day="2019-05-09")
    with pytest.raises(ValueError, match="sampling_time = 7: must be > 0 minutes and divide 1440"):
        Scenario.from_acn(path, day="2019-05-06", sampling_time=7)
    with pytest.raises(ValueError, match="station_id 'CA-1' not in stations"):
        Scenario.from_acn(path, day="2019-05-06", stations=["CA-9"])
    with pytest.raises(ValueError, match="battery_kwh"):
        Scenario.from_acn(path, battery_kwh=200.0)
