"""Config loading and validation of the experiment harness (errors name key, value and allowed values)."""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments.cli.loader import load_config
from experiments.cli.main import main
from experiments.commands.coerce import build, parse_seeds
from experiments.commands.config import CompareConfig, EvaluateConfig, ScaleConfig, TrainConfig, TuneConfig
from experiments.controllers import registry
from experiments.outputs.provenance import to_dict
from pev_env.config import EnvConfig
from pev_env.mapping_file import read_mapping_file
from pev_mpc.settings import MPCSettings


def test_defaults_are_the_main_job() -> None:
    cfg = load_config(CompareConfig)
    assert cfg.scenarios == ("seed", "seed-20", "acn-caltech", "acn-caltech-network")
    assert cfg.seeds == (0, 1, 2, 3, 4)
    assert set(cfg.controllers) == {"uncontrolled", "edf", "llf", "equal-share", "mpc-decentralised",
                                    "mpc-centralised", "mpc-decentralised-tracking", "offline-optimal", "ppo", "mappo",
                                    "ppo-price", "ppo-safe", "ppo-residual", "mappo-safe", "mappo-lagrangian"}
    assert not set(TrainConfig().seeds) & set(cfg.seeds)  # PPO is evaluated on held-out seeds


def test_train_defaults_are_the_reference_recipe() -> None:
    """A plain `train` reproduces the shipped reference model's recorded configuration (but the output folder),
    on the training split of the real days."""
    from experiments.controllers.rl_model import DESCRIPTION_FILE, reference_model

    reference = json.loads((reference_model("ppo") / DESCRIPTION_FILE).read_text())["training"]
    recorded = {k: v for k, v in reference["config"].items() if k not in ("out", "overwrite")}
    assert {k: to_dict(TrainConfig())[k] for k in recorded} == recorded
    cfg = TrainConfig()
    assert "acn-caltech-train" in cfg.scenarios and "acn-caltech" not in cfg.scenarios
    assert len(cfg.seeds) == 100 and cfg.timesteps == 2_400_000


def test_mpc_settings_default_are_the_mpc_defaults() -> None:
    assert load_config(CompareConfig).mpc == MPCSettings()
    assert load_config(EvaluateConfig, None, {"mpc.policy.horizon": "6"}).mpc.horizon == 6


def test_mpc_settings_from_dotted_set_coerced_to_field_types() -> None:
    cfg = load_config(CompareConfig, None, {"mpc.policy.horizon": "48", "mpc.objective.name": "tracking",
                                            "mpc.objective.terminal_weight": "100",
                                            "mpc.coordination.method": "nesterov", "mpc.coordination.step_size": "none"})
    assert cfg.mpc == MPCSettings(horizon=48, objective="tracking", terminal_weight=100.0, coordination="nesterov",
                                  step_size=None)
    assert type(cfg.mpc.policy.horizon) is int and type(cfg.mpc.objective.terminal_weight) is float
    assert to_dict(cfg)["mpc"]["policy"]["horizon"] == 48 and to_dict(cfg)["mpc"]["coordination"]["step_size"] is None
    gradient = {"mpc.coordination.method": "gradient"}
    assert load_config(CompareConfig, None, {**gradient, "mpc.coordination.step_size": "0.5"}).mpc.step_size == 0.5
    assert load_config(CompareConfig, None, {"mpc.coordination.model_after": "None"}).mpc.model_after is None
    with pytest.raises(ValueError, match=r"compare.mpc.coordination.model_after = 'abc': must be an integer or None"):
        load_config(CompareConfig, None, {"mpc.coordination.model_after": "abc"})


@pytest.mark.parametrize("name,text", [
    ("c.yaml", "mpc: {policy: {horizon: 48}, objective: {name: tracking, terminal_weight: 100}}\n"),
    ("c.yaml", "compare:\n  mpc:\n    policy:\n      horizon: 48\n    objective:\n      name: tracking\n"
               "      terminal_weight: 100\n"),
    ("c.yaml", "mpc.policy.horizon: 48\nmpc.objective: {name: tracking}\nmpc.objective.terminal_weight: 100\n"),
    ("c.toml", "[compare.mpc.policy]\nhorizon = 48\n[compare.mpc.objective]\nname = 'tracking'\nterminal_weight = 100\n"),
    ("c.toml", "[mpc]\npolicy = {horizon = 48}\nobjective = {name = 'tracking', terminal_weight = 100}\n"),
])
def test_mpc_settings_from_file_and_set_merges_into_it(tmp_path, name, text) -> None:
    path = tmp_path / name
    path.write_text(text)
    expected = MPCSettings(horizon=48, objective="tracking", terminal_weight=100.0)
    assert load_config(CompareConfig, path).mpc == expected
    cfg = load_config(CompareConfig, path, {"mpc.policy.horizon": "6"})  # --set overrides one item of the file's
    assert cfg.mpc == expected.replace(horizon=6) and cfg.mpc.objective.given == {"name", "terminal_weight"}


