"""Shared fixtures: a tiny hand-checked plant (2 stations, 6 steps, 4 PEVs); the Hypothesis profile."""
from __future__ import annotations

import pytest
from hypothesis import settings

# Every run (CI, `make test`, a developer's) tests the same examples: the suite cannot pass or fail by
# chance, and a failure reproduces anywhere. Explore more with `pytest --hypothesis-profile=explore`.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", max_examples=500)
settings.load_profile("deterministic")

from pev_env.config import EnvConfig
from pev_env.scenario import Scenario


@pytest.fixture
def tiny_config() -> EnvConfig:
    """2 stations, 6 steps of 5 min, p in [0, 10] kW, P_ref 12 kW: 10 kW adds 0.75 kWh per step."""
    return EnvConfig(n_stations=2, n_pevs=4, p_max=10.0, P_ref=12.0, total_time=30.0)


@pytest.fixture
def tiny_scenario() -> Scenario:
    """PEV 0 at station 0 (steps 0-3), PEV 1 at station 1 (1-5), PEV 2 waits (2-3) then station 0 (4),
    PEV 3 waits (2) and leaves unplugged."""
    return Scenario(arrival=[0, 1, 2, 2], departure=[4, 6, 5, 3], soc_init=[20.0, 0.0, 5.0, 0.0],
                    soc_target=[24.0, 10.0, 24.0, 5.0], capacity=[24.0] * 4, station=[-1] * 4,
                    n_stations=2, n_steps=6, name="tiny")
