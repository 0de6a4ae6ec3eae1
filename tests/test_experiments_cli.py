"""End-to-end smoke tests of every subcommand on tiny configurations, resume and failure handling."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from experiments.cli.main import main
from experiments.commands import runner
from experiments.outputs.results import KEY_COLUMNS
from pev_env.metrics import CONTROLLER_COLUMNS, METRIC_COLUMNS
from pev_env.observation import N_OBS

TINY = ["--scenarios", "seed", "--seeds", "0-1", "--controllers", "uncontrolled,edf", "--jobs", "1", "-q"]


def test_compare_writes_every_output(tmp_path, capsys) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", *TINY, "--out", str(out)]) == 0
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns[:3]) == list(KEY_COLUMNS)
    assert set(METRIC_COLUMNS) | set(CONTROLLER_COLUMNS) <= set(metrics.columns)
    assert len(metrics) == 4 and set(metrics["controller"]) == {"uncontrolled", "edf"}
    assert (metrics.loc[metrics["controller"] == "edf", "area_violation_steps"] == 0).all()
    summary = (out / "summary.md").read_text()
    assert "| edf | 2 |" in summary and "## seed" in summary
    assert "| uncontrolled ‡ | 2 |" in capsys.readouterr().out  # the table is printed, the limit-breaker marked
    trace = pd.read_csv(out / "traces" / "seed_seed0_edf.csv")
    assert {"area_power_kw", "P_ref_kw", "price", "p_0_kw", "p_5_kw"} <= set(trace.columns)
    assert (out / "traces" / "seed_seed0_edf_soc.csv").exists()
    for name in ("violations_unmet.png", "area_power_seed.png", "soc_seed.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "run.json").read_text())["config"]["seeds"] == [0, 1]


def test_interrupted_run_keeps_rows_and_resume_skips_them(tmp_path, monkeypatch) -> None:
    out = tmp_path / "cmp"
    calls: list[runner.RunKey] = []
    real = runner.run_key

    def interrupt_after_two(key, cache, env=None):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(key)
        return real(key, cache, env)

    monkeypatch.setattr(runner, "run_key", interrupt_after_two)
    assert main(["compare", *TINY, "--out", str(out), "--no-plots", "--no-traces"]) == 130  # Ctrl-C: no traceback
    assert len(pd.read_csv(out / "metrics.csv")) == 2  # completed rows survived
    assert not (out / ".lock").exists()  # the lock went with the run
    done = {(k.controller, k.scenario, k.seed) for k in calls}

    resumed: list[runner.RunKey] = []
    monkeypatch.setattr(runner, "run_key", lambda key, cache, env=None: resumed.append(key) or real(key, cache, env))
    assert main(["compare", *TINY, "--out", str(out), "--no-plots", "--no-traces", "--resume"]) == 0
    assert not done & {(k.controller, k.scenario, k.seed) for k in resumed} and len(resumed) == 2
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == 4 and not metrics.duplicated(list(KEY_COLUMNS)).any()


def test_a_failed_run_is_reported_and_the_others_kept(tmp_path, monkeypatch) -> None:
    real = runner.run_key

    def fail_edf_seed1(key, cache, env=None):
        if key.controller == "edf" and key.seed == 1:
            raise RuntimeError("boom")
        return real(key, cache, env)

    monkeypatch.setattr(runner, "run_key", fail_edf_seed1)
    out = tmp_path / "cmp"
    assert main(["compare", *TINY, "--out", str(out), "--no-plots"]) == 1
    assert len(pd.read_csv(out / "metrics.csv")) == 3
    assert "seed_seed1_edf" in (out / "summary.md").read_text()


def test_tune_writes_csv_and_pareto(tmp_path, capsys) -> None:
    out = tmp_path / "tune"
    argv = ["tune", "--grid", "coordination.method=newton,gradient", "--grid", "coordination.max_iterations=3",
            "--grid", "policy.horizon=6", "--max-steps", "6", "--out", str(out), "-q"]
    assert main(argv) == 0
    frame = pd.read_csv(out / "tune.csv")
    assert len(frame) == 2 and set(frame["coordination.method"]) == {"newton", "gradient"}
    assert (frame["gap_mean"] >= 0).all() and (frame["iterations_mean"] <= 3).all()
    assert (out / "pareto.png").exists()
    assert "Best" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["tune", "--grid", "colour=red", "--out", str(out), "-q"])


def test_tune_unknown_setting_lists_valid_ones() -> None:
    from experiments.commands.config import typed_grid

    with pytest.raises(ValueError, match=r"tune.grid: unknown MPCSettings field 'colour'; valid fields: objective"):
        typed_grid({"colour": ("red",)})
    with pytest.raises(ValueError, match=r"tune.grid.policy: unknown Policy field 'colour'; valid fields: horizon"):
        typed_grid({"policy.colour": ("red",)})
    with pytest.raises(ValueError, match=r"tune.grid.policy.horizon = 'x': must be an integer"):
        typed_grid({"policy.horizon": ("x",)})
    with pytest.raises(ValueError, match=r"^tune.grid.horizon = 6: MPCSettings has sections; the key is now "
                                         r"tune.grid.policy.horizon$"):
        typed_grid({"horizon": (6,)})


def test_scale_writes_csv_and_plot(tmp_path) -> None:
    out = tmp_path / "scale"
    assert main(["scale", "--sizes", "3,6", "--steps", "1", "--centralised-max", "3", "--out", str(out), "-q"]) == 0
    frame = pd.read_csv(out / "scale.csv")
    assert len(frame) == 4
    skipped = frame[(frame["controller"] == "mpc-centralised") & (frame["n_stations"] == 6)]
    assert skipped["skipped"].str.contains("centralised_max").all()
    assert (frame.dropna(subset=["step_time_median_ms"])["step_time_median_ms"] > 0).all()
    assert (out / "scale.png").exists()
    assert (frame["network"] == "area").all()
    n_steps = 48  # the base plant's 240 min at 5 min: timing starts after a quarter of it, step 12 + the warm-up
    assert frame.dropna(subset=["first_timed_step"])["first_timed_step"].eq(n_steps // 4 + 1).all()
    assert main(["scale", "--sizes", "3", "--steps", "46", "--controllers", "llf", "--out", str(out / "long"), "-q"]) == 0
    assert pd.read_csv(out / "long" / "scale.csv")["first_timed_step"].tolist() == [2]  # 46 + the warm-up fit from 1


def test_scale_mpc_setting_reaches_the_controller(tmp_path, monkeypatch) -> None:
    from experiments.controllers import registry

    seen = []
    make = registry.make_controller
    monkeypatch.setattr(registry, "make_controller", lambda name, **kw: seen.append(kw.get("mpc")) or make(name, **kw))
    out = tmp_path / "scale"
    assert main(["scale", "--sizes", "3", "--steps", "1", "--controllers", "mpc-decentralised",
                 "--set", "mpc.objective.deadline_reg=1e-3", "--out", str(out), "-q"]) == 0
    assert seen and all(mpc.deadline_reg == 1e-3 for mpc in seen)
    assert json.loads((out / "scale.json").read_text())["config"]["mpc"]["objective"]["deadline_reg"] == 1e-3


@pytest.mark.parametrize("algo, controller", [("ippo", "ppo"), ("mappo", "mappo")])
def test_train_save_reload_and_compare(tmp_path, algo, controller) -> None:
    """A short training (IPPO, or the MAPPO smoke: a few hundred samples) saves the same files and a model
    that reloads, acts deterministically and runs in compare under its controller name."""
    from experiments.controllers.rl_model import LearnedPolicy, model_checksum
    from pev_env.scenarios import make_scenario

    model_dir = tmp_path / algo
    assert main(["train", "--algo", algo, "--scenarios", "seed", "--seeds", "1000-1003", "--timesteps", "600",
                 "--set", "n_steps=50", "--set", "batch_size=100", "--out", str(model_dir), "-q"]) == 0
    assert sorted(p.name for p in model_dir.iterdir()) == [".written", "learning_curve.png", "model.json", "model.safetensors",
                                                           "tb", "training_log.csv"]
    assert any((model_dir / "tb").iterdir())
    description = json.loads((model_dir / "model.json").read_text())
    info = description["training"]
    assert description["controller"] == controller and description["algorithm"].startswith(algo)
    assert info["config"]["seeds"] == [1000, 1001, 1002, 1003] and info["samples_trained"] >= 600
    assert len(pd.read_csv(model_dir / "training_log.csv")) >= 1

    config, scenario = make_scenario("seed", 0)
    policy = LearnedPolicy.load(model_dir)
    policy.reset(config, scenario, 0)
    obs = np.zeros((config.n_stations, N_OBS), dtype=np.float32)
    obs[:, 1], obs[:, 4], obs[:, 5], obs[:, 8], obs[:, 9] = 22.0, 1.0, 10.0, 31.5, 12.0
    first, second = policy.act_array(obs), policy.act_array(obs)
    assert np.array_equal(first, second) and ((first >= 0) & (first <= 22.0)).all()

    out = tmp_path / "eval"
    assert main(["evaluate", "--scenarios", "seed", "--seeds", "0", f"--{controller}-model",
                 str(model_dir / "model.json"), "--controllers", f"{controller},edf", "--out", str(out), "-q"]) == 0
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["controller"]) == {controller, "edf"}
    assert metrics["local_violation_steps"].eq(0).all()
    sha = model_checksum(model_dir)
    assert f"`{model_dir}`" in (out / "summary.md").read_text() and sha in (out / "summary.md").read_text()
    run = json.loads((out / "run.json").read_text())
    assert run["models"] == {controller: {"path": str(model_dir), "sha256": sha}}


def test_missing_ppo_model_is_an_error_not_a_retrain(tmp_path, capsys) -> None:
    """A missing model stops the run with exit 2 before anything runs or trains (from any directory)."""
    with pytest.raises(SystemExit) as stop:
        main(["compare", "--scenarios", "seed", "--seeds", "0", "--controllers", "ppo", "--ppo-model",
              str(tmp_path / "none"), "--out", str(tmp_path / "out"), "-q"])
    assert stop.value.code == 2 and "not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "none").exists()


def _spy_settings(monkeypatch) -> dict:
    """Record the MPCSettings of every controller run in this process (runs with --jobs 1)."""
    seen: dict = {}
    real = runner.run_key

    def spy(key, cache, env=None):
        seen[key.controller] = getattr(cache.get(key.controller), "settings", None)
        return real(key, cache, env)

    monkeypatch.setattr(runner, "run_key", spy)
    return seen


def test_compare_mpc_setting_reaches_the_controller(tmp_path, monkeypatch) -> None:
    """`--set mpc.policy.horizon=6` changes the centralised MPC's horizon (and its actions), also in a process pool."""
    from pev_mpc.settings import MPCSettings

    base = ["compare", "--scenarios", "seed", "--seeds", "0", "--no-plots", "-q"]
    seen = _spy_settings(monkeypatch)
    assert main([*base, "--controllers", "mpc-centralised", "--jobs", "1", "--out", str(tmp_path / "default")]) == 0
    assert seen["mpc-centralised"] == MPCSettings()
    assert main([*base, "--controllers", "mpc-centralised,edf", "--jobs", "1", "--set", "mpc.policy.horizon=6",
                 "--out", str(tmp_path / "h6")]) == 0
    assert seen["mpc-centralised"] == MPCSettings(horizon=6) and seen["edf"] is None
    info = json.loads((tmp_path / "h6" / "run.json").read_text())
    assert info["config"]["mpc"]["policy"]["horizon"] == 6
    assert json.loads((tmp_path / "default" / "run.json").read_text())["config"]["mpc"]["policy"]["horizon"] == 24

    def power(out):
        trace = pd.read_csv(out / "traces" / "seed_seed0_mpc-centralised.csv")
        return trace.filter(like="p_").to_numpy()

    assert not np.allclose(power(tmp_path / "default"), power(tmp_path / "h6"))  # the horizon changed the actions
    # two runs -> a pool of 2 worker processes: the settings travel with the (pickled) run function
    assert main([*base, "--controllers", "mpc-centralised,edf", "--jobs", "2", "--set", "mpc.policy.horizon=6",
                 "--out", str(tmp_path / "pool")]) == 0
    np.testing.assert_allclose(power(tmp_path / "pool"), power(tmp_path / "h6"), atol=1e-9)  # solver noise


