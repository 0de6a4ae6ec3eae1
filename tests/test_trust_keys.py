"""Issue 20: rows keyed by what they were computed from. The plant that ran is recorded (and a value set to
its default counts as set), scenario files and the package's sources are part of a row's identity, repeated
episodes are run once, and a metrics.csv whose header is damaged is not resumed."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from experiments.cli.main import main
from experiments.commands import compare
from experiments.commands.runner import grid, scenario_labels
from pev_env.config import EnvConfig
from pev_env.scenarios import make_scenario

FAST = ["--workers", "1", "-q", "--no-plots"]
SESSIONS = ("arrival_step,departure_step,soc_init_kwh,soc_target_kwh,capacity_kwh,station\n"
            "0,20,2.0,20.0,24.0,{a}\n5,40,0.0,18.0,24.0,{b}\n")


def run(out: Path, *args: str) -> int:
    return main(["compare", *FAST, "--out", str(out), *args])


def stops(capsys, out: Path, *args: str) -> str:
    """stderr of a compare that must exit 2 with one line."""
    with pytest.raises(SystemExit) as err:
        run(out, *args)
    text = capsys.readouterr().err
    assert err.value.code == 2 and text.count("\n") == 1 and "Traceback" not in text, text
    return text


def sessions(path: Path, a: int = 0, b: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SESSIONS.format(a=a, b=b))
    return path


def plants(out: Path) -> dict[str, dict]:
    """Scenario label -> the plant its rows ran (from metrics.csv and settings.json; one per label here)."""
    metrics = pd.read_csv(out / "metrics.csv", dtype={"plant_fingerprint": str})
    stored = json.loads((out / "settings.json").read_text())
    return {r.scenario: stored[r.plant_fingerprint]["plant"] for r in metrics.itertuples()}


# -- item 5: the plant that ran; a value equal to the default is a value set -------------------------------
def test_a_value_set_to_its_default_counts_as_set() -> None:
    assert EnvConfig().with_overrides({"P_ref": 31.5}).is_set("P_ref") and not EnvConfig().is_set("P_ref")
    assert EnvConfig(P_ref=40.0).is_set("P_ref")
    derived, _ = make_scenario("synthetic-4", 0, EnvConfig())
    assert derived.P_ref != 31.5 and not derived.is_set("P_ref")  # derived by the scenario, not chosen
    kept, _ = make_scenario("synthetic-4", 0, EnvConfig().with_overrides({"P_ref": 31.5}))
    assert kept.P_ref == 31.5 and kept.is_set("P_ref")


def test_run_json_and_settings_json_record_the_plant_that_ran(tmp_path) -> None:
    assert run(tmp_path / "a", "--scenarios", "seed-20,synthetic-4", "--seeds", "0", "--controllers", "edf") == 0
    ran = plants(tmp_path / "a")
    assert (ran["seed-20"]["n_stations"], ran["seed-20"]["n_pevs"], ran["seed-20"]["total_time"]) == (5, 20, 960.0)
    assert ran["synthetic-4"]["n_stations"] == 4 and ran["synthetic-4"]["P_ref"] != 31.5  # the binding limit
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    assert sorted(p["n_stations"] for p in info["plants"].values()) == [4, 5] and info["env_set"] == []
    # --set env.P_ref=31.5 is not ignored: the plant that ran keeps it, and the rows are other rows
    assert run(tmp_path / "b", "--scenarios", "synthetic-4", "--seeds", "0", "--controllers", "edf",
               "--set", "env.P_ref=31.5") == 0
    assert plants(tmp_path / "b")["synthetic-4"]["P_ref"] == 31.5
    assert json.loads((tmp_path / "b" / "run.json").read_text())["env_set"] == ["P_ref"]
    fingerprints = [pd.read_csv(tmp_path / o / "metrics.csv", dtype=str).query("scenario == 'synthetic-4'")
                    ["settings_fingerprint"].item() for o in ("a", "b")]
    assert fingerprints[0] != fingerprints[1]


def test_a_row_whose_plant_is_not_recorded_runs_again(tmp_path, caplog) -> None:
    assert run(tmp_path, "--scenarios", "seed", "--seeds", "0-1", "--controllers", "edf", "--no-traces") == 0
    stored = json.loads((tmp_path / "settings.json").read_text())
    (tmp_path / "settings.json").write_text(json.dumps({k: v for k, v in stored.items() if "plant" not in v}))
    assert run(tmp_path, "--scenarios", "seed", "--seeds", "0-1", "--controllers", "edf", "--resume",
               "--no-traces") == 0
    assert "is not recorded in settings.json" in caplog.text and len(pd.read_csv(tmp_path / "metrics.csv")) == 2


# -- item 6: seeds that draw the same episode are not independent samples ---------------------------------
def test_a_file_scenario_runs_once_whatever_the_seeds(tmp_path, caplog) -> None:
    spec = f"csv:{sessions(tmp_path / 's.csv')}"
    assert run(tmp_path / "out", "--scenarios", f"seed,{spec}", "--seeds", "0-2", "--controllers", "edf,llf",
               "--reference", "llf", "--no-traces") == 0
    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert len(metrics.query("scenario == 'csv-s'")) == 2 and len(metrics.query("scenario == 'seed'")) == 6
    summary = (tmp_path / "out" / "summary.md").read_text()
    rows = [line for line in summary.split("## csv-s")[1].split("##")[0].splitlines() if line.startswith("| edf")]
    assert rows[0].startswith("| edf | 1 |") and "±" not in rows[0]  # n = 1 distinct episode, no interval
    assert "csv-s: the 3 seeds draw 1 distinct episode(s), each run once (seeds 0)" in summary
    assert "| edf | 1 |" in summary.split("## csv-s: minus llf")[1] and "csv-s: the 3 seeds" in caplog.text


def test_real_days_repeat_every_few_seeds_and_run_once() -> None:
    keys, notes = grid(["edf"], ["acn-caltech"], [0, 5, 1, 10])  # the shipped week has 5 weekdays
    assert [k.seed for k in keys] == [0, 1] and notes == [
        "acn-caltech: the 4 seeds draw 2 distinct episode(s), each run once (seeds 0-1)"]


def test_a_csv_without_station_indices_needs_n_stations(tmp_path, capsys) -> None:
    spec = f"csv:{sessions(tmp_path / 's.csv', -1, -1)}"
    err = stops(capsys, tmp_path / "out", "--scenarios", spec, "--seeds", "0", "--controllers", "edf")
    assert "station = -1 (first free station) in every row" in err and "env.n_stations" in err
    assert run(tmp_path / "out", "--scenarios", spec, "--seeds", "0", "--controllers", "edf",
               "--set", "env.n_stations=6") == 0  # 6 chosen, not defaulted


# -- item 1: scenario contents and the code are part of a row's identity -----------------------------------
def test_resume_after_a_scenario_file_changed_is_refused(tmp_path, capsys) -> None:
    path = sessions(tmp_path / "s.csv")
    args = ["--scenarios", f"csv:{path}", "--seeds", "0", "--controllers", "edf"]
    assert run(tmp_path / "out", *args) == 0
    before = (tmp_path / "out" / "metrics.csv").read_bytes()
    sessions(path, 1, 0)
    err = stops(capsys, tmp_path / "out", *args[:-1], "edf,llf", "--resume")
    assert "holds rows computed with other settings" in err and f"scenario_files.{path.resolve()}" in err
    assert (tmp_path / "out" / "metrics.csv").read_bytes() == before


def network_file(path: Path, feeder_kw: float) -> Path:
    path.write_text(f"root: {{name: feeder, limit_kw: {feeder_kw}, stations: [a, b, c, d, e]}}\n")
    return path


def test_resume_after_a_network_file_changed_is_refused(tmp_path, capsys) -> None:
    path = network_file(tmp_path / "net.yaml", 120)
    args = ["--scenarios", "seed-20", "--seeds", "0", "--controllers", "llf", "--set", f"env.network=network:{path}"]
    assert run(tmp_path / "out", *args) == 0
    before = (tmp_path / "out" / "metrics.csv").read_bytes()
    network_file(path, 15)                      # the same path, another limit: another plant
    err = stops(capsys, tmp_path / "out", *args, "--resume")
    assert "holds rows computed with other settings" in err and f"scenario_files.{path.resolve()}" in err
    assert (tmp_path / "out" / "metrics.csv").read_bytes() == before
    assert run(tmp_path / "new", *args) == 0
    old, new = (pd.read_csv(tmp_path / name / "metrics.csv").iloc[0] for name in ("out", "new"))
    assert old.plant_fingerprint != new.plant_fingerprint and old.unmet_energy_kwh < new.unmet_energy_kwh
    plants = json.loads((tmp_path / "new" / "run.json").read_text())["plants"]
    assert list(plants.values())[0]["network_files"] == {str(path.resolve()): compare.network_files(
        f"network:{path}")[str(path.resolve())]}


def test_a_network_file_under_home_is_read_and_fingerprinted(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    network_file(tmp_path / "net.yaml", 120)
    args = ["--scenarios", "seed-20", "--seeds", "0", "--controllers", "edf", "--set", "env.network=network:~/net.yaml"]
    assert run(tmp_path / "out", *args) == 0
    files = json.loads((tmp_path / "out" / "run.json").read_text())["scenario_files"]
    assert list(files["seed-20"]) == [str((tmp_path / "net.yaml").resolve())]
    assert json.loads((tmp_path / "out" / "run.json").read_text())["episodes"] == {}   # generated: the seed says


def test_run_json_names_the_day_each_seed_drew_and_keeps_it_on_resume(tmp_path) -> None:
    args = ["--scenarios", "acn-caltech", "--controllers", "edf", "--no-traces"]
    assert run(tmp_path, *args, "--seeds", "1") == 0
    episodes = json.loads((tmp_path / "run.json").read_text())["episodes"]
    assert episodes == {"acn-caltech": {"1": "acn-caltech-2019-05-07"}}
    assert run(tmp_path, *args, "--seeds", "1,3", "--resume") == 0
    assert json.loads((tmp_path / "run.json").read_text())["episodes"] == {
        "acn-caltech": {"1": "acn-caltech-2019-05-07", "3": "acn-caltech-2019-05-09"}}


def test_files_with_the_same_name_in_two_folders_get_their_own_rows_and_traces(tmp_path) -> None:
    one, two = sessions(tmp_path / "d1" / "s.csv"), sessions(tmp_path / "d2" / "s.csv", 1, 0)
    specs = f"csv:{one},csv:{two}"
    labels = list(scenario_labels(specs.split(",")).values())
    assert len(set(labels)) == 2 and all(label.startswith("csv-s-") for label in labels)
    assert run(tmp_path / "out", "--scenarios", specs, "--seeds", "0", "--controllers", "edf") == 0
    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert sorted(metrics["scenario"]) == sorted(labels)
    assert all((tmp_path / "out" / "traces" / f"{label}_seed0_edf.csv").exists() for label in labels)
    assert run(tmp_path / "out", "--scenarios", specs, "--seeds", "0", "--controllers", "edf", "--resume") == 0
    assert len(pd.read_csv(tmp_path / "out" / "metrics.csv")) == 2


def test_changed_code_under_the_same_version_is_not_resumed(tmp_path, capsys, monkeypatch) -> None:
    args = ["--scenarios", "seed", "--seeds", "0", "--controllers", "edf", "--no-traces"]
    assert run(tmp_path, *args) == 0
    monkeypatch.setattr(compare, "code_checksum", lambda: "0" * 64)
    err = stops(capsys, tmp_path, *args, "--resume")
    assert "edf/seed: code_sha256: " in err and " -> 0000" in err


# -- item 4: a damaged header is not resumed ---------------------------------------------------------------
@pytest.mark.parametrize(("damage", "message"), [
    (lambda header: header.replace(",unmet_energy_pct", ""), "the header lacks unmet_energy_pct"),
    (lambda header: header.replace("unmet_energy_pct", "unmet_energy_kwh"), "the header repeats unmet_energy_kwh"),
])
def test_resume_refuses_a_header_with_a_missing_or_repeated_column(tmp_path, capsys, damage, message) -> None:
    args = ["--scenarios", "seed", "--seeds", "0", "--controllers", "edf", "--no-traces"]
    assert run(tmp_path, *args) == 0
    path = tmp_path / "metrics.csv"
    header, rest = path.read_text().split("\n", 1)
    path.write_text(damage(header) + "\n" + rest)
    assert message in stops(capsys, tmp_path, *args, "--resume")


def test_resume_refuses_a_metrics_csv_that_is_a_folder(tmp_path, capsys) -> None:
    (tmp_path / "metrics.csv").mkdir()
    err = stops(capsys, tmp_path, "--scenarios", "seed", "--seeds", "0", "--controllers", "edf", "--resume")
    assert "metrics.csv: cannot resume, it cannot be read" in err


# -- item 3: the lock, taken over without a race -----------------------------------------------------------
CLAIMER = """
import os, socket, sys, time
from experiments.errors import UsageError
from experiments.outputs.outdir import claim
out, rounds = sys.argv[1], int(sys.argv[2])
stale = ('{"pid": 999999999, "host": "%s", "started": "then"}' % socket.gethostname()).encode()
done = 0
while done < rounds:
    try:  # leave a lock of a dead run behind whenever the folder is free: every claim is a takeover
        fd = os.open(os.path.join(out, ".lock"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(fd, stale)
        os.close(fd)
    except FileExistsError:
        pass
    try:
        with claim(out, [], resume=False):
            try:
                fd = os.open(os.path.join(out, "inside"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                print("overlap", flush=True)
                os._exit(3)
            time.sleep(0.002)
            os.close(fd)
            os.unlink(os.path.join(out, "inside"))
            done += 1
            if done == rounds:
                os._exit(0)  # dies holding the lock: its file stays behind for the others to take over
    except UsageError:
        time.sleep(0.001)
"""


def test_many_concurrent_claimers_never_hold_the_lock_together(tmp_path) -> None:
    """Issue 20, item 3: 8 processes claim the folder 25 times each, each time taking over a lock file left by a
    dead run, and each ends by dying with the lock. Never two inside at once; every claim is served."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(tmp_path), "25"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, results
    assert not any("overlap" in out for out, _ in results)


# -- item 2: --overwrite removes what the tool wrote, and only that ----------------------------------------
def test_overwrite_removes_only_what_the_tool_wrote(tmp_path) -> None:
    args = ["--scenarios", "seed", "--controllers", "edf"]
    assert run(tmp_path, *args, "--seeds", "0-1") == 0
    (tmp_path / "plots").mkdir()
    for mine in ("plots/thesis_fig.png", "traces/lab.csv", "notes.txt"):
        (tmp_path / mine).write_text("mine\n")
    assert (tmp_path / "traces" / "seed_seed1_edf.csv").exists()
    assert run(tmp_path, *args, "--seeds", "0", "--overwrite") == 0
    assert all((tmp_path / mine).read_text() == "mine\n" for mine in ("plots/thesis_fig.png", "traces/lab.csv",
                                                                      "notes.txt"))
    assert not (tmp_path / "traces" / "seed_seed1_edf.csv").exists()  # the earlier run's trace is gone
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 1


def test_overwrite_of_a_folder_without_manifest_removes_the_tool_s_file_names_only(tmp_path) -> None:
    assert run(tmp_path, "--scenarios", "seed", "--controllers", "edf", "--seeds", "0-1") == 0
    (tmp_path / ".written").unlink()  # as an older version left it
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "thesis_fig.png").write_text("mine\n")
    assert run(tmp_path, "--scenarios", "seed", "--controllers", "llf", "--seeds", "0", "--overwrite") == 0
    assert (tmp_path / "plots" / "thesis_fig.png").exists() and not (tmp_path / "traces" / "seed_seed1_edf.csv").exists()


def test_an_interrupted_tune_overwrite_leaves_no_old_outputs(tmp_path, monkeypatch) -> None:
    from experiments.commands import tune

    args = ["tune", "--grid", "coordination.max_iterations=3", "--grid", "policy.horizon=6", "--max-steps", "2", "-q", "--workers", "1",
            "--out", str(tmp_path)]
    assert main(args) == 0 and (tmp_path / "pareto.png").exists()
    (tmp_path / "mine.png").write_text("mine\n")

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tune, "map_in_order", interrupted)
    assert main([*args, "--overwrite"]) == 130  # the new sweep's tune.json says it did not finish
    assert sorted(p.name for p in tmp_path.iterdir()) == [".written", "mine.png", "tune.json"]
    assert json.loads((tmp_path / "tune.json").read_text())["status"].startswith("incomplete")


# -- items 7 and 13: plug-ins that exit or hang are failed runs; SIGTERM leaves no lock ----------------------
PLUGINS = """
import os, sys, time
import numpy as np

class Base:
    last_stats = {}
    def reset(self, config, scenario=None, seed=None):
        pass
    def act(self, observations):
        return {}

class Quits(Base):
    def act_array(self, obs):
        sys.exit(0)

class Dies(Base):
    def reset(self, config, scenario=None, seed=None):
        self.seed = seed
    def act_array(self, obs):
        if self.seed == 0:
            os._exit(1)
        return np.zeros(obs.shape[0])

class Sleeps(Base):
    def act_array(self, obs):
        time.sleep(float(os.environ.get("SLEEP_S", "30")))
        return np.zeros(obs.shape[0])

class NeedsArgs(Base):
    def __init__(self, x):
        pass
    def act_array(self, obs):
        return np.zeros(obs.shape[0])

class NoStats:
    def reset(self, config, scenario=None, seed=None):
        pass
    def act(self, observations):
        return {}
    def act_array(self, obs):
        return np.zeros(obs.shape[0])
"""


@pytest.fixture
def plugins(tmp_path, monkeypatch) -> Path:
    (tmp_path / "trust_plugins.py").write_text(PLUGINS)
    (tmp_path / "quits_at_import.py").write_text("import sys\nsys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_plugin_calling_sys_exit_is_a_failed_run(plugins, capsys) -> None:
    out = plugins / "out"
    assert run(out, "--scenarios", "seed", "--seeds", "0", "--controllers", "edf,trust_plugins:Quits") == 1
    assert list(pd.read_csv(out / "metrics.csv")["controller"]) == ["edf"]
    summary = (out / "summary.md").read_text()
    assert "**Failed runs** (see the log): seed_seed0_trust_plugins:Quits" in summary
    err = stops(capsys, out, "--scenarios", "seed", "--seeds", "0", "--controllers", "quits_at_import:X",
                "--overwrite")
    assert "cannot load policy 'quits_at_import:X' (SystemExit: 0)" in err


def test_a_run_over_the_run_timeout_is_failed_and_the_grid_goes_on(plugins) -> None:
    out = plugins / "out"
    import time

    start = time.perf_counter()
    assert run(out, "--scenarios", "seed", "--seeds", "0-1", "--controllers", "trust_plugins:Sleeps,edf",
               "--run-timeout", "2") == 1
    assert time.perf_counter() - start < 30  # not 4 x 30 s
    assert list(pd.read_csv(out / "metrics.csv")["controller"]) == ["edf", "edf"]
    assert "seed_seed1_trust_plugins:Sleeps" in (out / "summary.md").read_text()


def test_sigterm_removes_the_lock(plugins) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    out = plugins / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), str(plugins)])}
    proc = subprocess.Popen([sys.executable, "-m", "experiments", "compare", *FAST, "--out", str(out), "--scenarios",
                             "seed", "--seeds", "0", "--controllers", "trust_plugins:Sleeps"], env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / ".lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # into the run
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated (SIGTERM)" in err and "Traceback" not in err
    assert not (out / ".lock").exists()


# -- item 12: a row is appended, not the file rewritten ----------------------------------------------------
def test_rows_are_appended_to_metrics_csv_not_rewritten(tmp_path) -> None:
    from experiments.outputs.results import ResultsTable, read_rows

    def row(seed: int) -> dict:
        return {"controller": "edf", "scenario": "seed", "seed": seed, "unmet_energy_kwh": seed / 3,
                "package_version": "0", "plant_fingerprint": "0" * 12, "settings_fingerprint": "1" * 12}

    path = tmp_path / "metrics.csv"
    table = ResultsTable(path, ["unmet_energy_kwh"], [row(0)])
    table.add(row(1))  # the first add writes the header and the rows kept
    inode, before = path.stat().st_ino, path.read_bytes()
    table.add(row(2))
    assert path.stat().st_ino == inode and path.read_bytes().startswith(before)  # appended in place
    assert path.read_bytes()[len(before):].decode() == f"edf,seed,2,{2 / 3!r},0,{'0' * 12},{'1' * 12}\n"
    rows, problems = read_rows(path, ["unmet_energy_kwh"])
    assert [r["seed"] for r in rows] == [0, 1, 2] and not problems


def test_a_killed_pool_worker_fails_its_run_and_the_grid_goes_on(plugins) -> None:
    out = plugins / "out"
    assert main(["compare", "-q", "--no-plots", "--no-traces", "--workers", "2", "--out", str(out), "--scenarios",
                 "seed", "--seeds", "0-2", "--controllers", "trust_plugins:Dies,edf"]) == 1
    metrics = pd.read_csv(out / "metrics.csv")
    assert sorted(metrics["controller"]) == ["edf"] * 3 + ["trust_plugins:Dies"] * 2  # seed 0 of Dies failed
    assert "seed_seed0_trust_plugins:Dies" in (out / "summary.md").read_text()


# -- one line where a traceback was ------------------------------------------------------------------------
def test_an_unwritable_traces_folder_stops_with_one_line_and_keeps_the_rows(tmp_path, capsys) -> None:
    import os

    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "seed_seed1_edf.csv").mkdir()  # cannot be replaced by a file, even as root
    err = stops(capsys, tmp_path, "--scenarios", "seed", "--seeds", "0-2", "--controllers", "edf")
    assert "cannot write" in err and "stopped, the 1 finished rows are kept (--resume goes on)" in err
    assert list(pd.read_csv(tmp_path / "metrics.csv")["seed"]) == [0] and not (tmp_path / ".lock").exists()
    os.rmdir(tmp_path / "traces" / "seed_seed1_edf.csv")
    assert run(tmp_path, "--scenarios", "seed", "--seeds", "0-2", "--controllers", "edf", "--resume") == 0
    assert list(pd.read_csv(tmp_path / "metrics.csv")["seed"]) == [0, 1, 2]


