"""Median time of one plant step vs the number of stations: array core, PettingZoo and Gymnasium APIs.

Scenarios are ``synthetic-N`` (about 2 N PEVs, 48 steps of 5 min); requests are random in
[0, p_max].  Each figure is the median (and p95) over all steps of ``--episodes`` episodes (after one warm-up episode);
ratios are to the smallest size, measured in the same process.  Goal: 1,000-station core
step under 1 ms.

    .venv/bin/python benchmarks/env_step.py [--sizes 6 100 1000 10000] [--episodes 5]
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from pev_env import ChargingCore, PEVChargeEnv, PEVChargeGymEnv, make_scenario


def step_times(reset: Callable[[], None], step: Callable[[int], bool], episodes: int) -> np.ndarray:
    """Seconds per step over `episodes` episodes; `step(t)` returns True when the episode is over."""
    times = []
    for episode in range(episodes + 1):  # episode 0 warms up (caches, first touch of the history arrays)
        reset()
        t, done = 0, False
        while not done:
            start = time.perf_counter()
            done = step(t)
            if episode:
                times.append(time.perf_counter() - start)
            t += 1
    return np.asarray(times)


def measure(n: int, episodes: int, seed: int = 0) -> dict[str, float]:
    name = f"synthetic-{n}"
    config, scenario = make_scenario(name, seed)
    rng = np.random.default_rng(seed)
    requests = rng.uniform(0.0, config.station_p_max, (config.n_steps, n))
    start = time.perf_counter()
    core = ChargingCore(config, scenario)
    build_ms = 1e3 * (time.perf_counter() - start)
    core_t = step_times(core.reset, lambda t: core.step(requests[t]).terminated, episodes)

    env = PEVChargeEnv(config=config, scenario=scenario)
    agents = env.possible_agents
    actions = [{a: row[i:i + 1].astype(np.float32) for i, a in enumerate(agents)} for row in requests]

    def pz_step(t: int) -> bool:
        env.step(actions[t])
        return not env.agents

    pz_t = step_times(env.reset, pz_step, episodes)

    gym_env = PEVChargeGymEnv(config=config, scenario=scenario)
    gym_actions = requests.astype(np.float32)
    gym_t = step_times(gym_env.reset, lambda t: gym_env.step(gym_actions[t])[3], episodes)
    return {"stations": n, "pevs": scenario.n_pevs, "build_ms": build_ms,
            "core_ms": 1e3 * np.median(core_t), "core_p95_ms": 1e3 * np.percentile(core_t, 95),
            "pettingzoo_ms": 1e3 * np.median(pz_t), "gym_ms": 1e3 * np.median(gym_t)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[6, 100, 1000, 10000])
    parser.add_argument("--episodes", type=int, default=5)
    args = parser.parse_args(argv)
    rows = [measure(n, args.episodes) for n in args.sizes]
    base = rows[0]
    header = (f"{'stations':>8} {'PEVs':>6} {'build ms':>9} {'core ms':>9} {'core p95':>9} {'x':>6} "
              f"{'PettingZoo ms':>13} {'x':>6} {'Gym ms':>8} {'x':>6}")
    print(f"median step time over {args.episodes} episodes (ratios to {base['stations']} stations)")
    print(header)
    for r in rows:
        print(f"{r['stations']:>8} {r['pevs']:>6} {r['build_ms']:>9.2f} {r['core_ms']:>9.4f} {r['core_p95_ms']:>9.4f} "
              f"{r['core_ms'] / base['core_ms']:>6.1f} {r['pettingzoo_ms']:>13.4f} "
              f"{r['pettingzoo_ms'] / base['pettingzoo_ms']:>6.1f} {r['gym_ms']:>8.4f} "
              f"{r['gym_ms'] / base['gym_ms']:>6.1f}")
    for r in rows:
        if r["stations"] == 1000:
            verdict = "met" if r["core_ms"] < 1.0 else "NOT met"
            print(f"goal (1,000-station core step < 1 ms): {verdict} ({r['core_ms']:.3f} ms)")


if __name__ == "__main__":
    main()
