"""A lower bound on the worst gap of any causal controller: one real day and days that agree with it until a step.

    python benchmarks/causal_bound.py --seed 33 [--transformer-kw 40] [--hours 6-17] [--futures 15] [--joint 30] [--mpc]

The offline optimum knows the whole day; a causal controller decides at each step on the sessions that have
arrived. Take the day D (`acn-caltech-eval` seed `--seed` on the Caltech network) and days D_k that agree with it
until a splice hour h: D's sessions that arrive before h, then the sessions of another real day of the site (one of
`--futures` days drawn from `acn-caltech-train`, which holds no day of `acn-caltech-eval`) that arrive from h on, at
the stations D's PEVs have left by then (those at a station still busy are left out). Until tau_k, the first step at
which an arrival of D or of D_k's other day is seen, a controller cannot tell D_k from D, so it must apply the same
powers on both. The smallest worst relative gap that plans with these equalities can reach,

    z* = min over plans of max over s in {D, D_1, ..., D_K} of (U_s - U*_s) / U*_s,   plans equal on D and D_k before tau_k,

(U_s a plan's unmet energy on day s, U*_s the offline optimum of day s alone) is a lower bound on the worst
relative gap over these days of ANY causal controller, the MPCs included: if z* > 3 %, none leaves at most 3 %
more than the optimum on every one of them. The bound grows with the days one adds. Every day is solved with
the offline optimum's model of an episode (`pev_mpc.policies.offline.cone_episode`, exact cones, Clarabel),
its optimum U*_s by the offline optimum's first stage (`least_unmet`).
Each pair (D, D_k) is solved first; then the `--joint` spliced days of the largest pair bounds together, halved
until Clarabel solves them accurately (a pair or a joint set it ends 'inaccurate' gives no bound and is left out,
named).

With `--mpc` the decentralised MPC also runs every day in closed loop and its gaps are printed beside them.
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
from tqdm import tqdm

from pev_env.config import EnvConfig
from pev_env.core import ChargingCore
from pev_env.network import Network, site_network
from pev_env.plant import plant_config
from pev_env.scenario import Scenario
from pev_env.scenarios import make_scenario
from pev_env.schedule import plug_schedule
from pev_mpc.policies import make_policy
from pev_mpc.policies.offline import ConeEpisode, cone_episode, least_unmet

TOLERANCES = dict(tol_gap_abs=1e-5, tol_gap_rel=1e-5, tol_feas=1e-6)
"""Clarabel's tolerances for the bound: z* to about 1e-5 (0.001 %); at the offline optimum's 1e-7 it ends
'inaccurate' on about one pair in 16 of a Caltech day and on most joint sets."""
_FIELDS = ("arrival", "departure", "soc_init", "soc_target", "capacity", "station")


def splice(day: Scenario, other: Scenario, step: int) -> tuple[Scenario, int]:
    """`day`'s sessions arriving before `step`, then `other`'s arriving from `step` on at stations that `day`'s
    earlier PEVs have left by their arrival; and tau, the first step at which the two days' arrivals differ."""
    before, after = day.arrival < step, other.arrival >= step
    busy_until = np.zeros(day.n_stations, dtype=np.int64)
    np.maximum.at(busy_until, day.station[before], day.departure[before])
    after &= other.arrival >= busy_until[other.station]
    fields = {f: np.concatenate([getattr(day, f)[before], getattr(other, f)[after]]) for f in _FIELDS}
    n_steps = int(fields["departure"].max())
    spliced = Scenario(**fields, n_stations=day.n_stations, n_steps=n_steps, name=f"{day.name}|{other.name}@{step}",
                       p_min=day.p_min, p_max=day.p_max, sampling_time=day.sampling_time, station_ids=day.station_ids)
    tau = int(min(day.arrival[~before].min(initial=n_steps), other.arrival[after].min(initial=n_steps)))
    return spliced, tau


