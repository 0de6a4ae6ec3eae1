"""An MPC setting that no controller of a run reads is refused, named in a warning in a mixed run, and a row
records the settings its controller ran with."""
from __future__ import annotations

import json

import pytest

from experiments.cli.main import main


@pytest.mark.parametrize("args, message", [
    (["--controllers", "llf,edf", "--set", "mpc.policy.horizon=12"],
     "compare.mpc.policy.horizon = 12: no controller of the run reads MPC settings (llf, edf; a plug-in never "
     "receives them)"),
    (["--controllers", "mpc-decentralised", "--set", "mpc.policy.foresight=12"],
     "compare.mpc.policy.foresight = 12: not read by mpc-decentralised, the run's MPC controllers"),
    (["--controllers", "mpc-centralised", "--set", "mpc.coordination.method=nesterov"],
     "compare.mpc.coordination.method = 'nesterov': not read by mpc-centralised"),
    (["--controllers", "mpc-decentralised-tracking", "--set", "mpc.objective.unmet_weight=5"],
     "compare.mpc.objective.unmet_weight = 5.0: not read by mpc-decentralised-tracking"),
])
def test_an_mpc_setting_no_controller_of_the_run_reads_exits_2(args, message, tmp_path, capsys) -> None:
    """Such a setting changed the rows' fingerprint and nothing else (docs/controllers.md: a setting never goes
    unused without a word)."""
    with pytest.raises(SystemExit) as exit_:
        main(["compare", "--scenarios", "seed", "--seeds", "0", *args, "--dry-run", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_mixed_run_warns_and_records_the_settings_each_controller_ran_with(tmp_path, caplog) -> None:
    args = ["compare", "--scenarios", "seed", "--seeds", "0", "--controllers",
            "mpc-decentralised,mpc-centralised,mpc-decentralised-tracking", "--set", "mpc.coordination.max_iterations=150",
            "--set", "env.total_time=30", "-q", "--workers", "1", "--out", str(tmp_path)]
    assert main(args) == 0
    assert "compare.mpc.coordination.max_iterations = 150: not read by mpc-centralised" in caplog.text
    settings = json.loads((tmp_path / "settings.json").read_text())
    objectives = {value["mpc"]["objective"]["name"] for value in settings.values() if "mpc" in value}
    assert objectives == {"deadline", "tracking"}  # the tracking row recorded 'deadline' before


def test_tune_refuses_a_grid_of_settings_the_decentralised_mpc_does_not_read(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["tune", "--grid", "policy.foresight=0,48", "--dry-run", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "tune.grid.policy.foresight = [0, 48]: not read by mpc-decentralised" in capsys.readouterr().err


def test_mpc_settings_beside_a_plugin_warn_that_it_does_not_receive_them(tmp_path, monkeypatch, caplog) -> None:
    (tmp_path / "mine.py").write_text("from pev_mpc.policies.mpc import DecentralisedMPC\n"
                                      "class Mine(DecentralisedMPC):\n    name = 'mine'\n")
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "--scenarios", "seed", "--seeds", "0", "--controllers", "mpc-decentralised,mine:Mine",
                 "--set", "mpc.policy.horizon=12", "--dry-run", "--out", str(tmp_path / "out")]) == 0
    assert "compare.mpc (policy.horizon): not passed to the plug-ins mine:Mine" in caplog.text



@pytest.mark.parametrize("command, args, message", [
    ("compare", ["--controllers", "mpc-decentralised", "--set", "mpc.coordination.method=gradient"],
     "compare.mpc.coordination.method = 'gradient': not read by mpc-decentralised, the run's MPC controllers, on the "
     "run's site networks (caltech: model-market exchanges read only coordination.max_iterations, "
     "coordination.gap_tol)"),
    ("compare", ["--controllers", "mpc-decentralised,mpc-centralised", "--set", "mpc.coordination.model_after=3"],
     "compare.mpc.coordination.model_after = 3: not read by mpc-decentralised, mpc-centralised"),
    ("tune", ["--grid", "coordination.method=newton,nesterov"],
     "tune.grid.coordination.method = ['newton', 'nesterov']: not read by mpc-decentralised"),
])
def test_a_coordination_setting_the_network_coordinator_does_not_read_exits_2(command, args, message, tmp_path,
                                                                              capsys) -> None:
    """On a site network the decentralised MPC coordinates by model-market exchanges, which read max_iterations
    and gap_tol only: coordination.method=gradient ran the same rows as newton under another fingerprint."""
    with pytest.raises(SystemExit) as exit_:
        main([command, "--scenarios", "acn-caltech-network", "--seeds", "0", *args, "--dry-run", "--out",
              str(tmp_path)])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_coordination_setting_read_on_some_scenarios_only_warns(tmp_path, caplog) -> None:
    assert main(["compare", "--scenarios", "seed,acn-caltech-network", "--seeds", "0", "--controllers",
                 "mpc-decentralised", "--set", "mpc.coordination.method=nesterov", "--dry-run", "--out",
                 str(tmp_path)]) == 0
    assert "not read by mpc-decentralised on acn-caltech-network (a site network" in caplog.text
    assert main(["compare", "--scenarios", "acn-caltech-network", "--seeds", "0", "--controllers",
                 "mpc-decentralised", "--set", "mpc.coordination.max_iterations=3", "--dry-run", "--out",
                 str(tmp_path)]) == 0


@pytest.mark.parametrize("command, args, message", [
    ("compare", ["--controllers", "mpc-decentralised", "--set", "mpc.stations.station_tol=0.01"],
     "compare.mpc.stations.station_tol = 0.01: not read by mpc-decentralised, the run's MPC controllers (read by the "
     "station solvers batch, active_set, osqp only"),
    ("compare", ["--controllers", "mpc-decentralised", "--set", "mpc.stations.station_solver=batch", "--set",
                 "mpc.coordination.model_after=none", "--set", "mpc.stations.active_set_max_sweeps=3"],
     "compare.mpc.stations.active_set_max_sweeps = 3: not read by mpc-decentralised"),
    ("tune", ["--grid", "stations.station_time_limit_s=1,5"],
     "tune.grid.stations.station_time_limit_s = [1.0, 5.0]: not read by mpc-decentralised"),
])
def test_a_station_setting_the_closed_form_stations_do_not_read_exits_2(command, args, message, tmp_path,
                                                                        capsys) -> None:
    """The default station solver of the deadline objective is closed form: station_tol=0.01 ran the same rows as
    the default under another fingerprint."""
    with pytest.raises(SystemExit) as exit_:
        main([command, "--scenarios", "seed", "--seeds", "0", *args, "--dry-run", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("args", [
    ["--controllers", "mpc-decentralised", "--set", "mpc.stations.station_solver=osqp", "--set",
     "mpc.stations.station_tol=1e-6"],
    ["--controllers", "mpc-decentralised-tracking", "--set", "mpc.stations.station_max_iter=40"],
    ["--controllers", "mpc-decentralised", "--set", "mpc.stations.station_solver=batch", "--set",
     "mpc.stations.active_set_max_sweeps=3"],
    ["--controllers", "mpc-decentralised-tracking", "--set", "mpc.centralised.centralised_solver=OSQP"],
    ["--controllers", "mpc-foresight", "--set", "mpc.stations.station_solver=active_set", "--set",
     "mpc.centralised.centralised_solver=OSQP"],
])
def test_a_station_setting_the_run_s_station_solver_reads_is_accepted(args, tmp_path) -> None:
    """The reported market of 'batch' and 'active_set' stations (newton with model_after) clears the centralised
    QP of the stations' QPs with centralised_solver and models them by the active set (active_set_max_sweeps):
    both were refused as unread, though they changed the rows (`test_the_reported_market_reads_...`)."""
    assert main(["compare", "--scenarios", "seed", "--seeds", "0", *args, "--dry-run", "--out", str(tmp_path)]) == 0


@pytest.mark.parametrize("args, message", [
    (["--set", "mpc.coordination.method=smoothed-newton"],
     "compare.mpc.coordination.method = 'smoothed-newton': not read by mpc-decentralised, the run's MPC controllers "
     "('smoothed-newton' smooths with the station solvers active_set and batch only"),
    (["--set", "mpc.coordination.method=gradient", "--set", "mpc.coordination.gap_tol=1e-5"],
     "compare.mpc.coordination.gap_tol = 1e-05: not read by mpc-decentralised"),
    (["--set", "mpc.stations.station_solver=osqp", "--set", "mpc.coordination.model_after=3"],
     "compare.mpc.coordination.model_after = 3: not read by mpc-decentralised"),
])
def test_a_coordination_setting_the_area_coordinator_does_not_read_exits_2(args, message, tmp_path, capsys) -> None:
    """With the default (closed-form) stations 'smoothed-newton' ran Newton alone, the rows of model_after=None;
    gradient never reads gap_tol; OSQP stations never enter the model market."""
    with pytest.raises(SystemExit) as exit_:
        main(["compare", "--scenarios", "seed", "--seeds", "0", "--controllers", "mpc-decentralised", *args,
              "--dry-run", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_smoothed_newton_with_stations_that_smooth_is_accepted(tmp_path, caplog) -> None:
    assert main(["compare", "--scenarios", "seed", "--seeds", "0", "--controllers", "mpc-decentralised", "--set",
                 "mpc.coordination.method=smoothed-newton", "--set", "mpc.stations.station_solver=batch", "--dry-run",
                 "--out", str(tmp_path)]) == 0
    assert main(["compare", "--scenarios", "seed", "--seeds", "0", "--controllers",
                 "mpc-decentralised,mpc-decentralised-tracking", "--set", "mpc.coordination.method=smoothed-newton",
                 "--dry-run", "--out", str(tmp_path)]) == 0
    assert "coordination.method = 'smoothed-newton': not read by mpc-decentralised" in caplog.text


def test_max_horizon_without_horizon_to_departure_exits_2(tmp_path, capsys) -> None:
    """The horizon is then `horizon`: max_horizon=96 ran the rows of the default under another fingerprint."""
    args = ["compare", "--scenarios", "seed", "--seeds", "0", "--controllers", "mpc-decentralised,mpc-centralised",
            "--set", "mpc.policy.horizon_to_departure=false", "--dry-run", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--set", "mpc.policy.max_horizon=96"])
    assert exit_.value.code == 2
    assert "compare.mpc.policy.max_horizon = 96: not read by mpc-decentralised, mpc-centralised" in capsys.readouterr().err
    assert main(args) == 0


@pytest.mark.parametrize("changes", [{"station_solver": "batch"}, {"objective": "tracking"},
                                     {"station_solver": "batch", "model_after": None}, {}])
def test_the_reported_market_reads_the_settings_the_preflight_says_it_reads(changes, monkeypatch) -> None:
    """What `unread_station_settings` / `unread_centralised_settings` say the area coordinator reads is what it
    builds on a short seed episode (the market after one Newton round unless model_after is None): the reported
    market's active-set model of the stations (active_set_max_sweeps with 'batch') and its centralised QP
    (centralised_solver)."""
    from experiments.commands.runner import run_episode
    from pev_env.config import EnvConfig
    from pev_env.scenarios import make_scenario
    from pev_mpc import area_market
    from pev_mpc.decentralised import reported_market, unread_centralised_settings, unread_station_settings
    from pev_mpc.policies.mpc import DecentralisedMPC
    from pev_mpc.settings import MPCSettings

    built: list[str] = []
    model, centralised = area_market.ActiveSetStations, area_market.solve_centralised
    monkeypatch.setattr(area_market, "ActiveSetStations", lambda *a: built.append("model") or model(*a))
    monkeypatch.setattr(area_market, "solve_centralised", lambda *a, **k: built.append("qp") or centralised(*a, **k))
    settings = MPCSettings().replace(**{"model_after": 1, **changes})
    config, scenario = make_scenario("seed", 0, base=EnvConfig.from_mapping({"total_time": 60}))
    run_episode(DecentralisedMPC(settings), config, scenario, 0)
    market = reported_market(settings)
    assert ("model" in built) == ("qp" in built) == market == (changes != {} and changes.get("model_after", 1) == 1)
    assert ("centralised.centralised_solver" not in unread_centralised_settings(settings)) == market
    sweeps = "stations.active_set_max_sweeps" not in unread_station_settings(settings)
    assert sweeps == (market or settings.objective.name == "tracking")


def test_tune_s_default_grid_on_a_site_network_says_it_is_the_default(tmp_path, capsys) -> None:
    """No --grid on acn-caltech-network: the refusal named a grid the user never gave (coordination.method of the
    default grid); it now says the default grid is for the area limit and to give --grid."""
    with pytest.raises(SystemExit) as exit_:
        main(["tune", "--scenarios", "acn-caltech-network", "--seeds", "0", "--dry-run", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert ("it is in tune's default grid, which is for the area limit: give --grid with the fields read here"
            in capsys.readouterr().err)
