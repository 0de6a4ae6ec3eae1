"""Backends benchmark: grids on the local and ray backends; coordination rounds in Ray actors.

grid: wall time of the comparison grid (`pev-experiments compare`, default grid, or a small one with
--quick) with the local backend (1 and 2 workers) and the ray backend (a local Ray instance with 2 CPUs,
started before timing; its start-up is reported separately). One run each (minutes per run).

rounds:

Per-round latency (one price broadcast + all station QPs + gathering plans and the summed price
sensitivity) of the decentralised MPC's coordination, for N stations (H = 24, binding area limit,
prices at the converged solution so every round does full work):
  in-process   the default station pool (make_station_pool: the same solver the actors run) in the driver,
  ray xK       RayStations.respond with K actors (shards of N/K stations), on a local Ray instance,
  overhead     the ray round trip with 2 stations (almost no solver work),
plus a whole control step (solve_decentralised) both ways, and the crossover N where the
distributed round becomes faster than the in-process one on this machine.
Prints medians of repeated runs and ratios to the in-process baseline measured in the same process.

    python benchmarks/backends.py grid                   # the default comparison grid (~15 min)
    python benchmarks/backends.py grid --quick           # seed scenario, 2 seeds, 3 controllers
    python benchmarks/backends.py rounds                 # N = 1,000 and 10,000, crossover scan
    python benchmarks/backends.py rounds --quick         # N = 1,000 only, short scan
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from pev_mpc import ChargingProblem, MPCSettings, make_station_pool, solve_decentralised
from pev_mpc.distributed import StationActors

H = 24
SETTINGS = MPCSettings(horizon=H)


def fleet_problem(n: int, seed: int = 0) -> ChargingProblem:
    """n plugged-in PEVs with random SOC and departures; the area limit binds."""
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(0, 16, n)
    return ChargingProblem(x0=x0, r=np.full(n, 24.0), s=np.full(n, 24.0), d=rng.integers(4, H + 1, n),
                           p_min=0.0, p_max=22.0, eta=0.9, dt_h=5 / 60,
                           P_ref=0.3 * 22.0 * n * (1 + 0.2 * np.sin(np.arange(H) / 6)), horizon=H)


def median_s(fn: Callable[[], object], repeats: int, warm_up: bool = True) -> float:
    """Median seconds of `repeats` timed calls of fn (after one untimed call when warm_up)."""
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def round_times(group: StationActors, n: int, repeats: int) -> dict[str, float]:
    """Median seconds per round: in process and with the group's actors (prices at the solution)."""
    pr = fleet_problem(n)
    prices = solve_decentralised(pr, SETTINGS).prices
    local, remote = make_station_pool(pr, SETTINGS), group.pool(pr, SETTINGS)
    return {"local": median_s(lambda: local.respond(prices, True), repeats),
            "ray": median_s(lambda: remote.respond(prices, True), repeats)}


def step_times(group: StationActors, n: int, repeats: int) -> dict[str, float]:
    """Median seconds per control step (solve_decentralised from cold prices) and its rounds."""
    pr = fleet_problem(n)
    sol = solve_decentralised(pr, SETTINGS)
    return {"local": median_s(lambda: solve_decentralised(pr, SETTINGS), repeats),
            "ray": median_s(lambda: solve_decentralised(pr, SETTINGS, pool=group.pool(pr, SETTINGS)), repeats),
            "iterations": sol.iterations}


def rounds(sizes: list[int], scan: list[int], repeats: int) -> None:
    ms = 1e3
    with StationActors(n_actors=2, num_cpus=2, object_store_memory=200 * 2**20) as two:
        one = StationActors(n_actors=1, cpus_per_actor=0)
        overhead = round_times(two, 2, 5 * repeats)["ray"]
        print(f"ray round-trip overhead (2 actors, 2 stations): {overhead * ms:.2f} ms per round")
        print(f"\nper-round latency (H = {H}; one broadcast + all station QPs + plans and sensitivity back)")
        print(f"{'N':>7} {'in-process ms':>14} {'ray x1 ms':>10} {'ray x2 ms':>10} {'x1/local':>9} {'x2/local':>9}")
        for n in sizes:
            t2, t1 = round_times(two, n, repeats), round_times(one, n, repeats)
            print(f"{n:>7} {t2['local'] * ms:>14.2f} {t1['ray'] * ms:>10.2f} {t2['ray'] * ms:>10.2f} "
                  f"{t1['ray'] / t1['local']:>9.2f} {t2['ray'] / t2['local']:>9.2f}")
        print("\nwhole control step (solve_decentralised, cold prices, newton)")
        print(f"{'N':>7} {'rounds':>7} {'in-process ms':>14} {'ray x2 ms':>10} {'ray/local':>10}")
        for n in sizes:
            s = step_times(two, n, max(3, repeats // 4))
            print(f"{n:>7} {s['iterations']:>7} {s['local'] * ms:>14.1f} {s['ray'] * ms:>10.1f} "
                  f"{s['ray'] / s['local']:>10.2f}")
        print("\ncrossover scan (per-round latency, 2 actors)")
        crossover = None
        for n in scan:
            t = round_times(two, n, repeats)
            print(f"{n:>7} in-process {t['local'] * ms:8.2f} ms   ray x2 {t['ray'] * ms:8.2f} ms   "
                  f"ratio {t['ray'] / t['local']:.2f}")
            if crossover is None and t["ray"] < t["local"]:
                crossover = n
        print(f"\ndistributed beats in-process from N = {crossover} stations on this machine" if crossover
              else "\ndistributed never beat in-process in the scanned range on this machine")
        one.shutdown()


def grids(quick: bool, repeats: int) -> None:
    import tempfile

    import ray

    from experiments.cli.main import main as cli

    small = ["--scenarios", "seed", "--seeds", "0-1", "--controllers", "edf,llf,mpc-decentralised"] if quick else []
    args = ["compare", *small, "-q", "--no-plots", "--no-traces"]

    def run(*backend: str) -> None:
        with tempfile.TemporaryDirectory() as out:
            assert cli([*args, *backend, "--out", out]) == 0

    def wall(*backend: str) -> float:  # whole grids: no untimed warm-up run
        return median_s(lambda: run(*backend), repeats, warm_up=False)

    times = {"local, 1 worker": wall("--backend", "local", "--workers", "1"),
             "local, 2 workers": wall("--backend", "local", "--workers", "2")}
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=200 * 2**20)
    ray_start = time.perf_counter() - start
    times["ray (local instance, 2 CPUs)"] = wall("--backend", "ray")
    ray.shutdown()
    base = times["local, 1 worker"]
    print(f"\ncomparison grid {'(quick) ' if quick else ''}wall time, median of {repeats} run(s); "
          f"ray start-up {ray_start:.1f} s not included")
    for name, t in times.items():
        print(f"  {name:<30} {t:8.1f} s   x{t / base:.2f} of local, 1 worker")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("part", choices=["grid", "rounds"], help="what to measure")
    ap.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per figure")
    args = ap.parse_args()
    if args.part == "grid":
        grids(args.quick, args.repeats or (3 if args.quick else 1))
    if args.part == "rounds":
        sizes = [1000] if args.quick else [1000, 10_000]
        scan = [250, 1000, 4000] if args.quick else [250, 500, 1000, 2000, 4000, 8000, 16_000]
        rounds(sizes, scan, args.repeats or (5 if args.quick else 15))


if __name__ == "__main__":
    main()
