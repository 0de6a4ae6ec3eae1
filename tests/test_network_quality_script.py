"""benchmarks/network_quality.py: the network quality goals read from a compare's rows."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "network_quality.py"


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("network_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows(unmet: dict[str, list[float]], violations: int = 0, scenario: str = "day",
         seeds: tuple[int, ...] = (0, 1)) -> pd.DataFrame:
    """Compare rows of two days: unmet energy per controller and day."""
    out = []
    for controller, values in unmet.items():
        for seed, value in zip(seeds, values):
            out.append({"controller": controller, "scenario": scenario, "seed": seed, "unmet_energy_kwh": value,
                        "network_violation_steps": violations if controller == "mpc-decentralised" else 0,
                        "coordination_iterations_mean": 1.5, "coordination_iterations_max": 3,
                        "nonconverged_steps": 0})
    return pd.DataFrame(out)


def run(quality, tmp_path: Path, frame: pd.DataFrame, capsys, *flags: str) -> tuple[int, str]:
    frame.to_csv(tmp_path / "metrics.csv", index=False)
    code = quality.main([str(tmp_path), *flags])
    return code, capsys.readouterr().out


def test_goals_met(quality, tmp_path, capsys):
    frame = rows({"offline-optimal": [100.0, 0.0], "mpc-decentralised": [101.0, 0.0], "llf": [120.0, 0.0],
                  "edf": [115.0, 1.0]})
    code, out = run(quality, tmp_path, frame, capsys)
    assert code == 0, out
    assert "goals met" in out and "total: mpc-decentralised +1.00 %" in out


@pytest.mark.parametrize("unmet, violations, reason", [
    ([104.0, 0.0], 0, "worst day: +4.00 %"),                  # one day above 3 %
    ([101.0, 0.0], 2, "4 steps above a constraint"),   # 2 on each day
])
def test_goal_fails(quality, tmp_path, capsys, unmet, violations, reason):
    frame = rows({"offline-optimal": [100.0, 0.0], "mpc-decentralised": unmet, "llf": [120.0, 0.0],
                  "edf": [115.0, 0.0]}, violations)
    code, out = run(quality, tmp_path, frame, capsys)
    assert code == 1 and "NOT met" in out and reason in out


def test_unmet_energy_where_the_optimum_leaves_none_fails(quality, tmp_path, capsys):
    frame = rows({"offline-optimal": [100.0, 0.0], "mpc-decentralised": [100.0, 0.5], "llf": [120.0, 1.0],
                  "edf": [115.0, 1.0]})
    code, out = run(quality, tmp_path, frame, capsys)
    assert code == 1 and "worst day: +inf %" in out


def test_behind_a_sort_fails(quality, tmp_path, capsys):
    frame = rows({"offline-optimal": [100.0, 50.0], "mpc-decentralised": [100.5, 50.5], "llf": [120.0, 50.4],
                  "edf": [115.0, 60.0]})
    code, out = run(quality, tmp_path, frame, capsys)
    assert code == 1 and "['day seed 1']" in out


def test_missing_folder_is_exit_2(quality, tmp_path, capsys):
    assert quality.main([str(tmp_path / "nothing")]) == 2
    assert "has no metrics.csv" in capsys.readouterr().err


@pytest.mark.parametrize("scenario, seed, day", [
    ("acn-caltech-eval", 1, "2019-05-07"),             # eval seeds 0-4 (mod 87) are the shipped week
    ("acn-caltech-eval", 88, "2019-05-07"),
    ("acn-caltech-eval", 7, None),
    ("acn-caltech-network", 13, "2019-05-09"),
    ("acn-caltech-train", 0, None),
    ("acn:pev_env/data/caltech_2019-05-01_2019-08-31.csv.gz:2019-05-08", 0, "2019-05-08"),
    ("acn:pev_env/data/caltech_2019-05-01_2019-08-31.csv.gz:2019-05-13", 0, None),
    ("seed", 1, None),
])
def test_shipped_day(quality, scenario, seed, day):
    assert quality.shipped_day(scenario, seed) == day


def test_shipped_week_named_and_left_out_with_held_out(quality, tmp_path, capsys):
    # seed 1 of acn-caltech-eval is 2019-05-07, a day of the shipped week: +10 % there, +1 % on seed 7
    frame = rows({"offline-optimal": [100.0, 100.0], "mpc-decentralised": [110.0, 101.0], "llf": [120.0, 120.0],
                  "edf": [115.0, 115.0]}, scenario="acn-caltech-eval", seeds=(1, 7))
    code, out = run(quality, tmp_path, frame, capsys)
    assert code == 1 and "acn-caltech-eval seed 1 (2019-05-07); kept (--held-out leaves them out)" in out
    assert "2 days;" in out and "total: mpc-decentralised +5.50 %" in out
    code, out = run(quality, tmp_path, frame, capsys, "--held-out")
    assert code == 0 and "(2019-05-07); left out" in out
    assert "1 day;" in out and "total: mpc-decentralised +1.00 %" in out


def test_no_shipped_day_no_line(quality, tmp_path, capsys):
    frame = rows({"offline-optimal": [100.0, 100.0], "mpc-decentralised": [101.0, 101.0], "llf": [120.0, 120.0],
                  "edf": [115.0, 115.0]}, scenario="acn-caltech-eval", seeds=(7, 13))
    code, out = run(quality, tmp_path, frame, capsys, "--held-out")
    assert code == 0 and "shipped week" not in out and "2 days;" in out


def test_a_day_without_a_row_of_the_controller_fails_and_is_named(quality, tmp_path, capsys):
    frame = rows({"offline-optimal": [100.0, 100.0], "mpc-decentralised": [101.0, 110.0], "llf": [120.0, 120.0],
                  "edf": [115.0, 115.0]})
    frame = frame[~((frame.controller == "mpc-decentralised") & (frame.seed == 1))]    # its run failed
    code, out = run(quality, tmp_path, frame, capsys)
    assert code == 1 and "failing the check: day seed 1 (mpc-decentralised)" in out
    assert "total: mpc-decentralised +1.00 %" in out                                 # over the other day


def test_unknown_controller_is_exit_2(quality, tmp_path, capsys):
    frame = rows({"offline-optimal": [100.0, 0.0], "mpc-decentralised": [101.0, 0.0], "llf": [120.0, 0.0],
                  "edf": [115.0, 1.0]})
    frame.to_csv(tmp_path / "metrics.csv", index=False)
    assert quality.main([str(tmp_path), "--controller", "nope"]) == 2
    assert "controllers ['nope']: not in the rows" in capsys.readouterr().err


def test_only_shipped_days_with_held_out_fails_and_goes_on(quality, tmp_path, capsys):
    frame = rows({"offline-optimal": [100.0, 100.0], "mpc-decentralised": [101.0, 101.0], "llf": [120.0, 120.0],
                  "edf": [115.0, 115.0]}, scenario="acn-caltech-network", seeds=(0, 1))
    code, out = run(quality, tmp_path, frame, capsys, "--held-out")
    assert code == 1 and "no day to check (every day left out)" in out


def test_inaccurate_steps_of_the_reference_are_named(quality, tmp_path, capsys):
    frame = rows({"offline-optimal": [100.0, 0.0], "mpc-decentralised": [101.0, 0.0], "llf": [120.0, 0.0],
                  "edf": [115.0, 1.0]})
    frame.loc[(frame.controller == "offline-optimal") & (frame.seed == 0), "nonconverged_steps"] = 2
    code, out = run(quality, tmp_path, frame, capsys)
    assert code == 0 and "offline-optimal: inaccurate steps (nonconverged_steps) on day seed 0 (2)" in out


def test_a_missing_row_on_a_held_out_day_fails_the_check_not_the_arguments(quality, tmp_path, capsys):
    # seed 1 is a shipped-week day (left out); the controller's run of seed 7 failed
    frame = rows({"offline-optimal": [100.0, 100.0], "mpc-decentralised": [101.0, 101.0], "llf": [120.0, 120.0],
                  "edf": [115.0, 115.0]}, scenario="acn-caltech-eval", seeds=(1, 7))
    frame = frame[~((frame.controller == "mpc-decentralised") & (frame.seed == 7))]
    code, out = run(quality, tmp_path, frame, capsys, "--held-out")
    assert code == 1 and "failing the check: acn-caltech-eval seed 7 (mpc-decentralised)" in out


def test_the_controller_is_not_among_its_own_sorts(quality, tmp_path, capsys):
    frame = rows({"offline-optimal": [100.0, 100.0], "mpc-decentralised": [110.0, 110.0], "llf": [101.0, 101.0],
                  "edf": [115.0, 115.0]})
    code, out = run(quality, tmp_path, frame, capsys, "--controller", "llf")
    assert code == 0 and "total: llf +1.00 %, edf +15.00 %" in out
