"""Real data is cleaned and reported, never blocked by one bad row (issue 20, items 8 and 9)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pev_env import acn
from pev_env.config import EnvConfig
from pev_env.scenario import Scenario, read_sessions_csv
from pev_env.scenarios import make_scenario, resolve

HEADER = "arrival,departure,requested_energy (kWh),delivered_energy (kWh),station_id,session_id,estimated_departure,claimed\n"
GLITCH = [  # the 2021 Caltech file's DC charger has one session averaging 809 kW
    "2021-05-06 10:00:00-07:00,2021-05-06 12:00:00-07:00,5,4,CA-1,a,x,True",
    "2021-05-06 10:00:00-07:00,2021-05-06 10:05:00-07:00,80,67.4,11900388,glitch,x,True",
    "2021-05-07 09:00:00-07:00,2021-05-07 10:00:00-07:00,45,40,11900388,dc,x,True",
]


def _write(tmp_path: Path, rows: list[str], name: str = "site.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


# ------------------------------------------------------------------------------------ item 8
def test_an_impossible_session_is_left_out_and_reported_once(tmp_path, caplog):
    path = _write(tmp_path, GLITCH)
    with caplog.at_level(logging.WARNING, logger="pev_env.acn"):
        first = Scenario.from_acn(path, day="2021-05-06")
        later = Scenario.from_acn(path, day="2021-05-07")
    assert first.n_pevs == 1 and first.station_ids == ("11900388", "CA-1")  # the glitch is not a session
    np.testing.assert_allclose(later.p_max, [50.0, 6.6])  # the DC charger's rating, from its real session
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "1 physically impossible" in lines[0] and "glitch at 11900388 808.8 kW" in lines[0]
    (report,) = acn.data_report(path)
    assert report["impossible"] == {"count": 1, "sessions": [{"session": "glitch", "station": "11900388",
                                                             "average_kw": 808.8}]}
    assert (report["rows"], report["kept"]) == (3, 2)


def test_a_rating_override_skips_the_inference_of_its_stations():
    start = pd.Timestamp("2021-05-06 10:00", tz=acn.TIMEZONE)
    frame = pd.DataFrame({"station_id": ["11900388", "CA-1"], "arrival": [start] * 2,
                          "departure": [start + pd.Timedelta(minutes=5), start + pd.Timedelta(hours=2)],
                          "delivered_energy_kwh": [67.4, 4.0]})
    with pytest.raises(ValueError, match="'11900388': rating cannot be inferred"):
        acn.station_ratings(frame, ["11900388", "CA-1"])
    np.testing.assert_allclose(acn.station_ratings(frame, ["11900388", "CA-1"], {"11900388": 50}), [50.0, 6.6])
    with pytest.raises(ValueError, match=r"ratings: station_id 'CA-9' not in stations"):
        acn.station_ratings(frame, ["11900388", "CA-1"], {"CA-9": 50})


def test_per_station_p_max_is_checked_against_the_stations_of_the_data(tmp_path):
    spec = f"acn:{_write(tmp_path, GLITCH)}:2021-05-07"
    config, scenario = make_scenario(spec, 0, base=EnvConfig(p_max=(50.0, 7.2)))  # 2 stations, not the base's 6
    np.testing.assert_allclose(scenario.p_max, [50.0, 7.2])
    np.testing.assert_allclose(config.station_p_max, [50.0, 7.2])
    with pytest.raises(ValueError, match=r"ratings \(env.p_max\) = \(50.0, 7.2, 6.6\): must be one kW value or 2"):
        make_scenario(spec, 0, base=EnvConfig(p_max=(50.0, 7.2, 6.6)))
    with pytest.raises(ValueError, match=r"^EnvConfig.p_max = \(50.0, 7.2\): must be a number or 6 values"):
        make_scenario("seed", 0, base=EnvConfig(p_max=(50.0, 7.2)))  # the seed plant keeps its 6 stations
    with pytest.raises(ValueError, match=r"must be a number or 3 values"):
        EnvConfig(n_stations=3, p_max=(50.0, 7.2))  # a set n_stations still fixes the length


def test_a_bare_shipped_file_name_resolves_to_the_package_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = acn.MONTH_FILES[0].name
    _, (path, _) = resolve(f"acn:{name}:2019-05-13")
    assert path == acn.MONTH_FILES[0]
    _write(tmp_path, GLITCH, name)  # a file of that name in the working directory wins
    _, (path, _) = resolve(f"acn:{name}:2019-05-13")
    assert path == tmp_path / name


# ------------------------------------------------------------------------------------ item 9
def test_naive_timestamps_are_local_site_time(tmp_path):
    path = _write(tmp_path, ["2019-05-06 10:00:00,2019-05-06 12:00:00,5,4,CA-1,a,x,True",
                             "2019-05-06 10:00:00-07:00,2019-05-06 12:00:00-07:00,5,4,CA-2,b,x,True",
                             '"Mon, 06 May 2019 17:00:00 GMT",2019-05-06T19:00:00+0000,5,4,CA-3,c,x,True',
                             "2019-05-06T17:00:00Z,2019-05-06T19:00:00.5Z,5,4,CA-4,d,x,True"])
    s = Scenario.from_acn(path)
    np.testing.assert_array_equal(s.arrival, [120] * 4)  # 10:00 local, not 10:00 UTC (03:00 local)
    assert acn.data_report(path)[0]["naive_timestamps"] == {"count": 2, "read_as": "America/Los_Angeles", "repeated_hour": 0,
                                                            "repeated_hour_reversed": 0}


def test_duplicates_and_reversed_sessions_are_dropped_and_counted(tmp_path):
    row = "2019-05-06 10:00:00-07:00,2019-05-06 12:00:00-07:00,5,4,CA-1,{},x,True"
    path = _write(tmp_path, [row.format("a"), row.format("a2"), row.format("a3"),
                             "2019-05-06 13:00:00-07:00,2019-05-06 12:00:00-07:00,5,4,CA-2,back,x,True"])
    assert Scenario.from_acn(path).n_pevs == 1  # the demand is not doubled
    (report,) = acn.data_report(path)
    assert report["duplicate"]["count"] == 2 and [s["session"] for s in report["duplicate"]["sessions"]] == ["a2", "a3"]
    assert report["departure_before_arrival"] == {"count": 1, "sessions": [{"session": "back", "station": "CA-2",
                                                                           "average_kw": None}]}


@pytest.mark.parametrize("row, message", [
    ("2019-05-06 10:00:00-07:00,2019-05-06 12:00:00-07:00,abc,4,CA-1,a,x,True",
     r"line 2: requested_energy_kwh = 'abc': must be a finite number of kWh or empty$"),
    (",2019-05-06 12:00:00-07:00,5,4,CA-1,a,x,True", r"line 2: arrival = '': empty"),
    ("2019-05-06 10:00:00-07:00,tomorrow,5,4,CA-1,a,x,True", r"line 2: departure = 'tomorrow': not a timestamp"),
    ("05/12/2019 10:00,05/12/2019 12:00,5,4,CA-1,a,x,True", r"line 2: arrival = '05/12/2019 10:00': not a timestamp in "
                                                           r"ISO 8601 .*a numeric date like 05/12/2019 is ambiguous"),
    ("2019-05-06 10:00:00-07:00,2019-05-06 12:00:00-07:00,5,4,,a,x,True", r"line 2: station_id = '': empty"),
    ("2019-05-06 10:00:00-07:00,2019-05-06 12:00:00-07:00,5,4,CA-1,a,x,True,extra",
     "more fields than the header"),
])
def test_malformed_rows_are_refused_in_one_line(tmp_path, row, message):
    path = _write(tmp_path, [row, "2019-05-06 09:00:00-07:00,2019-05-06 12:00:00-07:00,5,4,CA-2,z,x,True"])
    with pytest.raises(ValueError, match=message) as info:
        acn.load_acn_sessions(path)
    assert "\n" not in str(info.value)


def test_scenario_csv_with_an_extra_field_is_refused(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("arrival_step,departure_step,soc_init_kwh,soc_target_kwh,capacity_kwh,station\n0,10,0,10,60,0,7\n")
    with pytest.raises(ValueError, match="more fields than the header"):
        read_sessions_csv(path)


def test_an_absurd_energy_is_left_out_not_a_nan(tmp_path):
    path = _write(tmp_path, ["2019-05-06 10:00:00-07:00,2019-05-06 12:00:00-07:00,1e300,4,CA-1,a,x,True",
                             "2019-05-06 10:00:00-07:00,2019-05-06 12:00:00-07:00,8,1e300,CA-2,b,x,True"])
    s = Scenario.from_acn(path)
    assert s.n_pevs == 1 and s.soc_target.tolist() == [100.0]  # request capped at the largest battery
    assert acn.data_report(path)[0]["impossible"]["count"] == 1


def test_the_data_report_is_recorded_in_run_json(tmp_path):
    from experiments.cli.main import main
    from pev_env.scenarios import scenario_data_reports

    spec = f"acn:{_write(tmp_path, GLITCH)}:2021-05-07"
    assert scenario_data_reports(["seed", spec]) == {
        spec: acn.data_report(tmp_path / "site.csv", days=[pd.Timestamp("2021-05-07").date()])}
    out = tmp_path / "out"
    assert main(["compare", "--scenarios", spec, "--controllers", "llf", "--seeds", "0", "--out", str(out),
                 "--no-plots", "--no-traces", "-q"]) == 0
    report = json.loads((out / "run.json").read_text())["data_report"]
    assert report[spec][0]["impossible"]["sessions"][0]["session"] == "glitch"


def test_a_timestamp_with_the_month_by_name_is_read(tmp_path):
    """ACN-Data's API writes RFC 2822 (GMT); such a file reads the same as one in ISO 8601."""
    rfc = _write(tmp_path, ['"Mon, 06 May 2019 17:00:00 GMT","Mon, 06 May 2019 19:00:00 GMT",5,4,CA-1,a,x,True'])
    sessions = acn.load_acn_sessions(rfc)
    assert str(sessions["arrival"].iloc[0]) == "2019-05-06 10:00:00-07:00"


