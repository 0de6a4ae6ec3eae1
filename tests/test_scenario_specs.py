"""Scenario specs (acn:PATH:DAY, csv:PATH) through the API and the CLI; the one registry; date and file errors."""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pev_env
from pev_env import ChargingCore, EnvConfig, PEVChargeEnv, Scenario, acn
from pev_env.scenarios import (SCENARIO_NAMES, check_scenario, make_scenario, scenario_files, scenario_label,
                               scenario_names)
from pev_env.scenarios.acn_caltech import caltech_days

HEADER = "arrival,departure,requested_energy (kWh),delivered_energy (kWh),station_id,session_id,estimated_departure,claimed\n"
JPL_HEADER = "arrival,departure,requested_energy,delivered_energy,station_id,session_id\n"  # the other spelling
JPL_ROWS = [  # a JPL-like site: other station ids, plain CSV, a session past midnight and a fast charger
    "2019-05-03 08:00:00-07:00,2019-05-03 17:00:00-07:00,20,19.5,AG-1F01,a",
    "2019-05-03 09:30:00-07:00,2019-05-04 07:30:00-07:00,30,29,AG-1F02,b",
    "2019-05-03 12:00:00-07:00,2019-05-03 13:00:00-07:00,40,38,AG-DCFC,c",
    "2019-05-06 08:00:00-07:00,2019-05-06 12:00:00-07:00,10,9,AG-1F01,d",
    "2019-05-13 08:00:00-07:00,2019-05-13 12:00:00-07:00,10,9,AG-1F03,e",
]


@pytest.fixture
def jpl_file(tmp_path: Path) -> Path:
    path = tmp_path / "jpl.csv"
    path.write_text(JPL_HEADER + "".join(r + "\n" for r in JPL_ROWS))
    return path


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    scenario = Scenario(arrival=[0, 2, 5], departure=[10, 8, 30], soc_init=[0.0, 1.0, 2.0], soc_target=[8.0, 6.0, 9.0],
                        capacity=[40.0, 40.0, 40.0], station=[0, 2, 1], n_stations=3, n_steps=30)
    return scenario.to_csv(tmp_path / "my sessions.csv")


# ------------------------------------------------------------------------------- API
def test_acn_spec_of_another_site(jpl_file):
    config, s = make_scenario(f"acn:{jpl_file}:2019-05-03", 0)
    assert s.name == scenario_label(f"acn:{jpl_file}:2019-05-03") == "acn-jpl-2019-05-03"
    assert s.n_stations == config.n_stations == 4  # every station id of the file, also those idle that day
    assert (s.n_pevs, config.n_pevs) == (3, 3)
    assert s.n_steps == config.n_steps == (1440 + 450) // 5  # the PEV leaving at 07:30 next day is kept
    np.testing.assert_array_equal(config.station_p_max, [6.6, 6.6, 6.6, 50.0])  # AG-DCFC averages 38 kW
    assert config.soc_max == config.soc_ref == s.capacity.max()
    assert 0 < config.P_ref < config.P_max
    ChargingCore(config, s).step(config.station_p_max)


def test_acn_spec_of_the_shipped_caltech_file_and_overrides():
    spec = f"acn:{acn.MONTH_FILES[1]}:2019-10-01"
    config, s = make_scenario(spec, 0)
    assert s.n_stations == acn.load_acn_sessions(acn.MONTH_FILES[1])["station_id"].nunique() == 51
    assert config.p_max == 6.6 and config.area_limit_fraction == 0.8
    # the user's P_ref, ratings and battery cap win; the area limit fraction is a setting
    base = EnvConfig(P_ref=50.0, p_max=7.2, acn_battery_max_kwh=80.0)
    config2, s2 = make_scenario(spec, 0, base)
    assert (config2.P_ref, config2.p_max, s2.capacity.max()) == (50.0, 7.2, 80.0)
    config3, _ = make_scenario(spec, 0, EnvConfig(area_limit_fraction=0.5))
    assert config3.P_ref == pytest.approx(config.P_ref * 0.5 / 0.8, abs=0.1)


def test_csv_spec_derives_stations_and_steps(csv_file):
    spec = f"csv:{csv_file}"
    config, s = make_scenario(spec, 7)
    assert s.name == scenario_label(spec) == "csv-my_sessions"
    assert (s.n_stations, s.n_steps, s.n_pevs) == (3, 30, 3) == (config.n_stations, config.n_steps, config.n_pevs)
    assert config.p_max == 22.0 and config.xi == 0.1  # plant constants from the base
    config2, s2 = make_scenario(spec, 0, EnvConfig(n_stations=5, total_time=300.0, P_ref=20.0, p_max=11.0))
    assert (s2.n_stations, s2.n_steps, config2.P_ref, config2.p_max) == (5, 60, 20.0, 11.0)
    ChargingCore(config2, s2).step(np.zeros(5))


