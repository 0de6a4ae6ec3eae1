"""Config loading and validation of the experiment harness (errors name key, value and allowed values)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments.cli import main
from experiments.config import CompareConfig, ScaleConfig, TrainConfig, load_config, parse_seeds


def test_defaults_are_the_main_job() -> None:
    cfg = load_config(CompareConfig)
    assert cfg.scenarios == ("seed", "seed-20", "acn-caltech")
    assert cfg.seeds == (0, 1, 2, 3, 4)
    assert set(cfg.controllers) == {"uncontrolled", "edf", "llf", "equal-share", "mpc-decentralised",
                                    "mpc-centralised", "offline-optimal", "ppo"}
    assert not set(TrainConfig().seeds) & set(cfg.seeds)  # PPO is evaluated on held-out seeds


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
        ({"colour": "red"}, r"compare: unknown key 'colour'; valid keys: backend, workers, ray_address, scenarios, seeds"),
        ({"controllers": "edf,foo"}, r"unknown controller 'foo'; valid controllers: uncontrolled, edf"),
        ({"scenarios": "seed,nowhere"}, r"unknown scenario 'nowhere'; valid scenarios: seed, seed-20"),
        ({"seeds": "a-b"}, r"compare.seeds = 'a-b': must be integers >= 0"),
        ({"seeds": "4-2"}, r"compare.seeds = '4-2'"),
        ({"workers": "-1"}, r"compare.workers = -1: must be >= 0"),
        ({"workers": "1.5"}, r"compare.workers = '1.5': must be an integer"),
        ({"backend": "spark"}, r"compare.backend = 'spark': allowed values: local, ray"),
        ({"resume": "maybe"}, r"compare.resume = 'maybe': must be a boolean"),
    ],
)
def test_bad_values_name_key_and_allowed(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(CompareConfig, None, overrides)


def test_other_sections_validate() -> None:
    with pytest.raises(ValueError, match=r"train.gamma = 1.5: must be in \(0, 1\]"):
        load_config(TrainConfig, None, {"gamma": "1.5"})
    with pytest.raises(ValueError, match=r"scale.sizes = \(0,\)"):
        load_config(ScaleConfig, None, {"sizes": "0"})


def test_bad_files(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"suffix '.json' not allowed; allowed: .yaml, .yml, .toml"):
        load_config(CompareConfig, tmp_path / "c.json")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: [1, 2\n")
    with pytest.raises(ValueError, match=r"bad.yaml: not valid YAML"):
        load_config(CompareConfig, bad)
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
