"""Results you can trust: no lost or mixed rows (lock, --resume/--overwrite, fingerprints), rows validated
on resume, solver failures visible, a failed run leaves earlier results alone, paired statistics."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments.cli.main import main
from experiments.commands import runner
from experiments.commands.runner import FAILURE_COLUMNS
from experiments.outputs.provenance import canonical, differing_keys, fingerprint
from experiments.outputs.results import PROVENANCE_COLUMNS
from experiments.outputs.summary import FAILURE_MARK, markdown, paired
from pev_env.config import EnvConfig
from pev_mpc.settings import MPCSettings

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--scenarios", "seed", "--workers", "1", "-q", "--no-plots", "--no-traces"]


def run(out, *args: str) -> int:
    return main(["compare", *FAST, "--out", str(out), *args])


def exit_code(capsys, *argv: str) -> tuple[int, str]:
    """(exit code, stderr) of a command that stops with SystemExit."""
    with pytest.raises(SystemExit) as err:
        main(list(argv))
    return err.value.code, capsys.readouterr().err


def test_rows_carry_their_provenance(tmp_path) -> None:
    assert run(tmp_path, "--controllers", "edf,mpc-centralised", "--seeds", "0", "--set", "mpc.policy.horizon=6") == 0
    metrics = pd.read_csv(tmp_path / "metrics.csv", dtype={"settings_fingerprint": str})
    assert list(metrics.columns[-3:]) == list(PROVENANCE_COLUMNS) and set(FAILURE_COLUMNS) <= set(metrics.columns)
    stored = json.loads((tmp_path / "settings.json").read_text())
    by_controller = metrics.set_index("controller")["settings_fingerprint"]
    assert stored[by_controller["mpc-centralised"]]["mpc"]["policy"]["horizon"] == 6
    assert "mpc" not in stored[by_controller["edf"]]  # the MPC settings do not affect edf's rows
    assert fingerprint(stored[by_controller["edf"]]) == by_controller["edf"]


def test_canonical_form_and_differing_keys() -> None:
    assert canonical({"b": 1, "a": (1, 2)}) == '{"a":[1,2],"b":1}'
    assert fingerprint({"env": EnvConfig()}) == fingerprint({"env": EnvConfig().as_dict()})
    assert fingerprint({"mpc": MPCSettings()}) != fingerprint({"mpc": MPCSettings(horizon=12)})
    assert differing_keys({"env": {"P_ref": 31.5}, "x": 1}, {"env": {"P_ref": 100.0}, "x": 1}) == [
        "env.P_ref: 31.5 -> 100.0"]


def test_a_folder_with_results_needs_resume_or_overwrite(tmp_path, capsys) -> None:
    assert run(tmp_path, "--controllers", "edf", "--seeds", "0-2") == 0
    code, err = exit_code(capsys, "compare", *FAST, "--out", str(tmp_path), "--controllers", "llf", "--seeds", "3")
    assert code == 2 and "holds results (metrics.csv, summary.md, run.json); use --resume or --overwrite" in err
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 3  # nothing lost
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "old.csv").write_text("x\n")
    assert run(tmp_path, "--controllers", "llf", "--seeds", "3", "--overwrite") == 0
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(metrics["controller"]) == ["llf"] and (tmp_path / "traces" / "old.csv").exists()  # not the tool's


def test_resume_refuses_to_mix_settings_and_names_the_keys(tmp_path, capsys) -> None:
    assert run(tmp_path, "--controllers", "edf,mpc-centralised", "--seeds", "0", "--set", "mpc.policy.horizon=6") == 0
    before = (tmp_path / "metrics.csv").read_bytes()
    for setting, named in [("env.P_ref=100", "edf/seed: env.P_ref: 31.5 -> 100.0"),
                           ("mpc.policy.horizon=12", "mpc-centralised/seed: mpc.policy.horizon: 6 -> 12")]:
        code, err = exit_code(capsys, "compare", *FAST, "--out", str(tmp_path), "--controllers", "edf,mpc-centralised",
                              "--seeds", "0-1", "--resume", "--set", setting)
        assert code == 2 and "holds rows computed with other settings" in err and named in err
        assert (tmp_path / "metrics.csv").read_bytes() == before
    # settings that do not touch the kept rows: edf's rows do not depend on the MPC settings (the folder's
    # mpc-centralised rows need them: a resume is not refused for MPC settings its own controllers do not read)
    assert run(tmp_path, "--controllers", "edf", "--seeds", "0-1", "--resume", "--set", "mpc.policy.horizon=6") == 0
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 3


HOLD = ("import sys, time\nfrom experiments.outputs.outdir import claim\n"
        "with claim(sys.argv[1], ['metrics.csv'], resume=False):\n    print('locked', flush=True)\n    time.sleep(120)\n")


def test_a_lock_stops_a_second_run_and_a_dead_holder_s_lock_is_taken_over(tmp_path, capsys, caplog) -> None:
    """A live process holds the folder: the CLI exits 2 naming it. Killed, its lock is stale and taken over."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, err = exit_code(capsys, "compare", *FAST, "--out", str(tmp_path), "--controllers", "edf", "--seeds", "0")
        assert code == 2 and f"in use by another run (pid {holder.pid} on {socket.gethostname()} since " in err
        assert not (tmp_path / "metrics.csv").exists()
    finally:
        holder.kill()  # SIGKILL: the lock file stays behind
        holder.wait()
    assert json.loads((tmp_path / ".lock").read_text())["pid"] == holder.pid
    assert run(tmp_path, "--controllers", "edf", "--seeds", "0") == 0
    assert "taking over the lock of a run that is gone" in caplog.text and not (tmp_path / ".lock").exists()


