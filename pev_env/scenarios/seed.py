"""`seed` (the seed's defaults and generator) and `seed-20` / `seed-30` (5 stations, 20 / 30 PEVs, 960 min)."""

from __future__ import annotations

from pev_env.config import EnvConfig
from pev_env.generators import seed_schedule
from pev_env.plant import unbound_area_limit
from pev_env.scenario import Scenario
from pev_env.scenarios.base import ScenarioFamily

_VARIANTS = {"seed-20": 20, "seed-30": 30}


class SeedFamily(ScenarioFamily):
    """The seed's proportional schedule on the base plant (seed-20/30 fix stations, PEVs and episode)."""

    names = ("seed", *_VARIANTS)
    generation_reads = ("charge_time_desired", "initial_charge_max", "charge_duration_tolerance", "random_start_coeff")

    def parse(self, spec: str) -> str | None:
        return spec if spec in self.names else None

    def build(self, args: str, seed: int, base: EnvConfig) -> tuple[EnvConfig, Scenario]:
        config = base
        if args in _VARIANTS:
            config = base.derive({"n_stations": 5, "n_pevs": _VARIANTS[args], "total_time": 960.0})
        return unbound_area_limit(config), seed_schedule(config, seed, name=args)