def test_display_names_and_checksums(jpl_file):
    assert scenario_label("acn-caltech") == "acn-caltech" and scenario_files("seed") == {}
    files = scenario_files(f"acn:{jpl_file}:2019-05-03")
    import hashlib

    assert files == {str(jpl_file.resolve()): hashlib.sha256(jpl_file.read_bytes()).hexdigest()}
    # the shipped files by their place in the package: a row's settings fingerprint is the same in every checkout
    assert list(scenario_files("acn-caltech-eval")) == [f"pev_env/data/{p.name}" for p in acn.MONTH_FILES]
    assert scenario_files("acn-caltech") == {"pev_env/data/acn_caltech_sample.csv.gz": hashlib.sha256(
        acn.SAMPLE_FILE.read_bytes()).hexdigest()}


def test_one_registry_for_names_and_the_harness():
    from experiments.controllers import registry

    assert registry.scenario_names() == scenario_names()
    assert scenario_names()[: len(SCENARIO_NAMES)] == SCENARIO_NAMES
    for bad in ("synthetic-01", "synthetic-0", "acn-jpl"):
        for check in (check_scenario, registry.check_scenario):
            with pytest.raises(ValueError, match=f"unknown scenario '{bad}'"):
                check(bad)
    check_scenario("synthetic-10")


def test_a_data_file_is_parsed_once_for_all_its_days(monkeypatch):
    """The 3,527-session file is read once; another day of it comes from the cache (its speed: benchmarks)."""
    monkeypatch.setattr(acn, "_CACHE", {})
    make_scenario(f"acn:{acn.MONTH_FILES[0]}:2019-06-04", 0)
    monkeypatch.setattr(acn, "_read", lambda path: pytest.fail(f"{path} parsed again"))
    make_scenario(f"acn:{acn.MONTH_FILES[0]}:2019-06-05", 0)


