"""`acn-caltech`, `acn-caltech-train`, `acn-caltech-eval`: real Caltech weekdays shipped with the package.

* `acn-caltech`: the weekday `seed % 5` of the shipped week (2019-05-06 to 05-10); the agents are the
  42 stations of that week's file. It lies in the evaluation split (ISO week 19 is odd): its days are
  `acn-caltech-eval` seeds 0-4 (mod 87), so a set of held-out evaluation days leaves those seeds out.
* `acn-caltech-train` / `acn-caltech-eval`: the weekday `seed % len(days)` of the training / evaluation
  days (even / odd ISO weeks, `pev_env.acn.split_days`) of Caltech May-December 2019; the agents are the
  stations of both files, so both splits have the same spaces. Train on `acn-caltech-train` and
  evaluate on `acn-caltech-eval` (or `acn-caltech`): the days never overlap.
* `acn-caltech-network`: the days of `acn-caltech` on the Caltech site network (`pev_env.network`,
  `network=caltech`) with a transformer of NETWORK_TRANSFORMER_KW = 40 kW unless the base sets
  `transformer_kw` (or another network); any other day on a network: `--set env.network=caltech`.
* `acn-caltech-network-train`: the days of `acn-caltech-train` on that network (training the network-aware
  learned agents; evaluate them on `acn-caltech-eval --set env.network=caltech --set env.transformer_kw=40`).

Plant and overrides as for `acn:` specs (`pev_env.scenarios.acn_file`). Names: acn-caltech-<day>.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from pev_env import acn
from pev_env.config import EnvConfig
from pev_env.scenario import Scenario
from pev_env.scenarios.acn_file import build_acn_day
from pev_env.scenarios.base import ScenarioFamily


class _Source(NamedTuple):
    files: tuple[Path, ...]
    split: str | None
    network: bool = False


_SOURCES = {
    "acn-caltech": _Source((acn.SAMPLE_FILE,), None),
    "acn-caltech-train": _Source(acn.MONTH_FILES, "train"),
    "acn-caltech-eval": _Source(acn.MONTH_FILES, "eval"),
    "acn-caltech-network": _Source((acn.SAMPLE_FILE,), None, network=True),
    "acn-caltech-network-train": _Source(acn.MONTH_FILES, "train", network=True),
}
NETWORK_TRANSFORMER_KW = 40.0
"""`acn-caltech-network`: the Caltech transformer's capacity (kW) unless the base sets one: it binds on
every weekday of the shipped week (acnportal's default, 150 kW, never does)."""


def caltech_days(name: str) -> list[dt.date]:
    """The weekdays the named scenario draws from (`seed % len(days)` picks one)."""
    return _days(name, _frame(name))


def _frame(name: str) -> pd.DataFrame:
    return acn.load_acn_sessions(list(_SOURCES[name].files))


def _days(name: str, frame: pd.DataFrame) -> list[dt.date]:
    days = acn.session_days(frame, weekdays_only=True)
    split = _SOURCES[name].split
    return days if split is None else acn.split_days(days, split)


class AcnCaltechFamily(ScenarioFamily):
    """The shipped Caltech days (module doc)."""

    names = tuple(_SOURCES)
    generation_reads = ("area_limit_fraction", "acn_battery_kwh")

    def parse(self, spec: str) -> str | None:
        return spec if spec in _SOURCES else None

    def build(self, args: str, seed: int, base: EnvConfig) -> tuple[EnvConfig, Scenario]:
        frame = _frame(args)
        days = _days(args, frame)
        day = days[seed % len(days)]
        if _SOURCES[args].network:
            if not base.is_set("network"):
                base = base.with_overrides({"network": "caltech"})
            if base.network == "caltech" and not base.is_set("transformer_kw"):
                base = base.with_overrides({"transformer_kw": NETWORK_TRANSFORMER_KW})
        return build_acn_day(frame, day, base, name=f"acn-caltech-{day}")

    def files(self, args: str) -> tuple[Path, ...]:
        return _SOURCES[args].files

    def data_report(self, args: str, base: EnvConfig) -> list[dict[str, Any]]:
        return acn.data_report(list(_SOURCES[args].files), base.sampling_time, base.acn_battery_max_kwh,
                               days=caltech_days(args))

    def report_note(self, report: dict[str, Any]) -> str:
        return acn.report_line(report)

    def episode_names(self, spec: str, args: str, seeds: Sequence[int]) -> list[str]:
        days = caltech_days(args)
        return [f"caltech-{days[seed % len(days)]}" for seed in seeds]

    def episodes(self, args: str, seeds: Sequence[int]) -> list[int]:
        count = len(caltech_days(args))
        return [seed % count for seed in seeds]
