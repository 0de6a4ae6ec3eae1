"""The one place a scenario name or spec is resolved: `FAMILIES` (one builder per family, in order).

A new family is one file with a `ScenarioFamily` subclass (`pev_env.scenarios.base`) and one entry here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pev_env import acn
from pev_env.config import EnvConfig
from pev_env.files import file_sha256
from pev_env.plant import check_consistent
from pev_env.scenario import Scenario
from pev_env.scenarios.acn_caltech import AcnCaltechFamily
from pev_env.scenarios.acn_file import AcnFileFamily
from pev_env.scenarios.base import ScenarioFamily
from pev_env.scenarios.csv_file import CsvFileFamily
from pev_env.scenarios.seed import SeedFamily
from pev_env.scenarios.synthetic import SyntheticFamily

FAMILIES: tuple[ScenarioFamily, ...] = (SeedFamily(), AcnCaltechFamily(), SyntheticFamily(), AcnFileFamily(),
                                        CsvFileFamily())
SCENARIO_NAMES: tuple[str, ...] = tuple(name for family in FAMILIES for name in family.names)
"""The fixed names; the parsed forms are in `scenario_names()`."""


def scenario_names() -> tuple[str, ...]:
    """Every accepted form: the fixed names, then the patterns (synthetic-N, acn:PATH:YYYY-MM-DD, csv:PATH)."""
    return SCENARIO_NAMES + tuple(p for family in FAMILIES for p in family.patterns)


def resolve(spec: str, key: str = "scenario") -> tuple[ScenarioFamily, Any]:
    """The family of `spec` and its parsed arguments; errors start with `key`."""
    for family in FAMILIES if isinstance(spec, str) else ():
        try:
            args = family.parse(spec)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
        if args is not None:
            return family, args
    raise ValueError(f"{key}: unknown scenario {spec!r}; valid scenarios: {', '.join(scenario_names())}")


def check_scenario(spec: str, key: str = "scenario") -> None:
    """Raise ValueError (starting with `key`) unless `spec` names a scenario that can be built (files, days)."""
    family, args = resolve(spec, key)
    try:
        family.check(args)
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None


def generation_fields_read(spec: str, config: EnvConfig) -> tuple[str, ...]:
    """The GENERATION_FIELDS that building `spec` read for the plant `config` it derived: the family's
    `generation_reads`, without area_limit_fraction where P_ref was not computed from it (set by the user, or a
    site network's P_ref that never binds: `pev_env.plant.binding_area_limit`)."""
    from pev_env.network import is_site

    family, _ = resolve(spec)
    binding = not config.is_set("P_ref") and not is_site(config.network)
    return tuple(f for f in family.generation_reads if f != "area_limit_fraction" or binding)


def make_scenario(spec: str, seed: int, base: EnvConfig | None = None) -> tuple[EnvConfig, Scenario]:
    """The config and the scenario named by `spec` (a name or a file spec), drawn with `seed` (int >= 0).

    `base` supplies every field the scenario does not fix (default: the seed's EnvConfig). The returned
    config is consistent with the scenario (`pev_env.plant.check_consistent`).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"make_scenario: seed = {seed!r}: must be an integer >= 0")
    family, args = resolve(spec)
    config, scenario = family.build(args, seed, base or EnvConfig())
    check_consistent(config, scenario, where=f"scenario {spec!r}")
    return config, scenario


def scenario_label(spec: str) -> str:
    """Readable name of `spec` for results and file names: a name itself, acn-<site>-<day>, csv-<file stem>
    (a string that is no spec, e.g. a hand-made scenario's label, stays as it is)."""
    try:
        family, args = resolve(spec)
    except ValueError:
        return spec
    return family.label(spec, args)


def scenario_episodes(spec: str, seeds: Sequence[int]) -> list[int]:
    """Which episode of `spec` each seed draws: equal numbers draw the same episode (acn:/csv: ignore the seed;
    acn-caltech* repeat their days)."""
    family, args = resolve(spec)
    return family.episodes(args, seeds)


def episode_names(spec: str, seeds: Sequence[int]) -> list[str]:
    """A name per seed of the episode of `spec` it draws (`ScenarioFamily.episode_names`): equal names are the same
    episode, also across scenario names (`acn-caltech` seed 0 and `acn-caltech-eval` seed 0 are one day)."""
    family, args = resolve(spec)
    return family.episode_names(spec, args, seeds)


def scenario_files(spec: str) -> dict[str, str]:
    """Data files of `spec` -> their sha256 (provenance; {} for generated scenarios). A file shipped with the
    package is named by its path in the package (`pev_env/data/...`), so that the rows of the shipped
    scenarios have the same settings fingerprint wherever the package is installed or checked out; any other
    file by its absolute path."""
    family, args = resolve(spec)
    return {_file_name(path): file_sha256(path) for path in family.files(args)}


def _file_name(path: Path) -> str:
    """`pev_env/data/NAME` for a file of the package's data folder, else the path as given."""
    resolved = Path(path).resolve()
    return f"pev_env/data/{resolved.name}" if resolved.parent == acn.DATA_DIR else str(path)


def scenario_provenance(specs: Iterable[str]) -> dict[str, dict[str, str]]:
    """`scenario_files` of every spec that reads files, keyed by spec (for run.json)."""
    return {spec: files for spec in specs if (files := scenario_files(spec))}


def data_report_notes(reports: Mapping[str, Sequence[dict[str, Any]]]) -> list[str]:
    """One line per file of `scenario_data_reports` that has something to say (for summary.md)."""
    return [note for spec, found in reports.items() for report in found
            if (note := resolve(spec)[0].report_note(report))]


def scenario_data_reports(specs: Iterable[str], base: EnvConfig | None = None) -> dict[str, list[dict[str, Any]]]:
    """The data report of every spec that reads session files, keyed by spec (for run.json's `data_report`):
    per file the rows read and kept, the rows left out by kind with their ids (`pev_env.acn.REPORT_KINDS`) and
    the rules of building its days at `base`'s settings (default: EnvConfig())."""
    reports = {}
    for spec in specs:
        family, args = resolve(spec)
        if report := family.data_report(args, base or EnvConfig()):
            reports[spec] = report
    return reports
