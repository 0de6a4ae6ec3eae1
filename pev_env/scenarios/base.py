"""The base of every scenario family: parse a spec, check it, build `(EnvConfig, Scenario)` from a seed."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pev_env.config import EnvConfig
from pev_env.scenario import Scenario


GENERATION_FIELDS: tuple[str, ...] = ("area_limit_fraction", "acn_battery_kwh", "charge_time_desired",
                                       "initial_charge_max", "charge_duration_tolerance", "random_start_coeff")
"""EnvConfig fields read only while a scenario is built (its sessions, or its binding P_ref), never by the plant
or a controller: a family that does not read one ignores it (`ScenarioFamily.generation_reads`)."""


class ScenarioFamily(ABC):
    """One family of scenarios (one file per family, registered in `pev_env.scenarios.registry`)."""

    names: tuple[str, ...] = ()
    """The family's fixed names."""
    patterns: tuple[str, ...] = ()
    """How its parsed specs are written (for help and errors), e.g. 'synthetic-N (N >= 1)'."""
    seeded: bool = True
    """False: the seed is not used (every seed draws the same episode)."""
    generation_reads: tuple[str, ...] = ()
    """The fields of GENERATION_FIELDS that building this family's scenarios reads (`generation_fields_read`)."""

    @abstractmethod
    def parse(self, spec: str) -> Any | None:
        """The spec's arguments when it belongs to this family, else None; a malformed spec of the family
        raises ValueError."""

    @abstractmethod
    def build(self, args: Any, seed: int, base: EnvConfig) -> tuple[EnvConfig, Scenario]:
        """The consistent config and the scenario of `args` drawn with `seed`; `base` supplies the rest."""

    def check(self, args: Any) -> None:
        """Validate beyond the syntax (files, days) without building; default: nothing to check."""

    def label(self, spec: str, args: Any) -> str:
        """Readable name of the spec in results (file names too); default: the spec."""
        return spec

    def files(self, args: Any) -> tuple[Path, ...]:
        """Data files the scenario is read from (for provenance); default: none."""
        return ()

    def data_report(self, args: Any, base: EnvConfig) -> list[dict[str, Any]]:
        """What reading the data files left out or read by a rule, one dict per file (`pev_env.acn.data_report`;
        for run.json), with `base`'s settings (sampling time, battery sizes); default: none."""
        return []

    def report_note(self, report: dict[str, Any]) -> str:
        """One line on a `data_report` entry for summary.md ('' when there is nothing to say); default: ''."""
        return ""

    def episode_names(self, spec: str, args: Any, seeds: Sequence[int]) -> list[str]:
        """A name per seed of the episode it draws, for telling training episodes from evaluation ones; a day of
        data is named by its site and day whatever scenario name draws it; default: '<label>#<episode>'."""
        return [f"{self.label(spec, args)}#{episode}" for episode in self.episodes(args, seeds)]

    def episodes(self, args: Any, seeds: Sequence[int]) -> list[int]:
        """Which episode each seed draws (seeds with the same number draw the same episode); default: every
        seed its own, or one episode for all when the family is not `seeded`."""
        return list(seeds) if self.seeded else [0] * len(seeds)
