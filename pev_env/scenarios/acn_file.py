"""`acn:PATH:YYYY-MM-DD`: one local day of any ACN-Data session file of the shipped format (any site).

Every station id of the file is an agent, rated by `pev_env.acn.station_ratings`; the plant is derived
from the sessions (`pev_env.plant.plant_config`: stations, PEVs, capacities, ratings, episode length,
binding P_ref). The base config's overrides: P_ref, p_min and p_max when they differ from the EnvConfig
defaults (a p_max replaces the inferred ratings), sampling_time (must divide 1440), acn_battery_kwh,
acn_battery_max_kwh and area_limit_fraction. The seed is not used (the day is fixed). A relative PATH is
resolved against the working directory when the spec is parsed; a bare file name that does not exist there
but names a shipped file (`acn:caltech_2019-05-01_2019-08-31.csv.gz:2019-05-13`) is the shipped file
(`pev_env.acn.resolve_file`). What reading the file left out is in `data_report` (run.json).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pev_env import acn
from pev_env.config import EnvConfig
from pev_env.plant import plant_config
from pev_env.scenario import Scenario
from pev_env.scenarios.base import ScenarioFamily

PREFIX = "acn:"


def build_acn_day(
    source: str | os.PathLike[str] | pd.DataFrame, day: dt.date, base: EnvConfig, name: str | None = None
) -> tuple[EnvConfig, Scenario]:
    """Config and scenario of one ACN day (`acn.acn_day_fields`) on the base plant's settings and overrides."""
    fields = acn.acn_day_fields(
        source, day, sampling_time=base.sampling_time, battery_kwh=base.acn_battery_kwh,
        max_battery_kwh=base.acn_battery_max_kwh, name=name,
        ratings=base.p_max if base.is_set("p_max") else None,
    )
    if base.is_set("p_min"):
        fields["p_min"] = base.p_min
    scenario = Scenario(**fields)
    return plant_config(scenario, base), scenario


class AcnFileFamily(ScenarioFamily):
    """`acn:PATH:YYYY-MM-DD` (module doc)."""

    patterns = ("acn:PATH:YYYY-MM-DD",)
    seeded = False
    generation_reads = ("area_limit_fraction", "acn_battery_kwh")

    def parse(self, spec: str) -> tuple[Path, dt.date] | None:
        if not spec.startswith(PREFIX):
            return None
        path, sep, day = spec[len(PREFIX):].rpartition(":")
        if not sep or not path:
            raise ValueError(f"scenario {spec!r}: expected acn:PATH:YYYY-MM-DD (a session file and a local day)")
        return acn.resolve_file(path), acn.parse_day(day)

    def check(self, args: tuple[Path, dt.date]) -> None:
        path, day = args
        acn.day_sessions(acn.load_acn_sessions(path), day, where=repr(str(path)))

    def build(self, args: tuple[Path, dt.date], seed: int, base: EnvConfig) -> tuple[EnvConfig, Scenario]:
        path, day = args
        return build_acn_day(path, day, base, name=self.label("", args))

    def episode_names(self, spec: str, args: tuple[Path, dt.date], seeds: Sequence[int]) -> list[str]:
        path, day = args
        shipped = path.parent == acn.DATA_DIR and path.name.startswith("caltech")   # the days of acn-caltech-*
        return [f"{'caltech' if shipped else acn.site_name(path)}-{day}"] * len(seeds)

    def label(self, spec: str, args: Any) -> str:
        path, day = args
        return f"acn-{acn.site_name(path)}-{day.isoformat()}"

    def files(self, args: tuple[Path, dt.date]) -> tuple[Path, ...]:
        return (args[0],)

    def data_report(self, args: tuple[Path, dt.date], base: EnvConfig) -> list[dict[str, Any]]:
        path, day = args
        return acn.data_report(path, base.sampling_time, base.acn_battery_max_kwh, days=(day,))

    def report_note(self, report: dict[str, Any]) -> str:
        return acn.report_line(report)
