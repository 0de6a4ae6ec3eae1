"""Clean edges: every bad input of issue 9 stops with exit 2 and one line naming the problem, before any
episode runs; Ctrl-C exits 130 without a traceback; pool workers die with their driver; --version; LICENSE."""
from __future__ import annotations

import configparser
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from experiments.cli.main import main
from experiments.commands import runner
from experiments.commands.backends import check_ray_address
from experiments.outputs.provenance import package_version

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--scenarios", "seed", "--seeds", "0", "--controllers", "edf", "--workers", "1", "-q", "--no-plots"]


@pytest.fixture
def no_episodes(monkeypatch):
    """Fail the test if any episode starts (the checks must come first)."""
    def forbidden(*args, **kwargs):
        raise AssertionError("an episode ran before the input was checked")

    monkeypatch.setattr(runner, "run_key", forbidden)


def stops(capsys, *argv: str) -> str:
    """stderr of a command that must exit 2 with one line."""
    with pytest.raises(SystemExit) as err:
        main(list(argv))
    assert err.value.code == 2
    text = capsys.readouterr().err
    assert text.count("\n") == 1 and "Traceback" not in text, text
    return text


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "mpc.objective.terminal_weight=inf"], "compare.mpc.objective.terminal_weight = 'inf': must be a finite number"),
    (["--scenarios", "acn-caltech", "--set", "env.sampling_time=7", "--set", "env.total_time=700"],
     "compare.scenarios: acn-caltech: sampling_time = 7.0: must be > 0 minutes and divide 1440"),
    (["--set", "env.sampling_time=9"], "compare.env.sampling_time = 9.0: must divide total_time = 240 min "
                                       "into whole control steps (26.67 here"),
    (["--set", "mpc.policy.horizon=1e9"], "compare.mpc.policy.horizon = 1000000000: must be an int in [1, 2016]"),
    (["--set", "mpc.policy.max_horizon=100000"], "compare.mpc.policy.max_horizon = 100000: must be an int in [1, 2016]"),
    (["--set", "mpc.policy.foresight=-3"], "compare.mpc.policy.foresight = -3: must be an int in [0, 2016]"),
    (["--controllers", "mpc-foresight", "--set", "mpc.objective.name=tracking"],
     "compare.controllers: mpc-foresight: MPCSettings.objective.name = 'tracking': mpc-foresight plans PEVs still "
     "to come with the 'deadline' objective only"),
    (["--controllers", "mpc-history", "--set", "mpc.policy.history=nope"],
     "compare.controllers: mpc-history: mpc.policy.history: unknown scenario 'nope'; valid scenarios: seed"),
    (["--controllers", "mpc-history"], "compare.controllers: mpc-history: on seed: mpc.policy.history = "
                                       "'acn-caltech-train': no session of its days is at a station of this episode"),
    (["--workers", "1e9"], "compare.workers = 1000000000: must be in [0, 1024]"),
    (["--scenarios", "synthetic-100000000"], "synthetic-100000000: synthetic: n_stations = 100000000: must be in "
                                             "[1, 100000]"),
    (["--set", "env.total_time=1e9"], "must be <= 100000 control steps per episode"),
    (["--seeds", "0-99999999", "--controllers", "bogus"], "compare.seeds = '0-99999999': at most 100000 seeds"),
    (["--ray-address", "bogus"], "compare.ray_address = 'bogus': must be empty (a local Ray instance), auto"),
    (["--set", "env.xi=0.1", "--set", "env.xi=0.2"], "--set 'env.xi' is given twice ('0.1' and '0.2'): give each key"),
])
def test_bad_values_stop_before_any_work(tmp_path, capsys, no_episodes, args, message) -> None:
    """Refused before any episode (no_episodes) and before the output folder is made."""
    assert message in stops(capsys, "compare", *FAST, "--out", str(tmp_path / "out"), *args)
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_or_cannot_be_written(tmp_path, capsys, no_episodes) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    assert "out = '" + str(afile) + "': is a file; must be a directory" in stops(capsys, "compare", *FAST, "--out",
                                                                                  str(afile))
    assert "cannot write there" in stops(capsys, "compare", *FAST, "--out", "/proc/pev-experiments")
    (tmp_path / "ro").mkdir()
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").chmod(0o500)
        assert "cannot write there" in stops(capsys, "compare", *FAST, "--out", str(tmp_path / "ro" / "x"))


def test_a_model_that_is_not_a_model_description(tmp_path, capsys, no_episodes) -> None:
    model = tmp_path / "model.json"
    model.write_text("not json")
    text = stops(capsys, "compare", *FAST, "--controllers", "ppo", "--ppo-model", str(model), "--out",
                 str(tmp_path / "out"))
    assert f"compare.ppo_model = '{model}': {model} is not a JSON model description" in text


