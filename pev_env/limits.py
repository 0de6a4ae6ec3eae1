"""Size bounds, checked before anything of that size is allocated (`Scenario`, `EnvConfig`, the generators and
the readers of scenario and ACN files refuse larger values in one line)."""

MAX_STEPS = 100_000
"""Longest episode in steps (347 days at 5 min): larger ones are refused before anything is allocated."""
MAX_STATIONS = 100_000
"""Most stations (10x the largest scaling study)."""
MAX_PEVS = 1_000_000
"""Most PEVs a generator draws (EnvConfig.n_pevs)."""
MAX_CAPACITY_KWH = 1e6
"""kWh: largest battery capacity (beyond it the observations overflow)."""