@dataclass
class Day:
    """One day's plug schedule, offline model and optimum U*, kWh."""

    scenario: Scenario
    station_pev: np.ndarray
    model: ConeEpisode
    optimum: float


def day_model(config: EnvConfig, network: Network, scenario: Scenario, first: Day | None = None,
              tau: int = 0) -> Day:
    """`scenario`'s offline model and optimum on `network` (the offline optimum's first stage); with `first` (D),
    its powers before step `tau` are D's (the two days must plug the same PEVs until then)."""
    station_pev = plug_schedule(scenario).station_pev
    own = cone_episode(config, scenario, station_pev, network)
    optimum, _ = least_unmet(own)
    if first is None:
        return Day(scenario, station_pev, own, optimum)
    if not np.array_equal(station_pev[:tau], first.station_pev[:tau]):
        raise RuntimeError(f"{scenario.name} is plugged differently from D before tau = {tau}")
    shared = first.model.x[:int(np.count_nonzero(first.model.cells.steps < tau))]
    return Day(scenario, station_pev, cone_episode(config, scenario, station_pev, network, own.cells, shared), optimum)


def causal_bound(days: list[Day]) -> tuple[float, list[float], bool] | None:
    """z* over `days` (days[0] is D; the others share its powers before their tau: `day_model`), each day's
    unmet energy in the bound's plan (kWh), and whether Clarabel reported the solve accurate; None if it failed."""
    z = cp.Variable()
    constraints = [c for day in days for c in day.model.constraints]
    constraints += [cp.sum(day.model.u) <= day.optimum * (1 + z) for day in days]
    problem = cp.Problem(cp.Minimize(z), constraints)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Solution may be inaccurate", category=UserWarning)
            problem.solve(solver=cp.CLARABEL, **TOLERANCES)
    except cp.error.SolverError:
        return None
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        return None
    return float(z.value), [float(np.sum(day.model.u.value)) for day in days], problem.status == cp.OPTIMAL


def site_day(base: EnvConfig, scenario: Scenario, first: Day | None = None, tau: int = 0) -> Day:
    """day_model on the plant of `scenario` over `base` and its site network."""
    config = plant_config(scenario, base)
    return day_model(config, site_network(config, scenario.station_ids), scenario, first, tau)


def closed_loop_unmet(config: EnvConfig, scenario: Scenario, controller: str) -> float:
    """Unmet energy (kWh) of `controller` in closed loop on `scenario` with the plant `config`."""
    policy, core = make_policy(controller), ChargingCore(config, scenario)
    policy.reset(config, scenario, 0)
    obs = core.reset()
    while not core.done:
        obs = core.step(policy.act_array(obs)).observations
    return float(core.episode_metrics()["unmet_energy_kwh"])