# ------------------------------------------------------------------------- used as written, reported
BASE = "2019-05-07 {}-07:00,2019-05-07 {}-07:00,{},{},{},{},x,True"


def test_a_rating_resting_on_one_session_is_named(tmp_path):
    """One 40 kWh-in-1-h typo on 05-09 rates CA-314 at 50 kW on every day: named in the data note."""
    path = _write(tmp_path, [BASE.format("08:00", "12:00", 10, 10, "CA-314", "a"),
                             BASE.format("12:00", "15:00", 10, 9, "CA-314", "b"),
                             BASE.format("09:00", "12:00", 10, 9, "CA-2", "c"),
                             BASE.replace("05-07", "05-09").format("09:00", "10:00", 4, 40, "CA-314", "typo1")])
    assert Scenario.from_acn(path, day="2019-05-07").p_max.tolist() == [6.6, 50.0]  # as before, now reported
    (report,) = acn.data_report(path)
    assert report["rating_outliers"]["stations"] == [{"station": "CA-314", "rating_kw": 50.0, "session": "typo1",
                                                     "average_kw": 40.0, "next_kw": 3.0}]
    assert ("1 station ratings rest on one session averaging more than 2x the station's next-fastest and apply on every "
            "day of the file unless env.p_max is set (CA-314 50 kW from typo1 at 40 kW, next 3 kW)") in acn.report_line(report)
    for shipped in (acn.SAMPLE_FILE, *acn.MONTH_FILES):  # the shipped ratings rest on no such session
        assert acn.data_report(shipped)[0]["rating_outliers"]["count"] == 0