def test_ray_addresses(monkeypatch, tmp_path, capsys, no_episodes) -> None:
    pytest.importorskip("ray")
    start = time.perf_counter()
    text = stops(capsys, "compare", *FAST, "--backend", "ray", "--ray-address", "127.0.0.1:1", "--out", str(tmp_path))
    assert "ray_address = '127.0.0.1:1': no Ray cluster answers there" in text and time.perf_counter() - start < 15
    text = stops(capsys, "compare", *FAST, "--backend", "ray", "--ray-address", "ray://127.0.0.1:10001", "--out",
                 str(tmp_path))
    assert "ray:// (Ray client) addresses are not supported" in text
    for good in ("", "auto", "10.0.0.1:6379", "ray://head-node:10001", "[::1]:6379"):
        check_ray_address(good)


def test_duplicate_names_are_removed_with_a_note(tmp_path, caplog) -> None:
    assert main(["compare", *FAST[:2], "--seeds", "0,0", "--controllers", "edf,edf", "--scenarios", "seed,seed",
                 "--workers", "1", "-q", "--no-plots", "--out", str(tmp_path)]) == 0
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 1
    for key in ("compare.controllers: duplicate edf removed", "compare.scenarios: duplicate seed removed",
                "compare.seeds: duplicate 0 removed"):
        assert key in caplog.text