def test_run_function_with_mpc_settings_pickles() -> None:
    import pickle
    from functools import partial

    from pev_mpc.settings import MPCSettings

    fn = partial(runner.run_cached, mpc=MPCSettings(horizon=6))
    assert pickle.loads(pickle.dumps(fn)).keywords["mpc"] == MPCSettings(horizon=6)


def test_compare_bad_mpc_setting_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as err:
        main(["compare", "--set", "mpc.policy.horizon=0"])
    assert err.value.code == 2
    assert "compare.mpc.policy.horizon = 0: must be an int in [1, 2016]" in capsys.readouterr().err


def test_compare_env_reaches_the_plant(tmp_path) -> None:
    """`--set env.P_ref=60` raises the seed's area limit: EDF (which respects it) leaves less energy unmet,
    uncontrolled charging violates it less; run.json records the base plant. Also through a pool of 2."""
    from pev_env.config import EnvConfig

    base = ["compare", "--scenarios", "seed", "--seeds", "0", "--controllers", "edf,uncontrolled", "--no-plots", "-q"]
    assert main([*base, "--jobs", "1", "--out", str(tmp_path / "default")]) == 0
    assert main([*base, "--jobs", "2", "--set", "env.P_ref=60", "--out", str(tmp_path / "p60")]) == 0
    default, p60 = (pd.read_csv(tmp_path / d / "metrics.csv").set_index("controller") for d in ("default", "p60"))
    assert p60.loc["edf", "unmet_energy_kwh"] < default.loc["edf", "unmet_energy_kwh"] - 1.0
    assert p60.loc["uncontrolled", "area_violation_steps"] < default.loc["uncontrolled", "area_violation_steps"]
    assert (pd.read_csv(tmp_path / "p60" / "traces" / "seed_seed0_edf.csv")["P_ref_kw"] == 60.0).all()
    info = json.loads((tmp_path / "p60" / "run.json").read_text())
    assert info["config"]["env"] == EnvConfig(P_ref=60.0).as_dict()
    assert json.loads((tmp_path / "default" / "run.json").read_text())["config"]["env"] == EnvConfig().as_dict()


