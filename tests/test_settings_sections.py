"""MPCSettings in sections: flat keywords map to their section, a setting of another objective or coordination
method is refused (Python, config file, --set), old flat keys name their new key, defaults are the old ones."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from experiments.cli.loader import load_config
from experiments.cli.main import main
from experiments.commands.config import CompareConfig
from experiments.outputs.provenance import fingerprint, to_dict
from pev_mpc.policies.mpc import DecentralisedTrackingMPC
from pev_mpc.settings import FLAT, SECTIONS, Coordination, MPCSettings, Objective, Policy

OLD_DEFAULTS = {
    "horizon": 24, "objective": "deadline", "horizon_to_departure": True, "max_horizon": 48, "unmet_weight": 100.0,
    "early_weight": 0.5, "early_decay_per_h": 3.0, "laxity_scale_h": 1.0, "deadline_reg": 1e-3,
    "terminal_weight": 10.0, "tracking_weight": 1.0, "power_reg": 1e-3, "coordination": "newton", "model_after": 12,
    "model_rounds": 25, "smoothing_after": 4, "barrier_start": 0.25, "barrier_shrink": 0.1, "barrier_end": 1e-4,
    "barrier_rounds": 12, "barrier_accuracy": 1.0, "max_iterations": 200, "primal_tol_kw": 1e-4, "gap_tol": 1e-7,
    "price_tol": 1e-8, "step_size": None, "station_solver": "auto", "station_tol": 1e-9, "station_max_iter": 80,
    "active_set_max_sweeps": 30, "warm_extrapolation": 0.05, "cold_start_sample": 32, "station_time_limit_s": 0.0,
    "centralised_solver": "CLARABEL"}
"""The flat MPCSettings defaults before the sections (pev_mpc/settings.py at c729c57)."""
ADDED = {"foresight": 48, "history": "acn-caltech-train"}
"""Fields added after the sections, with their defaults (`foresight`: the window of mpc-foresight and
mpc-history; `history`: the days mpc-history forecasts from)."""


def _section_value(settings: MPCSettings, flat: str) -> object:
    section, name = FLAT[flat]
    return getattr(getattr(settings, section), name)


def test_defaults_are_the_old_flat_defaults_field_by_field() -> None:
    assert set(FLAT) == set(OLD_DEFAULTS) | set(ADDED)
    defaults = MPCSettings()
    for flat, value in {**OLD_DEFAULTS, **ADDED}.items():
        assert _section_value(defaults, flat) == value, flat
        if flat not in SECTIONS:
            assert getattr(defaults, flat) == value, flat  # flat reading forwards to the section


def test_flat_keywords_map_to_their_section() -> None:
    assert MPCSettings(horizon=48) == MPCSettings(policy=Policy(horizon=48))
    assert MPCSettings(horizon=48).policy.horizon == 48 and MPCSettings(horizon=48).horizon == 48
    tracking = MPCSettings(objective="tracking", terminal_weight=1000.0)
    assert tracking.objective == Objective(name="tracking", terminal_weight=1000.0)
    assert tracking.objective.given == {"name", "terminal_weight"} and tracking.policy.given == frozenset()
    gradient = MPCSettings(coordination="gradient", step_size=0.5, primal_tol_kw=1e-3)
    assert gradient.coordination == Coordination(method="gradient", step_size=0.5, primal_tol_kw=1e-3)
    # a section and flat keywords of it: the keywords update the section given
    assert MPCSettings(policy=Policy(max_horizon=96), horizon=48).policy == Policy(horizon=48, max_horizon=96)
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        MPCSettings(colour="red")


def test_replace_keeps_the_other_fields_of_a_section() -> None:
    settings = MPCSettings(primal_tol_kw=1e-3, gap_tol=1e-6, horizon=12)
    inner = settings.replace(coordination="newton", model_after=None, max_iterations=5)
    assert (inner.primal_tol_kw, inner.gap_tol, inner.max_iterations, inner.model_after) == (1e-3, 1e-6, 5, None)
    assert inner.policy == settings.policy and inner.coordination.given == {"primal_tol_kw", "gap_tol", "method",
                                                                             "model_after", "max_iterations"}
    assert dataclasses.replace(settings, horizon=6).policy == Policy(horizon=6)  # flat keywords through replace
    assert settings.replace(policy=Policy(horizon=6)).policy.horizon == 6


@pytest.mark.parametrize("kwargs, message", [
    ({"terminal_weight": 100.0}, "MPCSettings.objective.terminal_weight = 100.0: applies to objective.name "
                                 "'tracking' only, not 'deadline'"),
    ({"objective": "tracking", "unmet_weight": 50.0}, "MPCSettings.objective.unmet_weight = 50.0: applies to "
                                                      "objective.name 'deadline' only, not 'tracking'"),
    ({"step_size": 0.5}, "MPCSettings.coordination.step_size = 0.5: applies to coordination.method 'gradient' or "
                         "'nesterov' only, not 'newton'"),
    ({"coordination": "gradient", "barrier_start": 0.5}, "coordination.barrier_start = 0.5: applies to "
                                                         "coordination.method 'smoothed-newton' only"),
    ({"coordination": "nesterov", "model_after": None}, "coordination.model_after = None: applies to "
                                                        "coordination.method 'newton' only, not 'nesterov'"),
    ({"coordination": "smoothed-newton", "model_rounds": 3}, "model_rounds = 3: applies to coordination.method"),
    ({"terminal_weight": 10.0}, "terminal_weight = 10.0: applies to objective.name 'tracking'"),  # set, at default
])
def test_a_setting_of_another_objective_or_method_is_refused(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        MPCSettings(**kwargs)


def test_a_section_compared_with_a_string_raises() -> None:
    """Code written for the flat settings (`settings.coordination == "newton"`) fails loudly, never False."""
    with pytest.raises(TypeError, match=r"MPCSettings.coordination is a section, not 'newton': compare "
                                        r"coordination.method"):
        MPCSettings().coordination == "newton"  # noqa: B015
    with pytest.raises(TypeError, match=r"compare objective.name"):
        MPCSettings().objective in ("deadline", "tracking")  # noqa: B015
    assert MPCSettings().objective == Objective() != Objective(name="tracking")
    assert MPCSettings().policy != MPCSettings().stations and len({Policy(), Policy(horizon=24)}) == 1


def test_applicable_settings_and_defaults_are_accepted() -> None:
    MPCSettings(coordination="gradient")  # the defaults of newton's model_after etc. were not set
    MPCSettings(coordination="smoothed-newton", barrier_start=0.5, smoothing_after=2)
    MPCSettings(coordination="nesterov", step_size=0.1)
    MPCSettings(objective="tracking", terminal_weight=1.0, tracking_weight=2.0, power_reg=0.1)
    MPCSettings(unmet_weight=50.0, early_weight=0.2)


def test_given_fields_survive_pickle_and_do_not_change_equality_or_fingerprints() -> None:
    set_at_default = MPCSettings(horizon=24)
    assert set_at_default == MPCSettings() and hash(set_at_default) == hash(MPCSettings())
    assert fingerprint(set_at_default) == fingerprint(MPCSettings())
    copy = pickle.loads(pickle.dumps(MPCSettings(objective="tracking", terminal_weight=5.0)))
    assert copy.objective.given == {"name", "terminal_weight"}
    assert to_dict(MPCSettings())["policy"] == {"horizon": 24, "horizon_to_departure": True, "max_horizon": 48,
                                              "foresight": 48, "history": "acn-caltech-train"}


def test_tracking_controller_keeps_only_the_tracking_weights() -> None:
    deadline = MPCSettings(unmet_weight=50.0, horizon=12)
    policy = DecentralisedTrackingMPC(deadline)  # the deadline weight set for the other MPCs is dropped here
    assert policy.settings.objective == Objective(name="tracking")
    assert policy.settings.horizon == 12 and policy.settings.horizon_to_departure is False
    tracking = DecentralisedTrackingMPC(MPCSettings(objective="tracking", terminal_weight=5.0)).settings
    assert tracking.terminal_weight == 5.0


@pytest.mark.parametrize("overrides, message", [
    ({"mpc.horizon": "48"}, "compare.mpc.horizon = '48': MPCSettings has sections; the key is now "
                            "compare.mpc.policy.horizon"),
    ({"mpc.terminal_weight": "100"}, "the key is now compare.mpc.objective.terminal_weight"),
    ({"mpc.coordination": "nesterov"}, "compare.mpc.coordination = 'nesterov': MPCSettings has sections; the key is "
                                       "now compare.mpc.coordination.method"),
    ({"mpc.objective": "tracking"}, "the key is now compare.mpc.objective.name"),
    ({"mpc.objective.terminal_weight": "100"}, "compare.mpc.objective.terminal_weight = "
                                               "100.0: applies to objective.name 'tracking' only, not 'deadline'"),
])
def test_old_flat_keys_and_inapplicable_settings_are_refused_by_the_loader(overrides, message) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        load_config(CompareConfig, None, overrides)


def test_old_flat_key_in_a_config_file_names_the_new_key(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("mpc: {terminal_weight: 100}\n")
    with pytest.raises(ValueError, match=r"compare\.mpc\.terminal_weight = 100: MPCSettings has sections; the key "
                                         r"is now compare\.mpc\.objective\.terminal_weight"):
        load_config(CompareConfig, path)


@pytest.mark.parametrize("setting, message", [
    ("mpc.horizon=48", "compare.mpc.horizon = '48': MPCSettings has sections; the key is now compare.mpc.policy.horizon"),
    ("mpc.objective.terminal_weight=100", "compare.mpc.objective.terminal_weight = 100.0: applies to objective.name "
                                          "'tracking' only, not 'deadline'"),
    ("mpc.coordination.step_size=0.5", "compare.mpc.coordination.step_size = 0.5: applies to coordination.method"),
])
def test_cli_refuses_with_exit_2_and_one_line(setting, message, capsys) -> None:
    with pytest.raises(SystemExit) as err:
        main(["compare", "--set", setting, "--dry-run"])
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_sectioned_set_and_config_file_give_the_same_settings(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("mpc:\n  objective: {name: tracking, terminal_weight: 100}\n  coordination: {method: gradient, "
                    "step_size: 0.5}\n  stations: {station_solver: osqp}\n")
    from_file = load_config(CompareConfig, path).mpc
    from_set = load_config(CompareConfig, None, {
        "mpc.objective.name": "tracking", "mpc.objective.terminal_weight": "100", "mpc.coordination.method": "gradient",
        "mpc.coordination.step_size": "0.5", "mpc.stations.station_solver": "osqp"}).mpc
    expected = MPCSettings(objective="tracking", terminal_weight=100.0, coordination="gradient", step_size=0.5,
                           station_solver="osqp")
    assert from_file == from_set == expected
    assert from_file.coordination.given == from_set.coordination.given == {"method", "step_size"}
    assert fingerprint(from_file) == fingerprint(expected)
    recorded = to_dict(load_config(CompareConfig, path))["mpc"]  # run.json / settings.json: by section
    assert recorded["objective"]["terminal_weight"] == 100.0 and recorded["stations"]["station_solver"] == "osqp"


def test_a_pickled_section_hashes_as_the_process_that_loads_it(tmp_path) -> None:
    """A section computes its hash once; a copy sent to another process (another string hash seed, as a
    Ray worker) hashes there as the settings built there (the cost cache keys on it)."""
    import os
    import subprocess
    import sys

    settings = MPCSettings(horizon=30, unmet_weight=50.0)
    hash(settings)
    (tmp_path / "s.pkl").write_bytes(pickle.dumps(settings))
    code = ("import pickle, sys; from pev_mpc.settings import MPCSettings; "
            "s = pickle.loads(open(sys.argv[1], 'rb').read()); fresh = MPCSettings(horizon=30, unmet_weight=50.0); "
            "assert hash(s) == hash(fresh) and s == fresh")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.pkl")], check=True, env=env)
