"""The model market of a tree network cleared by its own interior point and by Clarabel, alternated.

    python benchmarks/tree_market.py [--stations 10000] [--network tree:20,25] [--repeats 3]

Drives the decentralised MPC on `synthetic-N` over the network to a quarter of the episode (as the `scale`
command does), keeps the model market of its first control step, and clears that market `repeats` times
with each solver in turn (`pev_mpc.tree_market` and Clarabel, `network_market`), printing the wall times,
the interior point's iterations and how far the two clearings are apart (objective, multipliers).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import pev_mpc.network_coordinator as coordinator
import pev_mpc.network_market as market
import pev_mpc.tree_market as tree_market
from pev_env.config import EnvConfig
from pev_env.core import ChargingCore
from pev_env.scenarios import make_scenario
from pev_mpc.policies import make_policy


def first_market(stations: int, network: str) -> tuple:
    """(problem, costs) of the first model market the decentralised MPC clears on synthetic-<stations>."""
    config, scenario = make_scenario(f"synthetic-{stations}", 0, EnvConfig(network=network))
    policy = make_policy("mpc-decentralised")
    policy.reset(config, scenario, 0)
    core = ChargingCore(config, scenario)
    obs = core.reset()
    for _ in range(config.n_steps // 4):
        obs = core.step(np.zeros(config.n_stations)).observations
    seen = []
    clear = coordinator.clear_separable_market
    coordinator.clear_separable_market = lambda problem, costs: seen.append((problem, costs)) or clear(problem, costs)
    try:
        while not seen:
            obs = core.step(policy.act_array(obs)).observations
    finally:
        coordinator.clear_separable_market = clear
    return seen[0]


def _positive(text: str) -> int:
    """An integer >= 1 (argparse type)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be an integer >= 1")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=_positive, default=10_000)
    parser.add_argument("--network", default="tree:20,25")
    parser.add_argument("--repeats", type=_positive, default=3)
    args = parser.parse_args()
    try:
        problem, costs = first_market(args.stations, args.network)
    except ValueError as exc:                                     # the scenario or network named
        parser.error(str(exc))
    if problem.network.tree is None:
        parser.error(f"--network {args.network}: not a tree of nested linear limits (pev_env.network.RowTree)")
    print(f"{args.network}, N = {args.stations}: {int(problem.mask.sum())} plugged cells, horizon {problem.horizon}")
    iterations: list[int] = []
    solve = tree_market.interior_point

    def counted(tree: tree_market.TreeMarket):
        solved = solve(tree)
        iterations.append(solved[2] if solved is not None else -1)
        return solved

    tree_market.interior_point = counted          # (the markets before this one compiled the kernels)
    times: dict[str, list[float]] = {"tree interior point": [], "Clarabel": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        cleared = tree_market.clear_tree_market(problem, costs)
        times["tree interior point"].append(time.perf_counter() - start)
        start = time.perf_counter()
        with_clarabel = market.clear_with_clarabel(problem, costs)
        times["Clarabel"].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name:>20}: " + " ".join(f"{v:.3f}" for v in values) + " s")
    if cleared is None:
        print("the interior point stopped short (Clarabel clears such markets)")
        return
    value, reference = (float(costs.value(problem, plan).sum()) for plan in (cleared[0], with_clarabel[0]))
    print(f"iterations {iterations}; objective relative difference {abs(value - reference) / abs(reference):.1e}; "
          f"largest multiplier difference {np.abs(cleared[1] - with_clarabel[1]).max():.1e} "
          f"(largest multiplier {np.abs(with_clarabel[1]).max():.3g})")


if __name__ == "__main__":
    main()
