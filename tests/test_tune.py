"""`tune`: its reference is the centralised QP on the plant's network; a setting with a failed run is not compared
on fewer episodes; ties are named instead of decided by timing noise; a grid that would drop or repeat a setting
is refused."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from experiments.cli.main import main
from experiments.commands.tune import best_setting, summarise


def test_on_a_network_the_decentralised_mpc_is_measured_against_the_same_network(tmp_path) -> None:
    """The reference used to be built without the network: gaps of 3 % to 990 % for an optimal MPC."""
    args = ["tune", "--scenarios", "seed-20", "--set", "env.network=tree:2,3", "--grid",
            "coordination.max_iterations=200", "--max-steps", "24", "-q", "--workers", "1", "--out", str(tmp_path)]
    assert main(args) == 0
    row = pd.read_csv(tmp_path / "tune.csv").iloc[0]
    assert row["gap_max"] < 1e-6 and row["network_violation_steps"] == 0
    record = json.loads((tmp_path / "tune.json").read_text())
    assert record["status"] == "complete" and record["best"][0]["gap_mean"] < 1e-6


def _runs(settings: list[tuple[str, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"setting": s, "gap_mean": gap, "gap_max": gap, "network_violation_steps": 0,
                          "area_violation_steps": 0, "unmet_energy_kwh": unmet, "iterations_mean": 3.0,
                          "step_time_median_ms": ms} for s, gap, unmet, ms in settings])


def test_a_setting_with_a_failed_run_is_neither_averaged_as_complete_nor_best() -> None:
    frame = _runs([("a", 1e-5, 10.0, 2.0), ("a", 1e-5, 10.0, 2.0), ("b", 1e-5, 10.0, 1.0), ("b", 0.5, 99.0, 1.0)])
    per_setting = summarise(frame, pd.Index([3]))  # b's hard episode timed out
    assert per_setting[["setting", "runs", "failed_runs"]].values.tolist() == [["a", 2, 0], ["b", 2, 1]]
    assert per_setting.loc[1, "gap_mean"] == 1e-5  # its finished run only: not comparable, so left out
    best, tied = best_setting(per_setting[per_setting["failed_runs"] == 0])
    assert best["setting"].tolist() == ["a"] and tied == []


def test_settings_with_equal_results_are_tied_and_the_grids_first_is_named() -> None:
    per_setting = summarise(_runs([("first", 1e-5, 10.0, 2.00), ("second", 1e-5, 10.0, 1.95),
                                   ("other", 1e-5, 11.0, 1.0), ("slow", 1e-5, 10.0, 3.0)]), pd.Index([]))
    best, tied = best_setting(per_setting[per_setting["setting"] != "other"])
    assert best["setting"].tolist() == ["first"] and tied == ["second"]
    best, tied = best_setting(per_setting)  # a faster setting with other results is not a tie
    assert best["setting"].tolist() == ["other"] and tied == []


@pytest.mark.parametrize("grid, message", [
    (["--grid", "coordination.method=newton", "--grid", "coordination.method=nesterov"],
     "coordination.method is already given (coordination.method=newton)"),
    (["--grid", "coordination.primal_tol_kw=1e-4,0.0001"], "tune.grid.coordination.primal_tol_kw = [0.0001, 0.0001]: "
                                                          "lists a value twice"),
])
def test_a_grid_that_would_drop_or_repeat_a_setting_exits_2(grid, message, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["tune", *grid, "-q", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_config_files_grid_takes_sections_as_the_mpc_section_does(tmp_path, capsys) -> None:
    for n, grid in enumerate(("    coordination.method: [newton, nesterov]\n",
                              "    coordination:\n      method: [newton, nesterov]\n")):
        (tmp_path / f"t{n}.yaml").write_text("tune:\n  grid:\n" + grid)
        assert main(["tune", "--config", str(tmp_path / f"t{n}.yaml"), "--dry-run", "--out", str(tmp_path / "o")]) == 0
        assert "2 settings (coordination.method=newton,nesterov)" in capsys.readouterr().out