def test_mpc_settings_reach_only_the_mpc_controllers() -> None:
    assert set(registry.mpc_controllers()) == {"mpc-decentralised", "mpc-centralised", "mpc-distributed",
                                              "mpc-decentralised-tracking", "mpc-foresight", "mpc-history"}
    settings = MPCSettings(horizon=6)
    for name in registry.controller_names():
        if name in registry.LEARNED_NEEDS:
            continue
        controller = registry.make_controller(name, mpc=settings)
        got = getattr(controller, "settings", None)
        assert (got is not None and got.horizon == 6) == (name in registry.mpc_controllers())
    assert registry.make_controller("mpc-decentralised-tracking", mpc=settings).settings.objective.name == "tracking"
    assert registry.make_controller("mpc-centralised").settings == MPCSettings()


@pytest.mark.parametrize("cls", [CompareConfig, EvaluateConfig, TuneConfig, ScaleConfig])
def test_env_default_empty_is_the_env_defaults(cls) -> None:
    cfg = load_config(cls)
    assert cfg.env == EnvConfig() and cfg.env_file == ""
    assert load_config(cls, None, {"env.xi": "0.05"}).env == EnvConfig(xi=0.05)


def test_env_from_dotted_set_coerced_to_field_types() -> None:
    cfg = load_config(CompareConfig, None, {"env.P_ref": "40", "env.n_stations": "4", "env.shared_reward": "false",
                                            "env.reward_weights": "1,2,3"})
    assert type(cfg.env.P_ref) is float and type(cfg.env.n_stations) is int
    assert cfg.env == EnvConfig(P_ref=40.0, n_stations=4, shared_reward=False, reward_weights=(1, 2, 3))
    assert to_dict(cfg)["env"]["reward_weights"] == [1.0, 2.0, 3.0]
    assert json.loads(json.dumps(to_dict(cfg)))["env"]["P_ref"] == 40.0


@pytest.mark.parametrize(("name", "text"), [
    ("c.yaml", "env: {P_ref: 40, xi: 0.05}\n"),
    ("c.yaml", "compare:\n  env:\n    P_ref: 40\n    xi: 0.05\n"),
    ("c.yaml", "env.P_ref: 40\nenv.xi: 0.05\n"),
    ("c.toml", "[compare.env]\nP_ref = 40\nxi = 0.05\n"),
    ("c.toml", "[env]\nP_ref = 40\nxi = 0.05\n"),
])
def test_env_from_file_and_set_merges_into_it(tmp_path, name, text) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert load_config(CompareConfig, path).env == EnvConfig(P_ref=40.0, xi=0.05)
    cfg = load_config(CompareConfig, path, {"env.P_ref": "60"})  # --set overrides one item of the file's mapping
    assert cfg.env == EnvConfig(P_ref=60.0, xi=0.05)


@pytest.mark.parametrize(("name", "text"), [
    ("plant.yaml", "P_ref: 40\nxi: 0.05\nreward_weights: [1, 1, 1]\n"),
    ("plant.toml", "P_ref = 40\nxi = 0.05\nreward_weights = [1, 1, 1]\n"),
])
@pytest.mark.parametrize("cls", [CompareConfig, TuneConfig, ScaleConfig])
def test_env_file_with_env_on_top(tmp_path, name, text, cls) -> None:
    plant = tmp_path / name
    plant.write_text(text)
    expected = EnvConfig(P_ref=40.0, xi=0.05, reward_weights=(1.0, 1.0, 1.0))
    assert load_config(cls, None, {"env_file": str(plant)}).env == expected
    cfg = load_config(cls, None, {"env_file": str(plant), "env.xi": "0.2", "env.p_max": "11"})
    assert cfg.env == EnvConfig(P_ref=40.0, xi=0.2, p_max=11.0, reward_weights=(1.0, 1.0, 1.0))
    config_file = tmp_path / "c.yaml"  # the file form of the same
    config_file.write_text(f"env_file: {plant}\nenv: {{xi: 0.2, p_max: 11}}\n")
    assert load_config(cls, config_file).env == cfg.env