def test_shared_session_ids_and_overlaps_at_a_station_are_reported(tmp_path):
    path = _write(tmp_path, [BASE.format("08:00", "12:00", 10, 10, "CA-1", "s1"),
                             BASE.format("08:00", "12:00", 12, 10, "CA-1", "s1"),  # not identical: kept
                             BASE.format("13:00", "15:00", 5, 5, "CA-1", "s2")])
    assert Scenario.from_acn(path).n_pevs == 3
    (report,) = acn.data_report(path)
    assert report["shared_session_ids"] == {"count": 1, "rows": 2, "sessions": [
        {"session": "s1", "station": "CA-1", "line": 2}, {"session": "s1", "station": "CA-1", "line": 3}]}
    assert report["station_overlaps"] == {"count": 1, "sessions": [{"session": "s1", "station": "CA-1", "line": 3}]}
    line = acn.report_line(report)
    assert ("1 session ids on more than one row (2 rows: s1 at CA-1 line 2, s1 at CA-1 line 3), each row kept as a PEV "
            "of its own; 1 sessions arrive before an earlier session at their station has left (s1 at CA-1 line 3), "
            "kept: each waits until its station is free") in line


def test_the_rules_of_building_a_day_are_counted(tmp_path):
    path = _write(tmp_path, [BASE.format("08:00", "12:00", -1, 10, "CA-1", "negative"),
                             BASE.format("08:00", "12:00", "", 9, "CA-2", "missing"),
                             BASE.format("08:00", "12:00", 150, 90, "CA-3", "large"),
                             BASE.format("08:00", "08:03", 1, 0.1, "CA-4", "short"),
                             BASE.format("08:00", "12:00", 0, 0, "CA-5", "empty")])
    assert Scenario.from_acn(path).n_pevs == 4
    (report,) = acn.data_report(path)
    assert report["day_rules"] == {"days": 1, "sampling_time": 5.0, "max_battery_kwh": 100.0, "shorter_than_step": 1,
                                   "request_replaced": 3, "no_energy": 1, "capped": 1}
    assert ("building its 1 days: 1 sessions shorter than one 5-min step (dropped), 3 requests missing or <= 0 (the "
            "delivered energy used), 1 sessions with no energy to charge (request and delivered energy missing or 0), "
            "1 requests above acn_battery_max_kwh = 100 kWh (capped to it)") in acn.report_line(report)
    assert acn.data_report(path, sampling_time=1.0, max_battery_kwh=200.0)[0]["day_rules"]["capped"] == 0


