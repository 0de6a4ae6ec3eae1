"""`csv:PATH`: the sessions of a scenario CSV (`Scenario.to_csv` / `Scenario.from_csv` format).

The plant constants come from the base config (`--env-file`, `--set env.*`). n_stations is the base's
when the user set it, else the largest station index + 1 (a file whose every session takes the first free
station, -1, needs env.n_stations); n_steps is the base's (total_time / sampling_time) when
total_time is set, else the last departure. The rest of the plant follows `pev_env.plant.plant_config`
(binding P_ref unless P_ref is set). The seed is not used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pev_env.acn import site_name
from pev_env.config import EnvConfig
from pev_env.limits import MAX_STATIONS
from pev_env.plant import plant_config
from pev_env.scenario import Scenario, csv_scenario, read_sessions_csv
from pev_env.scenarios.base import ScenarioFamily

PREFIX = "csv:"
PLAUSIBLE_KWH = 1000.0
"""Capacities above this are named in the data report (a vehicle battery is far smaller)."""


class CsvFileFamily(ScenarioFamily):
    """`csv:PATH` (module doc)."""

    patterns = ("csv:PATH",)
    seeded = False
    generation_reads = ("area_limit_fraction",)

    def parse(self, spec: str) -> Path | None:
        if not spec.startswith(PREFIX):
            return None
        if not spec[len(PREFIX):]:
            raise ValueError(f"scenario {spec!r}: expected csv:PATH (a scenario CSV file)")
        return Path(spec[len(PREFIX):])

    def check(self, args: Path) -> None:
        read_sessions_csv(args)

    def build(self, args: Path, seed: int, base: EnvConfig) -> tuple[EnvConfig, Scenario]:
        fields = read_sessions_csv(args)
        stations, departures = fields["station"], fields["departure"]
        if stations.size and np.max(stations) >= MAX_STATIONS:
            row = int(np.argmax(stations))
            raise ValueError(f"Scenario CSV {str(args)!r}: line {row + 2}: station = {int(stations[row])}: must be -1 (first "
                             f"free) or in [0, {MAX_STATIONS}) (at most {MAX_STATIONS} stations)")
        if base.is_set("n_stations"):
            n_stations = base.n_stations
        elif (stations >= 0).any():
            n_stations = int(stations.max()) + 1
        elif not stations.size:
            raise ValueError(f"Scenario CSV {str(args)!r}: no sessions (a header and no rows), so the file does not "
                             "give the number of stations; set env.n_stations to run an episode without PEVs")
        else:
            raise ValueError(f"Scenario CSV {str(args)!r}: station = -1 (first free station) in every row, so the file "
                             "does not say how many stations there are; set env.n_stations (e.g. --set env.n_stations=6)")
        n_steps = base.n_steps if base.is_set("total_time") else max(int(departures.max(initial=1)), 1)
        scenario = csv_scenario(args, fields, n_stations=n_stations, n_steps=n_steps, name=self.label("", args),
                                sampling_time=base.sampling_time)
        return plant_config(scenario, base), scenario

    def label(self, spec: str, args: Path) -> str:
        return f"csv-{site_name(args)}"

    def data_report(self, args: Path, base: EnvConfig) -> list[dict[str, Any]]:
        """What a file may hold by mistake and is read as written: identical rows (each a PEV of its own),
        station indices below the largest without a session (n_stations is the largest + 1 unless set), and
        capacities above PLAUSIBLE_KWH (Wh written as kWh?)."""
        fields = read_sessions_csv(args)
        rows = np.column_stack([fields[f] for f in ("arrival", "departure", "soc_init", "soc_target", "capacity",
                                                     "station")]) if fields["station"].size else np.zeros((0, 6))
        _, first, counts = np.unique(rows, axis=0, return_index=True, return_counts=True)
        repeated = sorted(int(i) + 2 for i, c in zip(first, counts) if c > 1)  # file lines of the first copies
        used = {int(s) for s in fields["station"] if s >= 0}
        unused = sorted(set(range(max(used) + 1)) - used) if used else []
        return [{"file": str(args), "rows": int(len(rows)), "identical_rows": {
            "count": int((counts - 1).sum()), "first_lines": repeated[:20]},
            "stations_without_sessions": {"count": len(unused), "stations": unused[:20]},
            "capacity_max_kwh": float(fields["capacity"].max(initial=0.0))}]

    def report_note(self, report: dict[str, Any]) -> str:
        parts = []
        if report["identical_rows"]["count"]:
            parts.append(f"{report['identical_rows']['count']} rows repeat an earlier row exactly (first at lines "
                         f"{', '.join(map(str, report['identical_rows']['first_lines']))}), each a PEV of its own")
        if report["stations_without_sessions"]["count"]:
            parts.append(f"{report['stations_without_sessions']['count']} station indices below the largest have no "
                         f"session (e.g. {', '.join(map(str, report['stations_without_sessions']['stations'][:5]))}); "
                         "n_stations is the largest index + 1 unless env.n_stations is set")
        if report["capacity_max_kwh"] > PLAUSIBLE_KWH:
            parts.append(f"capacities up to {report['capacity_max_kwh']:g} kWh (the file's energies are read as kWh)")
        return f"Scenario CSV {report['file']!r}: " + "; ".join(parts) if parts else ""

    def files(self, args: Path) -> tuple[Path, ...]:
        return (args.expanduser().resolve(),)
