"""`synthetic-N`: N stations (N >= 1, no leading zeros) with random sessions (`generators.synthetic`), binding P_ref."""

from __future__ import annotations

import re

import numpy as np

from pev_env.config import EnvConfig
from pev_env.generators import synthetic
from pev_env.plant import binding_area_limit
from pev_env.scenario import Scenario
from pev_env.scenarios.base import ScenarioFamily

_PATTERN = re.compile(r"synthetic-([1-9][0-9]*)")


class SyntheticFamily(ScenarioFamily):
    """Random sessions for scaling studies, on the base plant's p_max, episode and battery size."""

    generation_reads = ("area_limit_fraction",)

    patterns = ("synthetic-N (N >= 1)",)

    def parse(self, spec: str) -> int | None:
        match = _PATTERN.fullmatch(spec)
        return int(match.group(1)) if match else None

    def build(self, args: int, seed: int, base: EnvConfig) -> tuple[EnvConfig, Scenario]:
        scenario = synthetic(args, base.n_steps, seed, p_max=float(np.max(base.p_max)), eta=base.eta,
                             dt_h=base.dt_h, capacity=base.soc_max)
        return binding_area_limit(base, scenario), scenario