def test_env_file_errors_name_the_file_and_field(tmp_path) -> None:
    plant = tmp_path / "plant.yaml"
    plant.write_text("P_ref: 40\ncolour: red\n")
    with pytest.raises(ValueError, match=r"compare.env_file .*plant.yaml: unknown EnvConfig field 'colour'; valid "
                                         r"fields: n_stations"):
        load_config(CompareConfig, None, {"env_file": str(plant)})
    plant.write_text("xi: 1.5\n")
    with pytest.raises(ValueError, match=r"tune.env_file .*plant.yaml \+ tune.env.xi = 1.5: must be in "
                                         r"\[0, 1\)"):
        load_config(TuneConfig, None, {"env_file": str(plant)})
    plant.write_text("- 1\n")
    with pytest.raises(ValueError, match=r"scale.env_file = .*plant.yaml.*top level must be a mapping"):
        load_config(ScaleConfig, None, {"env_file": str(plant)})
    plant.write_text("P_max: 30\nn_pevs: 4.5\n")
    with pytest.raises(ValueError, match=r"compare.env_file .*plant.yaml.n_pevs = 4.5: must be an integer"):
        load_config(CompareConfig, None, {"env_file": str(plant)})
    plant.write_text("P_max: 30\n")  # below the default P_ref (31.5 kW): valid with env.P_ref lowered on top
    with pytest.raises(ValueError, match=r"compare.env_file .*plant.yaml \+ compare.env.P_ref = 31.5"):
        load_config(CompareConfig, None, {"env_file": str(plant)})
    assert load_config(CompareConfig, None, {"env_file": str(plant), "env.P_ref": "25"}).env == EnvConfig(
        P_max=30.0, P_ref=25.0)


def test_build_is_the_one_parser_of_mpc_and_env() -> None:
    assert build(EnvConfig, "k", {"xi": "0.2", "n_pevs": 4.0}) == EnvConfig(xi=0.2, n_pevs=4)
    assert build(MPCSettings, "k", {"policy": {"horizon": "6"}}) == MPCSettings(horizon=6)
    with pytest.raises(ValueError, match=r"^k\.P_ref = 300.0: must be > 0"):
        build(EnvConfig, "k", {"P_ref": 300})
    with pytest.raises(ValueError, match=r"^k = \[1\]: must be a mapping of MPCSettings field -> value"):
        build(MPCSettings, "k", [1])


def test_configs_with_env_pickle() -> None:
    import pickle

    cfg = load_config(CompareConfig, None, {"env.P_ref": "40"})
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert pickle.loads(pickle.dumps(cfg.env)) == EnvConfig(P_ref=40.0)


def test_dotted_grid_of_tune_is_typed() -> None:
    assert load_config(TuneConfig, None, {"grid.policy.horizon": "12,24"}).grid == {"policy.horizon": (12, 24)}


def test_dotted_keys_and_tables_of_one_file_are_merged_in_any_order(tmp_path) -> None:
    """TOML puts a section's own keys before its sub-tables: "env.xi" then [compare.env] dropped xi; in YAML
    `mpc.policy.horizon` before `mpc: {objective: ...}` dropped the horizon (the defaults ran)."""
    toml = tmp_path / "c.toml"
    toml.write_text('[compare]\n"env.xi" = 0.05\n"mpc.policy.horizon" = 12\n[compare.env]\nP_ref = 20\n'
                    '[compare.mpc.objective]\nunmet_weight = 50\n')
    yml = tmp_path / "c.yaml"
    yml.write_text("compare:\n  mpc.policy.horizon: 12\n  env.xi: 0.05\n  mpc: {objective: {unmet_weight: 50}}\n"
                   "  env: {P_ref: 20}\n")
    for file in (toml, yml):
        cfg = load_config(CompareConfig, file)
        assert (cfg.env.xi, cfg.env.P_ref, cfg.mpc.policy.horizon, cfg.mpc.objective.unmet_weight) == (0.05, 20, 12, 50)
    cfg = load_config(CompareConfig, yml, {"mpc.policy.horizon": "6", "env.P_ref": "25"})  # --set still wins
    assert (cfg.env.xi, cfg.env.P_ref, cfg.mpc.policy.horizon) == (0.05, 25, 6)


def test_a_value_given_twice_in_one_file_is_refused(tmp_path) -> None:
    yml = tmp_path / "c.yaml"
    yml.write_text("compare:\n  mpc: {policy: {horizon: 12}}\n  mpc.policy.horizon: 24\n")
    with pytest.raises(ValueError, match=r"compare.mpc.policy.horizon is given twice \(in a table and as a dotted "
                                         r"key\); allowed: once"):
        load_config(CompareConfig, yml)


