"""--run-timeout in tune and scale: a run that hangs (a solver, a plug-in) becomes a recorded failed row and exit
code 1; the other runs are kept."""

from __future__ import annotations

import time

import pandas as pd

from experiments.cli.main import main
from experiments.commands import scale, tune


def test_tune_run_over_the_timeout_is_a_failed_row(tmp_path, monkeypatch, capsys) -> None:
    real = tune.evaluate_setting

    def hangs_for_one(settings, *args, **kwargs):
        if settings.max_iterations == 10:
            time.sleep(60)
        return real(settings, *args, **kwargs)

    monkeypatch.setattr(tune, "evaluate_setting", hangs_for_one)
    code = main(["tune", "-q", "--grid", "coordination.max_iterations=10,200", "--max-steps", "2", "--workers", "1",
                 "--run-timeout", "1", "--out", str(tmp_path)])
    assert code == 1 and "1 run(s) over the run timeout of 1 s" in capsys.readouterr().err
    rows = pd.read_csv(tmp_path / "tune.csv").set_index("coordination.max_iterations")
    assert "over the run timeout of 1 s" in rows.loc[10, "failed"] and pd.isna(rows.loc[200, "failed"])
    assert rows.loc[200, "gap_mean"] >= 0


def test_scale_run_over_the_timeout_is_a_skipped_row(tmp_path, monkeypatch, capsys) -> None:
    real = scale.measure

    def hangs_for_centralised(controller, *args, **kwargs):
        if controller == "mpc-centralised":
            time.sleep(60)
        return real(controller, *args, **kwargs)

    monkeypatch.setattr(scale, "measure", hangs_for_centralised)
    code = main(["scale", "-q", "--sizes", "5", "--steps", "1", "--run-timeout", "1", "--out", str(tmp_path)])
    assert code == 1 and "1 run(s) over the run timeout of 1 s" in capsys.readouterr().err
    rows = pd.read_csv(tmp_path / "scale.csv").set_index("controller")
    assert "over the run timeout" in rows.loc["mpc-centralised", "skipped"]
    assert pd.isna(rows.loc["mpc-decentralised", "skipped"]) and rows.loc["mpc-decentralised", "step_time_median_ms"] > 0
