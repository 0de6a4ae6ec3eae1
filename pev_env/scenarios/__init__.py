"""Scenarios by name or spec: `make_scenario(spec, seed, base) -> (EnvConfig, Scenario)`.

| spec                  | stations              | PEVs      | episode             | area limit |
|-----------------------|-----------------------|-----------|---------------------|------------|
| `seed`                | base (6)              | base (10) | base                | base P_ref (31.5 kW) |
| `seed-20`, `seed-30`  | 5                     | 20 / 30   | 960 min             | base P_ref |
| `acn-caltech`         | 42 (the shipped week) | sessions  | the day (>= 24 h)   | binding    |
| `acn-caltech-train`   | 53 (May-Dec 2019)     | sessions  | the day (>= 24 h)   | binding    |
| `acn-caltech-eval`    | 53 (May-Dec 2019)     | sessions  | the day (>= 24 h)   | binding    |
| `synthetic-N`         | N                     | ~2 N      | base                | binding    |
| `acn:PATH:YYYY-MM-DD` | every station id of the file | sessions | the day (>= 24 h) | binding |
| `csv:PATH`            | base or from the file | rows      | base or last departure | binding |

Families: `seed`, `acn_caltech`, `synthetic`, `acn_file`, `csv_file` (one module each); the binding
area limit and the derived plant: `pev_env.plant`; the ACN rules: `pev_env.acn`.
"""

from pev_env.files import file_sha256
from pev_env.scenarios.base import ScenarioFamily
from pev_env.scenarios.registry import (
    FAMILIES,
    SCENARIO_NAMES,
    check_scenario,
    data_report_notes,
    episode_names,
    make_scenario,
    resolve,
    scenario_data_reports,
    scenario_episodes,
    scenario_files,
    scenario_label,
    scenario_names,
    scenario_provenance,
)

__all__ = [
    "FAMILIES", "SCENARIO_NAMES", "ScenarioFamily", "check_scenario", "data_report_notes", "episode_names", "file_sha256",
    "make_scenario", "resolve",
    "scenario_data_reports", "scenario_episodes", "scenario_files", "scenario_label", "scenario_names",
    "scenario_provenance",
]