def test_file_then_overrides(tmp_path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('[compare]\nscenarios = ["seed"]\nseeds = "0-2"\ncontrollers = ["edf", "llf"]\nworkers = 2\n')
    cfg = load_config(CompareConfig, toml, {"seeds": "7", "resume": "true"})
    assert cfg.scenarios == ("seed",) and cfg.seeds == (7,) and cfg.controllers == ("edf", "llf")
    assert cfg.workers == 2 and cfg.resume is True
    yml = tmp_path / "c.yaml"
    yml.write_text("scenarios: seed-20\nseeds: [3, 4]\n")
    cfg = load_config(CompareConfig, yml)
    assert cfg.scenarios == ("seed-20",) and cfg.seeds == (3, 4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"colour": "red"}, r"compare: unknown key 'colour'; valid keys: out, overwrite, env, env_file, backend, workers, "
                            r"ray_address, scenarios, seeds"),
        ({"controllers": "edf,foo"}, r"unknown controller 'foo'; valid controllers: uncontrolled, edf"),
        ({"scenarios": "seed,nowhere"}, r"unknown scenario 'nowhere'; valid scenarios: seed, seed-20"),
        ({"seeds": "a-b"}, r"compare.seeds = 'a-b': must be integers >= 0"),
        ({"seeds": "4-2"}, r"compare.seeds = '4-2'"),
        ({"workers": "-1"}, r"compare.workers = -1: must be in \[0, 1024\]"),
        ({"workers": "1.5"}, r"compare.workers = '1.5': must be an integer"),
        ({"backend": "spark"}, r"compare.backend = 'spark': allowed values: local, ray"),
        ({"resume": "maybe"}, r"compare.resume = 'maybe': must be a boolean"),
        ({"mpc.colour": "red"}, r"compare.mpc: unknown MPCSettings field 'colour'; valid fields: objective, "
                                r"coordination, stations, centralised, policy"),
        ({"mpc.policy.colour": "red"}, r"compare.mpc.policy: unknown Policy field 'colour'; valid fields: horizon, "),
        ({"mpc.policy.horizon": "0"}, r"compare.mpc.policy.horizon = 0: must be an int in \[1, 2016\]"),
        ({"mpc.policy.horizon": "x"}, r"compare.mpc.policy.horizon = 'x': must be an integer"),
        ({"mpc.policy.horizon": "2.5"}, r"compare.mpc.policy.horizon = '2.5': must be an integer"),
        ({"mpc.objective.name": "tracking", "mpc.objective.power_reg": "0"},
         r"compare.mpc.objective.power_reg = 0.0: must be > 0"),
        ({"mpc.coordination.method": "magic"}, r"compare.mpc.coordination.method = 'magic': must be one of"),
        ({"mpc": "horizon=4"}, r"compare.mpc = 'horizon=4': must be a mapping"),
        ({"mpc.": "4"}, r"compare: unknown key 'mpc.'; dotted keys set one item of: env, models, mpc"),
        ({"seeds.first": "4"}, r"compare: unknown key 'seeds.first'; dotted keys set one item of: env, models, mpc"),
        ({"mpc.objective.terminal_weight": "inf"}, r"compare.mpc.objective.terminal_weight = 'inf': must be a finite "),
        ({"mpc.stations.station_tol": "nan"}, r"compare.mpc.stations.station_tol = 'nan': must be a finite number"),
        ({"env.p_max": "6.6,x"}, r"compare.env.p_max = 'x': must be a number$"),  # no 'or None': p_max is never None
        ({"env.p_max": "none"}, r"compare.env.p_max = 'none': must be a number$"),
        ({"mpc.coordination.model_after": "x"}, r"compare.mpc.coordination.model_after = 'x': must be an integer or "
                                                r"None$"),
        ({"seeds": "0-99999999"}, r"compare.seeds = '0-99999999': at most 100000 seeds per run"),
        ({"seeds": "5000000000"}, r"compare.seeds = '5000000000': seeds must be <= 4294967295"),
        ({"env.total_time": "1e9"}, r"compare.env = 'total_time / sampling_time = 200000000 steps': must be <= "
                                    r"100000 control steps"),
        ({"ray_address": "bogus"}, r"compare.ray_address = 'bogus': must be empty \(a local Ray instance\), auto, "
                                   r"HOST:PORT or ray://HOST:PORT"),
        ({"resume": "true", "overwrite": "true"}, r"compare.resume = True: cannot be combined with overwrite"),
        ({"reference": "llf", "controllers": "edf"}, r"compare.reference = 'llf': must be one of the controllers"),
        ({"env.colour": "red"}, r"compare.env: unknown EnvConfig field 'colour'; valid fields: n_stations, n_pevs, "
                                r"p_min, p_max, .*shared_reward, area_limit_fraction, acn_battery_kwh, acn_battery_max_kwh, network, transformer_kw, .*voltage_v$"),
        ({"env.p_max": "-1"}, r"compare.env.p_max = -1.0: must be > 0 and >= p_min"),
        ({"env.P_ref": "500"}, r"compare.env.P_ref = 500.0: must be > 0 and within \[P_min, P_max\]"),
        ({"env.n_stations": "2.5"}, r"compare.env.n_stations = '2.5': must be an integer"),
        ({"env.xi": "lots"}, r"compare.env.xi = 'lots': must be a number"),
        ({"env.shared_reward": "maybe"}, r"compare.env.shared_reward = 'maybe': must be a boolean"),
        ({"env.reward_weights": "1,2"}, r"compare.env.reward_weights = \(1.0, 2.0\): must be a sequence "
                                        r"of 3"),
        ({"env": "P_ref=40"}, r"compare.env = 'P_ref=40': must be a mapping"),
        ({"env_file": "plant.json"}, r"compare.env_file = 'plant.json': config file plant.json: suffix '.json' not "
                                     r"allowed"),
        ({"env_file": "missing.yaml"}, r"compare.env_file = 'missing.yaml': config file missing.yaml: cannot read"),
    ],
)
def test_bad_values_name_key_and_allowed(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(CompareConfig, None, overrides)


def test_other_sections_validate() -> None:
    with pytest.raises(ValueError, match=r"train.gamma = 1.5: must be in \(0, 1\]"):
        load_config(TrainConfig, None, {"gamma": "1.5"})
    with pytest.raises(ValueError, match=r"train.lagrange_lr = 3.0: applies to algo 'mappo-lagrangian' only, not "
                                         r"'ippo'"):  # ippo never read it, and model.json recorded it
        load_config(TrainConfig, None, {"lagrange_lr": "3"})
    assert load_config(TrainConfig, None, {"algo": "mappo-lagrangian", "cost_limit": "0.1"}).cost_limit == 0.1
    with pytest.raises(ValueError, match=r"scale.sizes = \(0,\)"):
        load_config(ScaleConfig, None, {"sizes": "0"})


def test_bad_files(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"suffix '.json' not allowed; allowed: .yaml, .yml, .toml"):
        load_config(CompareConfig, tmp_path / "c.json")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: [1, 2\n")
    with pytest.raises(ValueError, match=r"bad.yaml: not valid YAML"):
        load_config(CompareConfig, bad)
    twice = tmp_path / "twice.yaml"
    twice.write_text("seeds: 1\nenv:\n  P_ref: 3\nseeds: 2\n")    # YAML would keep the last seeds silently
    with pytest.raises(ValueError, match=r"twice.yaml: not valid YAML: line 4, column 1: duplicate key 'seeds' "
                                         r"\(first on line 1\)"):
        load_config(CompareConfig, twice)
    merged = tmp_path / "merged.yaml"       # a merge key's values may be overridden
    merged.write_text("base: &b {horizon: 6}\nmpc:\n  policy:\n    <<: *b\n    horizon: 12\n")
    assert read_mapping_file(merged)["mpc"]["policy"] == {"horizon": 12}
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match=r"top level must be a mapping"):
        load_config(CompareConfig, listy)
    with pytest.raises(ValueError, match=r"cannot read"):
        load_config(CompareConfig, tmp_path / "missing.toml")


@given(st.lists(st.integers(0, 50), min_size=1, max_size=8))
def test_parse_seeds_roundtrip(seeds) -> None:
    text = ",".join(map(str, seeds))
    assert parse_seeds("k", text) == tuple(dict.fromkeys(seeds))
    assert parse_seeds("k", seeds) == tuple(dict.fromkeys(seeds))


def test_seed_ranges() -> None:
    assert parse_seeds("k", "0-3,10,2") == (0, 1, 2, 3, 10)
    assert parse_seeds("k", 5) == (5,)


def test_cli_errors_exit_2_with_message(capsys) -> None:
    with pytest.raises(SystemExit) as err:
        main(["compare", "--controllers", "edf,nope"])
    assert err.value.code == 2
    assert "valid controllers: uncontrolled, edf, llf" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        main(["tune", "--set", "novalue"])
    assert err.value.code == 2
    assert "--set 'novalue': must be KEY=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["compare", "train", "evaluate", "tune", "scale"])
def test_every_subcommand_has_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as err:
        main([command, "--help"])
    assert err.value.code == 0
    text = capsys.readouterr().out
    assert "--config" in text and "--out" in text and "--seeds" in text and "--scenarios" in text