def test_a_day_with_nothing_to_charge_is_refused(tmp_path):
    path = _write(tmp_path, [BASE.format("08:00", "08:03", 1, 0.1, "CA-1", "short"),
                             BASE.format("08:00", "12:00", 0, 0, "CA-2", "empty"),
                             BASE.replace("05-07", "05-08").format("08:00", "12:00", 5, 5, "CA-1", "ok")])
    with pytest.raises(ValueError, match=r"^ACN file '.*site.csv': day 2019-05-07: none of its 2 sessions is left to "
                                         r"charge: 1 sessions shorter than one 5-min step \(dropped\), 1 sessions with "
                                         r"no energy .*; the episode would be empty$"):
        make_scenario(f"acn:{path}:2019-05-07", 0)
    assert Scenario.from_acn(path, day="2019-05-07", sampling_time=1.0).n_pevs == 2  # 3 min are 3 steps of 1 min


def test_two_digit_utc_offsets_are_read(tmp_path):
    """PostgreSQL writes -07 for -07:00; it was read as local time and crashed ('Already tz-aware')."""
    path = _write(tmp_path, ["2019-05-07 08:00:00-07,2019-05-07 12:00:00-07,10,10,CA-1,a,x,True",
                             "2019-05-07 09:00:00,2019-05-07T12-07,10,10,CA-2,b,x,True",
                             "2019-05-07 09:00:00.5 +05,2019-05-07 12:00:00+0530,10,10,CA-3,c,x,True"])
    sessions = acn.load_acn_sessions(path)
    assert [str(t) for t in sessions["arrival"]] == ["2019-05-06 21:00:00.500000-07:00", "2019-05-07 08:00:00-07:00",
                                                     "2019-05-07 09:00:00-07:00"]
    assert str(sessions["departure"].iloc[2]) == "2019-05-07 12:00:00-07:00"  # T12-07: 12:00 at -07
    assert acn.data_report(path)[0]["naive_timestamps"]["count"] == 1


def test_a_zone_less_time_in_the_repeated_dst_hour_is_noted(tmp_path):
    path = _write(tmp_path, ["2019-11-03 01:40:00,2019-11-03 01:20:00,5,1,CA-1,n2,x,True",  # 01:40 PDT - 01:20 PST?
                             "2019-11-03 08:00:00,2019-11-03 12:00:00,5,5,CA-2,n3,x,True"])
    (report,) = acn.data_report(path)
    assert report["naive_timestamps"] == {"count": 4, "read_as": acn.TIMEZONE, "repeated_hour": 2,
                                          "repeated_hour_reversed": 1}
    assert ("(2 in the hour repeated when daylight saving time ends, read as standard time; 1 of the sessions left out "
            "as departing before they arrive has such a timestamp)") in acn.report_line(report)
