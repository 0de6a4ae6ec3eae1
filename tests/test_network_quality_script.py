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


def rows(unmet: dict[str, list[float]], violations: int = 0) -> pd.DataFrame:
    """Compare rows of two days: unmet energy per controller and day."""
    out = []
    for controller, values in unmet.items():
        for seed, value in enumerate(values):
            out.append({"controller": controller, "scenario": "day", "seed": seed, "unmet_energy_kwh": value,
                        "network_violation_steps": violations if controller == "mpc-decentralised" else 0,
                        "coordination_iterations_mean": 1.5, "coordination_iterations_max": 3,
                        "nonconverged_steps": 0})
    return pd.DataFrame(out)


def run(quality, tmp_path: Path, frame: pd.DataFrame, capsys) -> tuple[int, str]:
    frame.to_csv(tmp_path / "metrics.csv", index=False)
    code = quality.main([str(tmp_path)])
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