def test_parsed_files_are_cached_per_path_and_mtime(jpl_file, monkeypatch):
    monkeypatch.setattr(acn, "_CACHE", {})
    make_scenario(f"acn:{jpl_file}:2019-05-03", 0)
    make_scenario(f"acn:{jpl_file}:2019-05-06", 0)
    assert len(acn._CACHE) == 1
    jpl_file.write_text(HEADER.replace("requested_energy (kWh)", "requested_energy (kWh)")
                        + "2019-05-03 08:00:00-07:00,2019-05-03 17:00:00-07:00,20,19.5,X-1,a,x,True\n")
    os.utime(jpl_file, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert make_scenario(f"acn:{jpl_file}:2019-05-03", 0)[1].n_stations == 1  # re-read after the change


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(("spec", "pattern"), [
    ("acn:{jpl}:bogus", r"ACN day = 'bogus': not a date; expected YYYY-MM-DD"),
    ("acn:{jpl}:2019-02-30", r"ACN day = '2019-02-30': not a date"),
    ("acn:{jpl}", r"expected acn:PATH:YYYY-MM-DD"),
    ("csv:", r"expected csv:PATH"),
    ("acn:{jpl}:2019-05-08", r"no sessions arrive that day .*nearest days with sessions: 2019-05-03, 2019-05-06, "
                             r"2019-05-13 \(the file has 3 days, 2019-05-03 to 2019-05-13\)"),
    ("acn:{missing}:2019-05-03", r"ACN file '.*nowhere.csv': no such file"),
    ("acn:{csv}:2019-05-03", r"missing columns \['arrival', 'departure', 'requested_energy \(kWh\)', "
                             r"'delivered_energy \(kWh\)', 'station_id'\]"),
    ("csv:{jpl}", r"Scenario CSV .*missing columns \['arrival_step'"),
])
def test_spec_errors(spec, pattern, jpl_file, csv_file, tmp_path):
    spec = spec.format(jpl=jpl_file, csv=csv_file, missing=tmp_path / "nowhere.csv")
    with pytest.raises(ValueError, match=pattern):
        check_scenario(spec, "compare.scenarios")
    with pytest.raises(ValueError, match=pattern):
        make_scenario(spec, 0)


CSV_HEADER = "arrival_step,departure_step,soc_init_kwh,soc_target_kwh,capacity_kwh,station\n"


@pytest.mark.parametrize(("row", "pattern"), [
    ("0,10,0,5,60,inf", r"line 3: station = 'inf': must be a finite number$"),
    ("0,10,0,5,60,-inf", r"line 3: station = '-inf': must be a finite number$"),
    ("0,inf,0,5,60,0", r"line 3: departure_step = 'inf': must be a finite number$"),
    ("-inf,10,0,5,60,0", r"line 3: arrival_step = '-inf': must be a finite number$"),
    ("40,35,0,5,60,0", r"line 3: departure_step = 35: must be > arrival_step of the row = 40 and <= n_steps = 35$"),
    ("0,10,0,70,60,0", r"line 3: soc_target_kwh = 70.0: must be <= capacity_kwh of the row = 60.0 kWh$"),
    ("0,10,0,5,60,1.5", r"line 3: station = 1.5: must be a finite integer"),
    ("0,10,0,5,60,100000", r"line 3: station = 100000: must be -1 \(first free\) or in \[0, 100000\)"),
])
def test_scenario_csv_errors_name_the_file_line_and_column(tmp_path, row, pattern):
    path = tmp_path / "s.csv"
    path.write_text(CSV_HEADER + "0,10,0,5,60,0\n" + row + "\n")
    with pytest.raises(ValueError, match=rf"^Scenario CSV '{path}': {pattern}"):
        make_scenario(f"csv:{path}", 0)


def test_nearest_days_not_all_days():
    with pytest.raises(ValueError) as info:
        make_scenario(f"acn:{acn.MONTH_FILES[0]}:2018-05-06", 0)
    message = str(info.value)
    assert "nearest days with sessions: 2019-05-01, 2019-05-02, 2019-05-03, 2019-05-04" in message
    assert message.count("2019-") < 10  # not the ~120 days of the file


def test_from_acn_sampling_time_errors_name_the_field():
    for bad in (0, -5, 7):
        with pytest.raises(ValueError, match=rf"sampling_time = {bad}: must be > 0 minutes"):
            Scenario.from_acn(sampling_time=bad)


# ---------------------------------------------------------------- train / evaluation days
def test_train_and_evaluation_days_never_overlap():
    train, evaluation = caltech_days("acn-caltech-train"), caltech_days("acn-caltech-eval")
    assert len(train) > 80 and len(evaluation) > 80 and not set(train) & set(evaluation)
    assert set(caltech_days("acn-caltech")) <= set(evaluation)  # the reference week is never trained on
    assert all(acn.day_split(d) == "train" and d.weekday() < 5 for d in train)
    days = acn.session_days(acn.load_acn_sessions(list(acn.MONTH_FILES)))
    assert sorted(acn.split_days(days, "train") + acn.split_days(days, "eval")) == days
    drawn = {make_scenario("acn-caltech-train", seed)[1].name for seed in range(0, 400, 37)}
    assert all(acn.day_split(dt.date.fromisoformat(n[-10:])) == "train" for n in drawn)
    with pytest.raises(ValueError, match="split = 'test'"):
        acn.split_days(days, "test")


def test_train_and_evaluation_scenarios_share_the_spaces():
    c_train, _ = make_scenario("acn-caltech-train", 0)
    c_eval, _ = make_scenario("acn-caltech-eval", 0)
    assert (c_train.n_stations, c_train.p_max) == (c_eval.n_stations, c_eval.p_max) == (53, 6.6)


# --------------------------------------------------------------------------------- CLI
def test_specs_through_the_cli_from_another_directory(jpl_file, csv_file, tmp_path, monkeypatch):
    from experiments.cli.main import main

    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    specs = f"acn:../{jpl_file.name}:2019-05-03,csv:../{csv_file.name}"
    out = tmp_path / "out"
    code = main(["compare", "--scenarios", specs, "--controllers", "llf,offline-optimal", "--seeds", "0",
                 "--workers", "1", "--out", str(out), "-q"])
    assert code == 0
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(dict.fromkeys(metrics["scenario"])) == ["acn-jpl-2019-05-03", "csv-my_sessions"]
    assert (metrics["area_violation_steps"] == 0).all()
    assert (out / "traces" / "acn-jpl-2019-05-03_seed0_llf.csv").exists()
    assert (out / "plots" / "area_power_csv-my_sessions.png").exists()
    assert "acn-jpl-2019-05-03" in (out / "summary.md").read_text()
    files = json.loads((out / "run.json").read_text())["scenario_files"]
    assert list(files[f"acn:../{jpl_file.name}:2019-05-03"]) == [str(jpl_file.resolve())]
    # resume: every key is found under its readable name
    assert main(["compare", "--scenarios", specs, "--controllers", "llf", "--seeds", "0", "--workers", "1",
                 "--out", str(out), "--resume", "-q", "--no-plots"]) == 0
    assert len(pd.read_csv(out / "metrics.csv")) == 4


def test_cli_rejects_a_bad_spec_before_running(jpl_file, tmp_path, capsys):
    from experiments.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--scenarios", f"acn:{jpl_file}:2019-05-04", "--out", str(tmp_path / "out"), "-q"])
    assert exit_info.value.code == 2
    assert "compare.scenarios: ACN day = 2019-05-04: no sessions arrive" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------- structure
def _pev_env_imports() -> dict[str, set[str]]:
    """Module -> pev_env modules it imports (top level and inside functions)."""
    root = Path(pev_env.__file__).parent
    modules = {".".join(("pev_env", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__"): p
               for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pev_env"):
                edges |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                          for a in node.names}
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.startswith("pev_env")}
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def test_no_import_cycles_in_pev_env():
    graph = _pev_env_imports()
    assert "pev_env.acn" not in graph["pev_env.scenario"] or "pev_env.scenario" not in graph["pev_env.acn"]
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*path, node, nxt])}")
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in [m for m in graph if m != "pev_env"]:  # the package __init__ re-exports (lazily)
        if module not in state:
            visit(module, [])


