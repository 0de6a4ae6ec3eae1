"""Speed of one MPC control step: decentralised (price coordination) vs centralised (cvxpy).

For each N (H = 48, binding area limit) a receding-horizon episode is simulated: solve, apply the
first move, advance the SOCs, let departed PEVs be replaced by new arrivals, warm-start the prices
(shifted by one). Prints medians of the step times, mean coordination iterations, the objective gap
to the centralised solution, and the centralised solve times (recompiled per call, and with cached
Parameters), with ratios.

    python benchmarks/mpc_step.py            # N = 10, 100, 1000, 10000
    python benchmarks/mpc_step.py --quick    # N = 10, 100
    python benchmarks/mpc_step.py --sizes 1000 --baseline   # also the previous method, same process

--baseline reruns each episode with the previous station solver (station_solver='batch', the
interior point, and cold_start_sample=0) and prints its medians and the ratio baseline/new.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from pev_mpc import ChargingProblem, MPCSettings, solve_centralised, solve_decentralised

BASELINE = dict(station_solver="batch", cold_start_sample=0)

H = 48
P_MAX = 22.0
ETA, DT_H = 0.9, 5 / 60
CVXPY_MAX_N = 100  # cvxpy compiles N = 1,000 (H = 48) in ~40 s and ~18 GB, N = 10,000 not at all: skipped


class Fleet:
    """Random PEVs on N stations; departures are replaced by arrivals (to keep the limit binding)."""

    def __init__(self, n: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = n
        self.soc = self.rng.uniform(0, 16, n)
        self.left = self.rng.integers(6, 3 * H, n)  # steps until departure

    def problem(self) -> ChargingProblem:
        P_ref = 0.3 * P_MAX * self.n * (1.0 + 0.2 * np.sin(np.arange(H) / 8.0))
        return ChargingProblem(x0=self.soc, r=np.full(self.n, 24.0), s=np.full(self.n, 24.0),
                               d=np.minimum(self.left, H), p_min=0.0, p_max=P_MAX, eta=ETA, dt_h=DT_H,
                               P_ref=P_ref, horizon=H)

    def advance(self, move: np.ndarray) -> None:
        self.soc = np.minimum(self.soc + ETA * DT_H * move, 24.0)
        self.left = self.left - 1
        new = self.left <= 0
        self.soc[new] = self.rng.uniform(0, 16, int(new.sum()))
        self.left[new] = self.rng.integers(6, 3 * H, int(new.sum()))


def gap(problem: ChargingProblem, dec, cen) -> float:
    return abs(dec.objective - cen.objective) / max(1.0, abs(cen.objective))


def run(n: int, steps: int, settings: MPCSettings, with_cvxpy: bool) -> dict:
    fleet = Fleet(n, seed=n)
    times, iters, gaps, moves = [], [], [], []
    cen_fresh, cen_cached = [], []
    prices = None
    for t in range(steps):
        pr = fleet.problem()
        start = time.perf_counter()
        sol = solve_decentralised(pr, settings, warm_prices=prices)
        times.append(time.perf_counter() - start)
        iters.append(sol.iterations)
        assert np.all(sol.p[:, 0].sum() <= pr.P_ref[0] + 1e-9)
        if with_cvxpy and t in (0, steps // 2, steps - 1):
            if t == 0:
                start = time.perf_counter()
                solve_centralised(pr, settings, reuse=False)
                cen_fresh.append(time.perf_counter() - start)
            start = time.perf_counter()
            cen = solve_centralised(pr, settings, reuse=True)
            cen_cached.append(time.perf_counter() - start)
            gaps.append(gap(pr, sol, cen))
            moves.append(float(np.max(np.abs(sol.p[:, 0] - cen.p[:, 0]))))
        prices = sol.prices
        fleet.advance(sol.p[:, 0])
    return {"n": n, "dec_s": statistics.median(times), "dec_first_s": times[0], "iters": float(np.mean(iters)),
            "iters_first": iters[0], "gap": max(gaps) if gaps else float("nan"),
            "move_kw": max(moves) if moves else float("nan"),
            "cen_fresh_s": statistics.median(cen_fresh) if cen_fresh else float("nan"),
            "cen_cached_s": statistics.median(cen_cached[1:] or cen_cached) if cen_cached else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only N = 10 and 100, fewer steps")
    ap.add_argument("--sizes", type=int, nargs="*", help="station counts (default 10 100 1000 10000)")
    ap.add_argument("--steps", type=int, default=None, help="receding-horizon steps per size")
    ap.add_argument("--baseline", action="store_true", help="also run the previous method (IPM, cold from zero)")
    args = ap.parse_args()
    sizes = args.sizes or ([10, 100] if args.quick else [10, 100, 1000, 10000])
    settings = MPCSettings(horizon=H)
    print(f"H = {H}, binding limit (30% of sum p_max), coordination = {settings.coordination}, "
          f"station solver = {settings.station_solver}")
    header = (f"{'N':>6} {'dec step med s':>15} {'first (cold) s':>15} {'iters mean':>10} {'iters cold':>10} "
              f"{'gap':>9} {'|dmove| kW':>10} {'cvxpy fresh s':>14} {'cvxpy param s':>14} {'fresh/dec':>9} "
              f"{'param/dec':>9}")
    print(header)
    for n in sizes:
        steps = args.steps or (6 if args.quick else (8 if n >= 10000 else 20))
        res = run(n, steps, settings, with_cvxpy=n <= CVXPY_MAX_N)
        print(f"{n:>6} {res['dec_s']:>15.4f} {res['dec_first_s']:>15.4f} {res['iters']:>10.1f} "
              f"{res['iters_first']:>10d} {res['gap']:>9.1e} {res['move_kw']:>10.1e} {res['cen_fresh_s']:>14.3f} "
              f"{res['cen_cached_s']:>14.3f} {res['cen_fresh_s'] / res['dec_s']:>9.2f} "
              f"{res['cen_cached_s'] / res['dec_s']:>9.2f}", flush=True)
        if args.baseline:
            old = run(n, steps, MPCSettings(horizon=H, **BASELINE), with_cvxpy=False)
            print(f"{'':>6} baseline {BASELINE}: step med {old['dec_s']:.4f} s (x{old['dec_s'] / res['dec_s']:.1f}), "
                  f"cold {old['dec_first_s']:.4f} s (x{old['dec_first_s'] / res['dec_first_s']:.1f}), "
                  f"iters mean {old['iters']:.1f}, iters cold {old['iters_first']}", flush=True)
    if any(n > CVXPY_MAX_N for n in sizes):
        print(f"cvxpy runs skipped for N > {CVXPY_MAX_N} (canonicalisation too slow): nan above.")


if __name__ == "__main__":
    main()
