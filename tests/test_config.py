"""EnvConfig: defaults, derived properties, every validation path, files and overrides."""
from __future__ import annotations

import dataclasses
import re

import pytest

from pev_env.config import EnvConfig

SEED_DEFAULTS = dict(n_stations=6, n_pevs=10, p_min=0.0, p_max=22.0, P_min=0.0, P_max=200.0, P_ref=31.5, xi=0.1,
                     soc_max=24.0, soc_ref=24.0, sampling_time=5.0, total_time=240.0, charge_time_desired=90.0,
                     initial_charge_max=0.5, charge_duration_tolerance=0.2, random_start_coeff=1.0,
                     reward_weights=(1.0, 2.0, 2.0), shared_reward=True, area_limit_fraction=0.8,
                     acn_battery_kwh=60.0, acn_battery_max_kwh=100.0,
                     network="area", transformer_kw=150.0, jpl_first_transformer_kw=45.0,
                     jpl_third_fourth_transformer_kw=150.0, voltage_v=208.0)


def test_seed_defaults_and_properties():
    cfg = EnvConfig()
    assert cfg.as_dict() == {**SEED_DEFAULTS, "reward_weights": [1.0, 2.0, 2.0]}
    assert cfg.dt_h == pytest.approx(5 / 60) and cfg.eta == pytest.approx(0.9) and cfg.n_steps == 48
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.p_max = 1.0  # type: ignore[misc]


INVALID = [
    ("n_stations", 0), ("n_stations", 2.5), ("n_stations", True), ("n_pevs", -1),
    ("p_min", -1.0), ("p_min", float("nan")), ("p_max", 0.0), ("p_max", "big"),
    ("P_min", -0.5), ("P_max", 0.0), ("P_ref", 0.0), ("P_ref", 250.0), ("P_ref", float("inf")),
    ("xi", 1.0), ("xi", -0.1), ("soc_max", 0.0), ("soc_ref", 25.0), ("soc_ref", 0.0),
    ("sampling_time", 0.0), ("total_time", 1.0), ("charge_time_desired", -5.0),
    ("initial_charge_max", 1.5), ("charge_duration_tolerance", 1.0), ("random_start_coeff", -1.0),
    ("reward_weights", (1.0, 2.0)), ("reward_weights", (1.0, -2.0, 2.0)), ("reward_weights", "abc"),
    ("shared_reward", "yes"),
]


@pytest.mark.parametrize("field, value", INVALID)
def test_invalid_field_names_field_and_value(field, value):
    with pytest.raises(ValueError, match=rf"^EnvConfig\.{field} = .*: must "):
        EnvConfig(**{field: value})


def test_cross_field_bounds():
    with pytest.raises(ValueError, match=re.escape("EnvConfig.p_max = 1.0: must be > 0 and >= p_min")):
        EnvConfig(p_min=2.0, p_max=1.0)
    with pytest.raises(ValueError, match=r"EnvConfig\.P_max = 5\.0"):
        EnvConfig(P_min=10.0, P_max=5.0, P_ref=5.0)
    with pytest.raises(ValueError, match=r"EnvConfig\.P_ref = 5\.0: must be > 0 and within \[P_min, P_max\]"):
        EnvConfig(P_min=10.0, P_ref=5.0)


def test_mapping_and_unknown_keys():
    cfg = EnvConfig.from_mapping({"p_max": 11, "reward_weights": [1, 0, 0], "n_stations": 3})
    assert cfg.p_max == 11.0 and isinstance(cfg.p_max, float) and cfg.reward_weights == (1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['pmax'\]; valid fields: \['n_stations'"):
        EnvConfig.from_mapping({"pmax": 11})


def test_overrides_coerce_strings():
    cfg = EnvConfig().with_overrides(["p_max=11", "n_stations=3", "shared_reward=false", "reward_weights=[1, 0.5, 2]"])
    assert (cfg.p_max, cfg.n_stations, cfg.shared_reward, cfg.reward_weights) == (11.0, 3, False, (1.0, 0.5, 2.0))
    assert EnvConfig().with_overrides({"xi": "0.2"}).eta == pytest.approx(0.8)
    assert EnvConfig().with_overrides({"shared_reward": "1"}).shared_reward is True


@pytest.mark.parametrize("override, match", [
    (["p_max"], r"expected 'field=value'"),
    (["p_max=abc"], r"EnvConfig\.p_max = 'abc': must be a number"),
    (["n_stations=2.5"], r"EnvConfig\.n_stations = 2\.5: must be an integer >= 1"),
    (["shared_reward=maybe"], r"EnvConfig\.shared_reward = 'maybe': must be one of"),
    (["reward_weights=a,b,c"], r"EnvConfig\.reward_weights = .*: must be a sequence of 3 numbers"),
    (["nope=1"], r"unknown field\(s\) \['nope'\]"),
])
def test_bad_overrides(override, match):
    with pytest.raises(ValueError, match=match):
        EnvConfig().with_overrides(override)


def test_from_yaml_and_toml(tmp_path):
    yaml_file = tmp_path / "plant.yaml"
    yaml_file.write_text("p_max: 11\nreward_weights: [1, 1, 1]\nshared_reward: false\n")
    toml_file = tmp_path / "plant.toml"
    toml_file.write_text("p_max = 11.0\nreward_weights = [1, 1, 1]\nshared_reward = false\n")
    expected = EnvConfig(p_max=11.0, reward_weights=(1.0, 1.0, 1.0), shared_reward=False)
    assert EnvConfig.from_file(yaml_file) == expected == EnvConfig.from_file(toml_file)
    (tmp_path / "empty.yml").write_text("")
    assert EnvConfig.from_file(tmp_path / "empty.yml") == EnvConfig()


def test_bad_files(tmp_path):
    (tmp_path / "plant.json").write_text("{}")
    with pytest.raises(ValueError, match=r"EnvConfig file .*plant\.json: suffix '\.json' not allowed; allowed: \.yaml, \.yml, \.toml"):
        EnvConfig.from_file(tmp_path / "plant.json")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="top level must be a mapping"):
        EnvConfig.from_file(tmp_path / "list.yaml")
    (tmp_path / "bad.toml").write_text("p_max = -3.0\n")
    with pytest.raises(ValueError, match=r"EnvConfig\.p_max = -3\.0"):
        EnvConfig.from_file(tmp_path / "bad.toml")


def test_a_field_given_to_the_constructor_is_the_users_choice_even_at_its_default() -> None:
    """EnvConfig(transformer_kw=150) on acn-caltech-network used to run at the scenario's 40 kW, and
    EnvConfig(network="area") on its Caltech network, because a default value counted as not chosen."""
    import dataclasses

    from pev_env import PEVChargeEnv, make_scenario

    assert EnvConfig(transformer_kw=150.0).user_set == {"transformer_kw"} and EnvConfig().user_set == frozenset()
    assert dataclasses.replace(EnvConfig(), xi=0.0).user_set == {"xi"}  # replace passes every field
    config, _ = make_scenario("acn-caltech-network", 0, EnvConfig(transformer_kw=150.0))
    assert (config.network, config.transformer_kw) == ("caltech", 150.0)
    assert make_scenario("acn-caltech-network", 0, EnvConfig(network="area"))[0].network == "area"
    assert make_scenario("acn-caltech-network", 0, EnvConfig())[0].transformer_kw == 40.0
    env = PEVChargeEnv(scenario_name="acn-caltech-network", config=EnvConfig(transformer_kw=150.0))
    env.reset(seed=0)
    assert env.unwrapped.config.transformer_kw == 150.0