def test_unused_options_and_stray_keys_are_rejected(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as err:
        main(["tune", "--controllers", "edf"])
    assert err.value.code == 2 and "unrecognized arguments: --controllers edf" in capsys.readouterr().err
    assert "tune: unknown key 'controllers'" in stops(capsys, "tune", "--set", "controllers=edf")
    config = tmp_path / "c.toml"
    config.write_text('seeds = "0-9"\n[compare]\ncontrollers = ["edf"]\n[train]\ntimesteps = 10\n')
    assert ("top-level key 'seeds' is outside the [compare] section" in
            stops(capsys, "compare", "--config", str(config)))
    assert "scale.steps = 1000: must be <= 47" in stops(capsys, "scale", "--steps", "1000")


def test_ctrl_c_exits_130_without_a_traceback(tmp_path, monkeypatch, capsys) -> None:
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_key", interrupt)
    assert main(["compare", *FAST, "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start_pool(tmp_path: Path, **popen: object) -> tuple[subprocess.Popen, list[int]]:
    """A CLI compare with a pool of 2 workers, once both workers run: (driver, worker pids)."""
    cmd = [sys.executable, "-m", "experiments", "compare", "--scenarios", "seed-20", "--seeds", "0-9", "--controllers",
           "mpc-centralised", "--workers", "2", "-q", "--no-plots", "--no-traces", "--out", str(tmp_path)]
    driver = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, **popen)
    deadline = time.monotonic() + 60
    while len(workers := _children(driver.pid)) < 2:
        if driver.poll() is not None or time.monotonic() > deadline:
            driver.kill()
            pytest.fail("no pool of 2 workers started")
        time.sleep(0.1)
    return driver, workers


def _gone(workers: list[int]) -> None:
    """Assert that the workers end within 10 s (killing any left, so that a failure leaves nothing behind)."""
    deadline = time.monotonic() + 10
    while any(_running(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [w for w in workers if _running(w)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors, "workers outlived the driver"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_workers_die_with_their_driver(tmp_path) -> None:
    driver, workers = _start_pool(tmp_path, stderr=subprocess.DEVNULL)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    _gone(workers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_a_pool_run_with_130_and_no_traceback(tmp_path) -> None:
    """Ctrl-C reaches the whole process group (driver and workers), as from a terminal."""
    # a shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT ignored: the
    # driver gets the default disposition, as from a terminal, whoever started the tests
    driver, workers = _start_pool(tmp_path, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.killpg(driver.pid, signal.SIGINT)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 130 and "Traceback" not in err and "interrupted" in err, err
    _gone(workers)


def test_version_and_license(capsys) -> None:
    with pytest.raises(SystemExit) as err:
        main(["--version"])
    assert err.value.code == 0 and capsys.readouterr().out.strip() == f"pev-experiments {package_version()}"
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["metadata"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_a_resume_counts_the_episodes_already_there(tmp_path) -> None:
    """acn-caltech repeats its 5 days: seed 5 after seed 0 is the same day, and is not run again on --resume."""
    import json

    args = ["compare", "--scenarios", "acn-caltech", "--controllers", "llf", "--out", str(tmp_path), "-q",
            "--no-traces", "--no-plots"]
    assert main([*args, "--seeds", "0,1"]) == 0
    assert main([*args, "--seeds", "5,2", "--resume"]) == 0
    assert pd.read_csv(tmp_path / "metrics.csv")["seed"].tolist() == [0, 1, 2]
    notes = json.loads((tmp_path / "run.json").read_text())["repeated_episodes"]
    assert notes == ["acn-caltech: the 4 seeds with the 2 of the results already there draw 3 distinct episode(s), "
                     "each run once (seeds 0-2)"]


def test_a_resume_after_the_plugin_changed_is_refused(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    module = tmp_path / "edited_policy_7f3.py"
    module.write_text("from pev_mpc.policies import EDF\n\nclass Mine(EDF):\n    pass\n")
    args = ["compare", "--scenarios", "seed", "--controllers", "edited_policy_7f3:Mine", "--out", str(tmp_path / "out"),
            "-q", "--no-traces", "--no-plots"]
    assert main([*args, "--seeds", "0"]) == 0
    module.write_text("from pev_mpc.policies import LLF\n\nclass Mine(LLF):\n    pass\n")
    text = stops(capsys, *args, "--seeds", "0,1", "--resume")
    assert "holds rows computed with other settings (edited_policy_7f3:Mine/seed: plugin_sha256: " in text


def test_settings_that_no_scenario_uses_are_refused(tmp_path, capsys, caplog, no_episodes) -> None:
    text = stops(capsys, "compare", "--scenarios", "acn-caltech", "--set", "env.total_time=600", "--dry-run")
    assert "compare.env.total_time = 600.0: not used by acn-caltech (it sets total_time = 1440.0 itself)" in text
    assert main(["compare", "--scenarios", "seed,seed-20", "--controllers", "edf", "--set", "env.n_pevs=12",
                 "--dry-run"]) == 0
    assert "compare.env.n_pevs = 12: not used by seed-20 (it sets n_pevs = 20 itself)" in caplog.text
    config = tmp_path / "c.yaml"
    config.write_text("compare:\n  env: {P_ref: 45}\n")
    text = stops(capsys, "evaluate", "--config", str(config), "--dry-run")
    assert "has no [evaluate] section (it has compare), so nothing in it applies to evaluate" in text


def test_summary_reports_the_data_cleaning(tmp_path) -> None:
    data = tmp_path / "site.csv"
    data.write_text("arrival,departure,requested_energy (kWh),delivered_energy (kWh),station_id,session_id\n"
                    + "2019-05-13 08:00:00-07:00,2019-05-13 12:00:00-07:00,10,9,CA-1,a\n" * 2
                    + "2019-05-13 09:00:00-07:00,2019-05-13 13:00:00-07:00,10,9,CA-2,c\n")
    out = tmp_path / "out"
    assert main(["compare", "--scenarios", f"acn:{data}:2019-05-13", "--controllers", "edf", "--seeds", "0",
                 "--out", str(out), "-q", "--no-traces", "--no-plots"]) == 0
    summary = (out / "summary.md").read_text()
    assert "**Data** (what reading the files left out" in summary and "left out 1 of 3 rows: 1 duplicates" in summary


def test_a_scenario_csv_s_likely_mistakes_are_named(tmp_path) -> None:
    """Read as written, but named: a repeated row, a station index far above the others, Wh written as kWh."""
    from pev_env.scenarios import data_report_notes, scenario_data_reports

    data = tmp_path / "s.csv"
    data.write_text("arrival_step,departure_step,soc_init_kwh,soc_target_kwh,capacity_kwh,station\n"
                    + "0,10,0,10000,60000,0\n" * 2 + "2,12,0,10,60,30\n")
    report = scenario_data_reports([f"csv:{data}"])[f"csv:{data}"][0]
    assert report["identical_rows"] == {"count": 1, "first_lines": [2]}
    assert report["stations_without_sessions"]["count"] == 29 and report["capacity_max_kwh"] == 60000.0
    note, = data_report_notes({f"csv:{data}": [report]})
    assert "1 rows repeat an earlier row exactly (first at lines 2)" in note and "up to 60000 kWh" in note
    clean = tmp_path / "clean.csv"
    clean.write_text("arrival_step,departure_step,soc_init_kwh,soc_target_kwh,capacity_kwh,station\n0,10,0,10,60,0\n")
    assert data_report_notes(scenario_data_reports([f"csv:{clean}"])) == []


def test_tune_runs_a_repeated_episode_once(tmp_path) -> None:
    import json

    out = tmp_path / "tune"
    assert main(["tune", "--scenarios", "acn-caltech", "--seeds", "0,5", "--grid", "coordination.max_iterations=20",
                 "--max-steps", "2", "--out", str(out), "-q"]) == 0
    assert pd.read_csv(out / "tune.csv")["seed"].tolist() == [0]
    record = json.loads((out / "tune.json").read_text())
    assert record["repeated_episodes"] == ["acn-caltech: the 2 seeds draw 1 distinct episode(s), each run once (seeds 0)"]
    assert list(record["scenario_files"]["acn-caltech"]) == ["pev_env/data/acn_caltech_sample.csv.gz"]


def test_two_different_models_for_one_controller_are_refused(tmp_path, capsys, no_episodes) -> None:
    text = stops(capsys, "compare", "--scenarios", "seed", "--controllers", "ppo", "--ppo-model", str(tmp_path / "a"),
                 "--set", f"models.ppo={tmp_path / 'b'}", "--dry-run")
    assert f"compare.ppo_model = '{tmp_path / 'a'}': give the model of ppo once: models.ppo = '{tmp_path / 'b'}'" in text
