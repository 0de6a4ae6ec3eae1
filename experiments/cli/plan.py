"""What a command would run, in one line (`pev-experiments ... --dry-run`): the configuration after every
check of `experiments.cli.preflight`, nothing run and nothing written."""

from __future__ import annotations

import math
from typing import Any


def _names(values: Any) -> str:
    return ",".join(str(v) for v in values)


def _seeds(seeds: tuple[int, ...]) -> str:
    """'0-4,10' style: consecutive seeds as ranges."""
    parts: list[str] = []
    start = prev = seeds[0]
    for seed in (*seeds[1:], None):
        if seed is not None and seed == prev + 1:
            prev = seed
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if seed is not None:
            start = prev = seed
    return ",".join(parts)


def describe(cfg: Any) -> str:
    """One line naming the runs of the validated configuration `cfg` of any command."""
    section = cfg.section
    seeds = f"{len(cfg.seeds)} seeds ({_seeds(tuple(cfg.seeds))})"
    if section in ("compare", "evaluate"):
        runs = len(cfg.scenarios) * len(cfg.seeds) * len(cfg.controllers)
        what = (f"{len(cfg.controllers)} controllers ({_names(cfg.controllers)}) x {len(cfg.scenarios)} scenarios "
                f"({_names(cfg.scenarios)}) x {seeds} = {runs} runs (a seed that draws an episode already drawn "
                f"runs once) on backend {cfg.backend}")
    elif section == "train":
        what = (f"{cfg.algo} for {cfg.timesteps} station-samples on scenarios ({_names(cfg.scenarios)}) x {seeds}, "
                f"learner seed {cfg.seed}, price_alpha {cfg.price_alpha}")
    elif section == "tune":
        settings = math.prod(len(values) for values in cfg.grid.values())
        grid = "; ".join(f"{name}={_names(values)}" for name, values in cfg.grid.items())
        what = (f"{settings} settings ({grid}) x {len(cfg.scenarios)} scenarios ({_names(cfg.scenarios)}) x "
                f"{seeds} on backend {cfg.backend}")
    else:
        capped = f", centralised up to N = {cfg.centralised_max}" if "mpc-centralised" in cfg.controllers else ""
        what = (f"sizes ({_names(cfg.sizes)}) x controllers ({_names(cfg.controllers)}{capped}) x {seeds}, "
                f"{cfg.steps} timed steps each, on backend {cfg.backend}")
    return f"pev-experiments {section}: dry run, checks passed; would run {what} into {cfg.out}"