def test_env_file_option_with_set_on_top(tmp_path) -> None:
    plant = tmp_path / "plant.toml"
    plant.write_text("P_ref = 60\nxi = 0.2\n")
    out = tmp_path / "cmp"
    assert main(["compare", "--scenarios", "seed", "--seeds", "0", "--controllers", "edf", "--jobs", "1", "--no-plots",
                 "--env-file", str(plant), "--set", "env.xi=0.05", "--out", str(out), "-q"]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["env_file"] == str(plant)
    assert (info["config"]["env"]["P_ref"], info["config"]["env"]["xi"]) == (60.0, 0.05)


def test_tune_and_scale_record_and_use_the_env(tmp_path) -> None:
    tune_out, scale_out = tmp_path / "tune", tmp_path / "scale"
    assert main(["tune", "--grid", "coordination.max_iterations=3", "--grid", "policy.horizon=6", "--max-steps", "4",
                 "--set", "env.P_ref=60", "--out", str(tune_out), "-q"]) == 0
    assert json.loads((tune_out / "tune.json").read_text())["config"]["env"]["P_ref"] == 60.0
    assert main(["scale", "--sizes", "3", "--steps", "1", "--controllers", "edf", "--set", "env.soc_max=48",
                 "--set", "env.soc_ref=48", "--out", str(scale_out), "-q"]) == 0
    assert json.loads((scale_out / "scale.json").read_text())["config"]["env"]["soc_max"] == 48.0


@pytest.mark.parametrize("set_p_ref", [False, True])
def test_tune_and_scale_record_the_plants_that_ran(set_p_ref, tmp_path) -> None:
    """synthetic-N recomputes P_ref unless it is set, even to its default (31.5): the two runs had the same
    `config` in tune.json / scale.json, so only `env_set` and `plants` tell which plant ran."""
    extra = ["--set", "env.P_ref=31.5"] if set_p_ref else []
    tune_out, scale_out = tmp_path / "tune", tmp_path / "scale"
    assert main(["tune", "--scenarios", "synthetic-5", "--grid", "policy.horizon=6", "--max-steps", "3", "--workers",
                 "1", *extra, "--out", str(tune_out), "-q"]) == 0
    assert main(["scale", "--sizes", "5", "--steps", "1", "--controllers", "edf", *extra, "--out", str(scale_out),
                 "-q"]) == 0
    for out, name in ((tune_out, "tune"), (scale_out, "scale")):
        record = json.loads((out / f"{name}.json").read_text())
        rows = pd.read_csv(out / f"{name}.csv")
        assert record["env_set"] == (["P_ref"] if set_p_ref else [])
        assert set(rows["plant_fingerprint"]) == set(record["plants"])
        assert ({plant["P_ref"] for plant in record["plants"].values()} == {31.5}) == set_p_ref


def test_run_function_with_env_pickles() -> None:
    import pickle
    from functools import partial

    from pev_env.config import EnvConfig

    fn = partial(runner.run_cached, mpc=None, env=EnvConfig(P_ref=60.0))
    again = pickle.loads(pickle.dumps(fn))
    assert again.keywords["env"] == EnvConfig(P_ref=60.0)
    result = again(runner.RunKey("edf", "seed", 0))
    assert result.trace["P_ref_kw"].eq(60.0).all()


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "env.p_max=-1"], "compare.env.p_max = -1.0: must be > 0 and >= p_min"),
    (["--set", "env.colour=red"], "compare.env: unknown EnvConfig field 'colour'; valid fields: n_stations"),
    (["--env-file", "missing.yaml"], "compare.env_file = 'missing.yaml': config file missing.yaml: cannot read"),
])
def test_compare_bad_env_exits_2(args, message, capsys) -> None:
    with pytest.raises(SystemExit) as err:
        main(["compare", *args])
    assert err.value.code == 2
    assert message in capsys.readouterr().err