def hour_range(text: str) -> tuple[int, int]:
    """--hours 'H1-H2' -> (H1, H2), 0 <= H1 <= H2 <= 23 (argparse reports a ValueError as exit 2, one line)."""
    first, dash, last = text.partition("-")
    if not (dash and first.isdigit() and last.isdigit() and int(first) <= int(last) <= 23):
        raise ValueError(text)
    return int(first), int(last)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=33, help="acn-caltech-eval seed of the day D")
    parser.add_argument("--transformer-kw", type=float, default=40.0)
    parser.add_argument("--hours", type=hour_range, default="6-17", help="splice hours, an inclusive range H1-H2 (local time)")
    parser.add_argument("--futures", type=int, default=15, help="other days drawn from acn-caltech-train")
    parser.add_argument("--draw", type=int, default=0, help="seed of the draw of the other days")
    parser.add_argument("--joint", type=int, default=30, help="spliced days with the largest pair bounds solved "
                        "jointly (halved until Clarabel solves them accurately)")
    parser.add_argument("--mpc", action="store_true", help="also run mpc-decentralised on D and the joint days")
    args = parser.parse_args(argv)
    if not 1 <= args.futures <= 87 or args.joint < 1:
        parser.error(f"--futures {args.futures} / --joint {args.joint}: allowed 1-87 other days (acn-caltech-train "
                     "has 87) and a joint set of at least 1")
    base = EnvConfig(network="caltech", transformer_kw=args.transformer_kw)
    config, scenario = make_scenario("acn-caltech-eval", args.seed, base)
    per_hour = round(60 / config.sampling_time)
    first, last = args.hours
    picks = np.random.default_rng(args.draw).choice(87, size=args.futures, replace=False)
    futures = [make_scenario("acn-caltech-train", int(k), base)[1] for k in picks]
    start = time.perf_counter()
    d = site_day(base, scenario)
    rows, failed = [], []                          # (pair bound, day, tau, other day's date, splice hour)
    pairs = [(hour, other) for hour in range(first, last + 1) for other in futures]
    for hour, other in tqdm(pairs, desc="pairs", leave=False):
        spliced, tau = splice(scenario, other, hour * per_hour)
        day = site_day(base, spliced, d, tau)
        pair = causal_bound([d, day])
        if pair is None or not pair[2]:            # failed, or Clarabel ended 'inaccurate': no bound to rely on
            failed.append(spliced.name)
            continue
        rows.append((pair[0], day, tau, other.name.removeprefix("acn-caltech-"), hour))
    rows.sort(key=lambda row: -row[0])
    size = args.joint                              # the largest joint set Clarabel solves accurately
    while True:
        joint = rows[:size]
        result = causal_bound([d] + [row[1] for row in joint])
        if result is not None and result[2] or size == 1:
            break
        size //= 2
    if result is None or not result[2]:
        raise SystemExit("Clarabel did not solve even the largest pair accurately: no bound")
    z, unmet, _ = result
    print(f"D = {scenario.name} (acn-caltech-eval seed {args.seed}) on caltech at {args.transformer_kw:g} kW: "
          f"{len(rows)} spliced days (hours {first}-{last} x {args.futures} days of acn-caltech-train, draw "
          f"{args.draw}), {time.perf_counter() - start:.0f} s")
    clock = lambda step: f"{step // per_hour:02d}:{step % per_hour * config.sampling_time:02.0f}"
    if failed:
        print(f"Clarabel failed or was inaccurate on {len(failed)} pairs, left out: {', '.join(failed)}")
    print(f"largest bound of a pair (D, D_k): {rows[0][0]:+.2%}; of the {len(joint)} largest together: {z:+.2%}"
          + (f" (Clarabel was inaccurate or failed on the {args.joint} largest)" if len(joint) < args.joint else ""))
    header = "| day | other day from | its arrivals seen from | optimum kWh | pair bound | joint plan kWh | joint gap |"
    print(header + (" mpc-decentralised kWh | its gap |" if args.mpc else ""))
    print("|---" * (header.count("|") - 1 + (2 if args.mpc else 0)) + "|")
    labels = [("D", "-", "-", "-")] + [("D_k", f"{date} {hour:02d}:00", clock(tau), f"{bound:+.2%}")
                                       for bound, _, tau, date, hour in joint]
    mpc_gaps = []
    for day, (kind, other, seen, pair), plan in zip([d] + [row[1] for row in joint], labels, unmet):
        line = (f"| {kind} | {other} | {seen} | {day.optimum:.2f} | {pair} | {plan:.2f} | "
                f"{(plan - day.optimum) / day.optimum:+.2%} |")
        if args.mpc:
            mpc = closed_loop_unmet(plant_config(day.scenario, base), day.scenario, "mpc-decentralised")
            mpc_gaps.append((mpc - day.optimum) / day.optimum)
            line += f" {mpc:.2f} | {mpc_gaps[-1]:+.2%} |"
        print(line)
    print(f"causal bound z* = {z:+.2%}: every causal controller leaves at least this much more than the optimum on "
          f"one of these {len(joint) + 1} days")
    if args.mpc:
        print(f"mpc-decentralised on them: worst gap {max(mpc_gaps):+.2%} (on D {mpc_gaps[0]:+.2%})")


if __name__ == "__main__":
    main()