def test_environment_from_a_spec(jpl_file):
    env = PEVChargeEnv(scenario_name=f"acn:{jpl_file}:2019-05-03")
    env.reset(seed=0)
    assert env.action_space("cs_3").high[0] == pytest.approx(50.0)


GENERATION_VALUES = {"area_limit_fraction": 0.5, "acn_battery_kwh": 20.0, "charge_time_desired": 40.0,
                     "initial_charge_max": 0.1, "charge_duration_tolerance": 0.6, "random_start_coeff": 0.0}
"""A value of every scenario-generation field (pev_env.scenarios.base.GENERATION_FIELDS) other than its default."""


def _episode(spec: str, base: EnvConfig, field: str) -> tuple[dict, tuple]:
    config, scenario = make_scenario(spec, 0, base=base)
    plant = {k: v for k, v in config.as_dict().items() if k != field}
    arrays = tuple(np.asarray(getattr(scenario, name)).tolist() for name in
                   ("arrival", "departure", "soc_init", "soc_target", "capacity", "station"))
    return plant, arrays


@pytest.mark.parametrize("spec", ["seed", "seed-20", "synthetic-20", "acn-caltech", "acn-caltech-network",
                                  "acn:caltech_2019-05-01_2019-08-31.csv.gz:2019-05-06", "csv", "seed+P_ref",
                                  "synthetic-20+P_ref"])
def test_a_scenario_reads_exactly_the_generation_fields_it_declares(spec, tmp_path) -> None:
    """The preflight refuses a generation field that no scenario of the run reads (`generation_fields_read`): it
    must be read exactly where declared, or a field with an effect would be refused, or one without accepted."""
    from pev_env.scenarios.base import GENERATION_FIELDS
    from pev_env.scenarios.registry import generation_fields_read

    assert set(GENERATION_VALUES) == set(GENERATION_FIELDS)
    spec, _, p_ref = spec.partition("+")
    if spec == "csv":
        path = tmp_path / "s.csv"
        path.write_text("arrival_step,departure_step,soc_init_kwh,soc_target_kwh,capacity_kwh,station\n"
                        "0,10,0,30,60,0\n2,12,5,40,60,1\n")
        spec = f"csv:{path}"
    base = EnvConfig().with_overrides({"P_ref": 31.5} if p_ref else {})
    for field, value in GENERATION_VALUES.items():
        changed = _episode(spec, base.with_overrides({field: value}), field) != _episode(spec, base, field)
        assert changed == (field in generation_fields_read(spec, make_scenario(spec, 0, base=base)[0])), field


@pytest.mark.parametrize("args, message", [
    (["--scenarios", "seed", "--set", "env.area_limit_fraction=0.5"],
     "compare.env.area_limit_fraction = 0.5: not read by seed (read where P_ref is computed"),
    (["--scenarios", "acn-caltech", "--set", "env.charge_time_desired=50"],
     "compare.env.charge_time_desired = 50.0: not read by acn-caltech (read by the seed generator only"),
    (["--scenarios", "acn-caltech", "--set", "env.P_ref=30", "--set", "env.area_limit_fraction=0.5"],
     "compare.env.area_limit_fraction = 0.5: not read by acn-caltech"),
])
def test_a_generation_field_no_scenario_of_the_run_reads_exits_2(args, message, tmp_path, capsys) -> None:
    """Such a field changed the rows' plant fingerprint and nothing else (area_limit_fraction on seed: same rows)."""
    from experiments.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["compare", "--seeds", "0", "--controllers", "edf", *args, "--dry-run", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