@pytest.mark.parametrize("damage", ["truncate", "nan-int", "bad-bytes", "short-fingerprint"])
def test_incomplete_or_corrupt_rows_are_run_again(tmp_path, caplog, damage) -> None:
    assert run(tmp_path, "--controllers", "edf", "--seeds", "0-2") == 0
    path = tmp_path / "metrics.csv"
    good = pd.read_csv(path)
    lines = path.read_bytes().splitlines(keepends=True)
    last = lines[-1]
    if damage == "truncate":
        last = last[: len(last) // 2]
    elif damage == "nan-int":
        last = last.replace(b",10,", b",nan,", 1)
    elif damage == "bad-bytes":
        last = last[:10] + b"\xff\xfe" + last[12:]
    else:
        last = last.rstrip()[:-3] + b"\n"
    path.write_bytes(b"".join(lines[:-1]) + last)
    assert run(tmp_path, "--controllers", "edf", "--seeds", "0-2", "--resume") == 0
    assert "line 4" in caplog.text and "incomplete or corrupt row left out; it runs again" in caplog.text
    again = pd.read_csv(path)
    pd.testing.assert_frame_equal(again.drop(columns=["step_time_median_ms", "step_time_p95_ms"]),
                                  good.drop(columns=["step_time_median_ms", "step_time_p95_ms"]))
    assert "| edf | 3 |" in (tmp_path / "summary.md").read_text()
    assert json.loads((tmp_path / "run.json").read_text())["rerun_rows"][0].startswith("line 4")


def test_a_table_from_another_version_is_not_resumed(tmp_path, capsys) -> None:
    (tmp_path / "metrics.csv").write_text("controller,scenario,seed,unmet_energy_kwh\nedf,seed,0,1.0\n")
    code, err = exit_code(capsys, "compare", *FAST, "--out", str(tmp_path), "--controllers", "edf", "--seeds", "0",
                          "--resume")
    assert code == 2 and "the header lacks package_version, plant_fingerprint, settings_fingerprint" in err


class _Troubled:
    """edf whose last_stats report a fallback every third step (still 'converged', as the issue found)."""

    def __init__(self) -> None:
        from pev_mpc.policies import POLICIES

        self.inner, self.steps = POLICIES["edf"](), 0

    def reset(self, config, scenario=None, seed=None) -> None:
        self.inner.reset(config, scenario, seed)

    def act_array(self, obs):
        self.steps += 1
        action = self.inner.act_array(obs)
        self.last_stats = {"iterations": self.steps % 4, "converged": True, "fallbacks": int(self.steps % 3 == 0)}
        return action


def test_solver_failures_are_counted_warned_and_marked(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(runner.ControllerCache, "get", lambda self, name: _Troubled() if name == "edf" else
                        runner.registry.make_controller(name))
    assert run(tmp_path, "--controllers", "edf,llf", "--seeds", "0") == 0
    rows = pd.read_csv(tmp_path / "metrics.csv").set_index("controller")
    assert rows.loc["edf", "station_fallbacks"] == 16 and rows.loc["edf", "nonconverged_steps"] == 16  # 48 steps
    assert rows.loc["edf", "coordination_iterations_max"] == 3
    assert rows.loc["llf", ["station_fallbacks", "nonconverged_steps"]].tolist() == [0, 0]
    summary = (tmp_path / "summary.md").read_text()
    assert f"| edf {FAILURE_MARK} |" in summary and "| llf |" in summary and "16 non-converged steps" in summary
    assert any(r.levelname == "WARNING" and "runs had solver failures" in r.message for r in caplog.records)


def test_traces_record_convergence_per_step(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(runner.ControllerCache, "get", lambda self, name: _Troubled())
    assert main(["compare", "--scenarios", "seed", "--seeds", "0", "--controllers", "edf", "--workers", "1", "-q",
                 "--no-plots", "--out", str(tmp_path)]) == 0
    trace = pd.read_csv(tmp_path / "traces" / "seed_seed0_edf.csv")
    assert trace["fallbacks"].sum() == 16 and (~trace["converged"]).sum() == 16


def test_a_run_where_every_episode_fails_keeps_the_earlier_results(tmp_path, monkeypatch, capsys) -> None:
    assert run(tmp_path, "--controllers", "edf", "--seeds", "0-1") == 0
    before = {name: (tmp_path / name).read_bytes() for name in ("metrics.csv", "summary.md", "run.json")}

    def fail(key, cache, env=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(runner, "run_key", fail)
    assert run(tmp_path, "--controllers", "edf", "--seeds", "0-3", "--resume") == 1
    assert run(tmp_path, "--controllers", "llf", "--seeds", "0-1", "--overwrite") == 1
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert "no run finished" in capsys.readouterr().err


def test_paired_differences_are_t_intervals_of_the_per_seed_gaps() -> None:
    base = np.array([10.0, 20.0, 30.0, 40.0])
    gaps = np.array([1.0, 1.5, 0.5, 1.2])
    frame = pd.DataFrame([{"controller": c, "scenario": "seed", "seed": s, "unmet_energy_kwh": v}
                          for c, values in (("offline-optimal", base), ("edf", base + gaps))
                          for s, v in enumerate(values)])
    table = paired(frame, "offline-optimal", ["unmet_energy_kwh"]).set_index("controller")
    lo, hi = stats.t.interval(0.95, df=3, loc=gaps.mean(), scale=stats.sem(gaps))
    assert table.loc["edf", "mean"] == pytest.approx(gaps.mean()) and table.loc["edf", "n"] == 4
    assert table.loc["edf", "ci95"] == pytest.approx((hi - lo) / 2)  # far narrower than the unpaired interval
    text = markdown(frame, ["unmet_energy_kwh"], reference="offline-optimal")
    assert "## seed: minus offline-optimal" in text and f"| edf | 4 | {gaps.mean():.2f} ± {(hi - lo) / 2:.2f} |" in text
    assert "minus" not in markdown(frame, ["unmet_energy_kwh"])


def test_compare_writes_paired_differences_against_the_reference(tmp_path) -> None:
    assert run(tmp_path, "--controllers", "edf,llf", "--seeds", "0-1", "--reference", "llf") == 0
    summary = (tmp_path / "summary.md").read_text()
    assert "## seed: minus llf" in summary and "| edf | 2 |" in summary


def test_the_issue_s_starved_osqp_stations_are_reported(tmp_path, caplog) -> None:
    """Issue 9, item 4: OSQP stations with a 1e-9 s time limit deliver nothing; the rows and the summary say so."""
    assert run(tmp_path, "--controllers", "mpc-decentralised", "--seeds", "0", "--set", "mpc.stations.station_solver=osqp",
               "--set", "mpc.stations.station_time_limit_s=1e-9") == 0
    row = pd.read_csv(tmp_path / "metrics.csv").iloc[0]
    assert row["station_fallbacks"] > 0 and row["nonconverged_steps"] > 0
    assert f"| mpc-decentralised {FAILURE_MARK} |" in (tmp_path / "summary.md").read_text()
    assert "runs had solver failures" in caplog.text


def test_run_json_describes_every_row_after_a_resume_with_other_controllers(tmp_path) -> None:
    assert run(tmp_path, "--controllers", "edf", "--seeds", "0") == 0
    assert run(tmp_path, "--controllers", "llf", "--seeds", "0", "--resume") == 0
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["rows"]["controller"] == ["edf", "llf"] and info["config"]["controllers"] == ["llf"]


def test_tune_scale_and_train_refuse_a_folder_with_results(tmp_path, capsys) -> None:
    args = ["tune", "--grid", "coordination.max_iterations=3", "--grid", "policy.horizon=6", "--max-steps", "2", "-q", "--out",
            str(tmp_path)]
    assert main(args) == 0
    with pytest.raises(SystemExit) as err:
        main(args)
    assert err.value.code == 2 and "holds results (tune.csv); use --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