def test_out_with_a_tilde_in_a_config_file_and_a_negative_train_seed(tmp_path, monkeypatch, capsys) -> None:
    from experiments.commands.config import CompareConfig

    monkeypatch.setenv("HOME", str(tmp_path))
    assert CompareConfig(out="~/x").out == str(tmp_path / "x")
    with pytest.raises(SystemExit) as err:
        main(["train", "--seed", "-1", "--out", str(tmp_path / "t"), "-q"])
    text = capsys.readouterr().err
    assert err.value.code == 2 and "train.seed = -1: must be an integer in [0, 4294967295]" in text


def test_resume_with_a_subset_of_the_controllers(tmp_path) -> None:
    """The rows of a learned controller that does not run now are kept (its model is not compared)."""
    assert run(tmp_path, "--scenarios", "seed", "--seeds", "0", "--controllers", "edf,ppo", "--no-traces") == 0
    assert run(tmp_path, "--scenarios", "seed", "--seeds", "0-1", "--controllers", "edf", "--no-traces",
               "--resume") == 0
    assert sorted(pd.read_csv(tmp_path / "metrics.csv")["controller"]) == ["edf", "edf", "ppo"]


def test_a_scenario_file_edited_during_the_run_is_reported(tmp_path, monkeypatch) -> None:
    from experiments.commands import runner

    path = sessions(tmp_path / "s.csv")
    real = runner.run_key

    def edit_then_run(key, cache, env=None):
        sessions(path, 1, 0)  # the file changes while the grid runs
        return real(key, cache, env)

    monkeypatch.setattr(runner, "run_key", edit_then_run)
    assert run(tmp_path / "out", "--scenarios", f"csv:{path}", "--seeds", "0", "--controllers", "edf") == 1
    assert "**Scenario files changed during the run**: the rows of csv-s" in (tmp_path / "out" / "summary.md").read_text()


def test_a_plugin_in_the_working_directory_loads_without_pythonpath(tmp_path, monkeypatch) -> None:
    import sys

    (tmp_path / "cwd_plugin.py").write_text(PLUGINS.replace("class Sleeps", "class Zero(Base):\n    def act_array(self, obs):\n        return np.zeros(obs.shape[0])\n\nclass Sleeps"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert run(tmp_path / "out", "--scenarios", "seed", "--seeds", "0", "--controllers", "cwd_plugin:Zero") == 0
    assert sys.path[-1] == str(tmp_path)  # appended, after the installed packages


@pytest.mark.parametrize(("plugin", "message"), [
    ("NeedsArgs", "'trust_plugins:NeedsArgs' cannot be made without arguments (TypeError: "),
    ("NoStats", "instances of 'trust_plugins:NoStats' have no `last_stats`"),
])
def test_a_plugin_that_cannot_be_built_stops_before_any_run(plugins, capsys, plugin, message) -> None:
    err = stops(capsys, plugins / "out", "--scenarios", "seed", "--seeds", "0", "--controllers", f"trust_plugins:{plugin}")
    assert f"compare.controllers: {message}" in err
