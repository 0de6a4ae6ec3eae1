"""Cross-check of the site networks (`pev_env.network`: caltech, jpl) and of the controllers on them against
acnportal 0.3.3 and adacharge.

    python benchmarks/acn_network_crosscheck.py                     # constraints + every day (20-30 min)
    python benchmarks/acn_network_crosscheck.py --constraints-only  # part a only (seconds)
    python benchmarks/acn_network_crosscheck.py --days 2019-05-13 --transformer-kw 25
    python benchmarks/acn_network_crosscheck.py --acn-results acn.json  # acnportal's side kept for reruns

a. Constraint loads: our `Network.loads` of random schedules against acnportal's
   `ChargingNetwork.constraint_current(linear=False)` (phasor sums; modulus) on `caltech_acn` (transformer
   40 and 25 kW) and `jpl_acn` (45 / 150 kW), our stations in another order than acnportal's; names and
   limits must be acnportal's, the loads equal to 1e-9 relative.
b-d. Whole days of the shipped Caltech files on `caltech_acn(basic_evse=True, voltage=208,
   transformer_cap=kW)`: acnportal's `SortedSchedulingAlgo(least_laxity_first / earliest_deadline_first)`,
   `RoundRobin(first_come_first_served, continuous_inc=1)` and adacharge's `AdaptiveChargingAlgorithmOffline`
   (objective `total_energy`, SOC constraints) run by `acnsim.Simulator` against our `llf`, `edf`,
   `round-robin` and `offline-optimal` in our plant (`experiments.commands.runner.run_episode`), network `caltech`.
   Days: the quoted ones (QUOTED_DAYS) and held-out ones (HELD_OUT_EVERY), each at 40 and 25 kW. A second
   table runs acnportal's LLF and EDF with their bisection to 1e-7 A instead of the fixed 0.01 A
   (`ExactSortedSchedulingAlgo`): that tolerance alone separates the two sides (near-ties of laxity flip).

Same settings on both sides: the sessions and plug schedule of `acn_day_fields` (5 min steps, true
departures, which acnportal also gets as estimated departures), demand = the metered delivered energy (the
scenario's target is set to it), no losses (xi = 0), 208 V, continuous pilots 0-32 A, i.e. every station
rated 6.656 kW. The table gives the delivered energy in % of that demand and the difference ours - acnportal
in % of acnportal's delivered energy (tolerance 0.5 % for the heuristics, 0.1 % for the offline optimum).
Ours is "pending" where our policy does not exist or exceeds the network (not network-aware yet).

acnportal (and for the offline column adacharge with cvxpy) is optional and needed by this script only:
without acnportal it says so and exits 2. Exit 1 when a comparison exceeds its tolerance.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from acn_llf_crosscheck import acnsim_delivered  # noqa: E402

VOLTAGE_V = 208.0
MAX_PILOT_A = 32.0
P_MAX_KW = MAX_PILOT_A * VOLTAGE_V / 1000.0
"""6.656 kW: every station's rating on both sides (continuous pilots 0-32 A at 208 V)."""
TRANSFORMER_KW = (40.0, 25.0)
QUOTED_DAYS = ("2019-05-13", "2019-06-14", "2019-05-01")
"""The days users quoted."""
HELD_OUT_EVERY, HELD_OUT_FIRST = 40, 20
"""Held-out days: every 40th weekday (Monday-Friday) of the two shipped May-December files from index 20
(2019-05-29, 2019-07-24, 2019-09-18, 2019-11-13), quoted days left out."""
LOAD_RTOL = 1e-9
TOLERANCE_PCT = {"llf": 0.5, "edf": 0.5, "round-robin": 0.5, "offline": 0.1, "llf-exact": 0.5, "edf-exact": 0.5}
"""Allowed |ours - acnportal| in % of acnportal's delivered energy."""
OUR_POLICY = {"llf": "llf", "edf": "edf", "round-robin": "round-robin", "offline": "offline-optimal",
              "llf-exact": "llf", "edf-exact": "edf"}
"""Column -> our policy name (`pev_mpc.policies.make_policy`). The -exact columns run acnportal's sorted
algorithms with their bisection to EXACT_BISECTION_A instead of its fixed 0.01 A (`ExactSortedSchedulingAlgo`)."""
TABLES = (("llf", "edf", "round-robin", "offline"), ("llf-exact", "edf-exact"))
"""Columns of the printed tables: acnportal as shipped; its sorted algorithms with exact bisection."""
EXACT_BISECTION_A = 1e-7
ROUND_ROBIN_INC_A = 1.0
"""acnportal's RoundRobin increment of continuous pilots, A: 1 A, our round-robin's (acnportal's default 0.1 A
takes about 4 min per day instead of 25 s)."""
OVERLOAD_TOL_A = 1e-6
"""Ours counts as network-aware when no constraint load exceeds its limit by more than this."""


# ============================================================================ a. constraint loads
def acn_site(site: str, transformer_kw: float | None) -> Any:
    """acnportal's network of `site` ('caltech' with transformer_kw, 'jpl' with its defaults), continuous
    0-32 A EVSEs at 208 V."""
    from acnportal.acnsim.network.sites import caltech_acn, jpl_acn

    if site == "caltech":
        return caltech_acn(basic_evse=True, voltage=VOLTAGE_V, transformer_cap=transformer_kw)
    return jpl_acn(basic_evse=True, voltage=VOLTAGE_V)


def our_site(site: str, transformer_kw: float | None, station_ids: Sequence[str]) -> Any:
    """Our `site_network` of `site` for the stations `station_ids` (no area limit, 208 V)."""
    from pev_env.config import EnvConfig
    from pev_env.network import site_network
    from pev_env.plant import unbound_area_limit

    fields: dict[str, Any] = {"network": site, "n_stations": len(station_ids), "p_max": P_MAX_KW,
                              "voltage_v": VOLTAGE_V}
    if transformer_kw is not None:
        fields["transformer_kw"] = transformer_kw
    return site_network(unbound_area_limit(EnvConfig(**fields)), station_ids)


def constraint_check(site: str, transformer_kw: float | None, n_schedules: int = 200,
                     seed: int = 0) -> dict[str, Any]:
    """Our loads against acnportal's `constraint_current` for random schedules (each station idle with
    probability 0.3, else uniform 0-32 A), our stations in a random order."""
    theirs_net = acn_site(site, transformer_kw)
    ids = list(theirs_net.station_ids)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))
    ours_net = our_site(site, transformer_kw, [ids[i] for i in order])
    amps = rng.uniform(0.0, MAX_PILOT_A, (len(ids), n_schedules)) * (rng.random((len(ids), n_schedules)) > 0.3)
    theirs = np.abs(theirs_net.constraint_current(amps, linear=False))
    ours = ours_net.loads(amps[order] * VOLTAGE_V / 1000.0)
    rel = float((np.abs(ours - theirs) / np.maximum(theirs, 1e-12)).max())
    return {"site": site, "transformer_kw": transformer_kw, "constraints": ours_net.n_constraints,
            "names_match": list(ours_net.names) == list(theirs_net.constraint_index),
            "limits_rel": float(np.abs(ours_net.limit / theirs_net.magnitudes - 1.0).max()),
            "loads_rel": rel, "schedules": n_schedules}


# ============================================================================ b-d. days
@dataclass
class DayResult:
    """Delivered energy per column on one day; ours None where pending (`pending` says why)."""

    day: str
    transformer_kw: float
    pevs: int
    requested_kwh: float
    acn_kwh: dict[str, float] = field(default_factory=dict)
    ours_kwh: dict[str, float | None] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)
    acn_s: dict[str, float] = field(default_factory=dict)
    ours_s: dict[str, float] = field(default_factory=dict)

    def diff_pct(self, column: str) -> float | None:
        """ours - acnportal in % of acnportal's delivered energy (None when pending)."""
        ours = self.ours_kwh.get(column)
        if ours is None or column not in self.acn_kwh:
            return None
        return 100.0 * (ours - self.acn_kwh[column]) / max(self.acn_kwh[column], 1e-12)


def file_of(day: str) -> Path:
    """The shipped Caltech file holding `day`."""
    from pev_env.acn import MONTH_FILES

    return MONTH_FILES[0] if dt.date.fromisoformat(day) < dt.date(2019, 9, 1) else MONTH_FILES[1]


def held_out_days(every: int = HELD_OUT_EVERY, first: int = HELD_OUT_FIRST) -> list[str]:
    """Every `every`-th weekday of the shipped May-December files from the `first`-th (0-based), quoted days
    left out."""
    from pev_env.acn import MONTH_FILES, load_acn_sessions, session_days

    days = session_days(load_acn_sessions(list(MONTH_FILES)), weekdays_only=True)
    return [d.isoformat() for d in days[first::every] if d.isoformat() not in QUOTED_DAYS]


def day_scenario(day: str) -> Any:
    """The `acn_day_fields` scenario of `day` with 6.656 kW stations and target = delivered energy, the file's
    stations in acnportal's order (`caltech_acn`'s; our rules break ties by station index, acnportal's sorts
    by the order of its EVSEs)."""
    from pev_env.acn import acn_day_fields, all_stations, day_sessions, load_acn_sessions
    from pev_env.network import caltech_builder, site_ids
    from pev_env.scenario import Scenario

    path = file_of(day)
    in_file = set(all_stations(load_acn_sessions(path)))
    stations = [s for s in site_ids(caltech_builder(TRANSFORMER_KW[0])) if s in in_file]
    fields = acn_day_fields(path, day, ratings=P_MAX_KW, stations=stations)
    sessions = day_sessions(load_acn_sessions(path), day, fields["sampling_time"], fields["station_ids"])
    delivered = sessions["delivered_energy_kwh"].fillna(0.0).clip(lower=0.0).to_numpy(dtype=float)
    fields.update(soc_target=delivered, capacity=np.maximum(fields["capacity"], delivered))
    return Scenario(**fields)


def day_config(scenario: Any, transformer_kw: float) -> Any:
    """Our plant on the caltech network: no losses, 208 V, the site's limits only (no area limit)."""
    from pev_env.config import EnvConfig
    from pev_env.plant import plant_config

    return plant_config(scenario, EnvConfig(network="caltech", transformer_kw=transformer_kw, xi=0.0,
                                            voltage_v=VOLTAGE_V))


def acn_algorithms(columns: Sequence[str]) -> dict[str, Callable[[], Any]]:
    """Column -> factory of acnportal's / adacharge's algorithm (offline left out without adacharge)."""
    from acnportal.algorithms import (RoundRobin, SortedSchedulingAlgo, earliest_deadline_first,
                                      first_come_first_served, least_laxity_first)

    def offline() -> Any:
        from adacharge import AdaptiveChargingAlgorithmOffline, ObjectiveComponent, total_energy

        return AdaptiveChargingAlgorithmOffline([ObjectiveComponent(total_energy)], constraint_type="SOC")

    class ExactSortedSchedulingAlgo(SortedSchedulingAlgo):
        """acnportal's sorted algorithm whose bisection stops at EXACT_BISECTION_A, not its fixed 0.01 A (which
        leaves up to 0.01 A of a binding constraint unused per step: near-ties of laxity then flip)."""

        @staticmethod
        def max_feasible_rate(station_index: int, ub: float, schedule: np.ndarray, infrastructure: Any,
                              eps: float = 0.0001, lb: float = 0.0) -> float:
            return SortedSchedulingAlgo.max_feasible_rate(station_index, ub, schedule, infrastructure,
                                                          eps=EXACT_BISECTION_A, lb=lb)

    factories: dict[str, Callable[[], Any]] = {
        "llf": lambda: SortedSchedulingAlgo(least_laxity_first),
        "edf": lambda: SortedSchedulingAlgo(earliest_deadline_first),
        "llf-exact": lambda: ExactSortedSchedulingAlgo(least_laxity_first),
        "edf-exact": lambda: ExactSortedSchedulingAlgo(earliest_deadline_first),
        "round-robin": lambda: RoundRobin(first_come_first_served, continuous_inc=ROUND_ROBIN_INC_A),
        "offline": offline,
    }
    return {c: factories[c] for c in columns}


def ours_delivered(column: str, config: Any, scenario: Any) -> tuple[float | None, str]:
    """(kWh stored by our policy, '') or (None, why pending): no such policy, or it exceeds the network."""
    from experiments.commands.runner import run_episode
    from pev_env.network import site_network
    from pev_mpc.policies import POLICIES, make_policy

    name = OUR_POLICY[column]
    if name not in POLICIES:
        return None, f"no policy {name!r} yet"
    result = run_episode(make_policy(name), config, scenario, 0)
    applied = result.trace.filter(regex=r"^p_\d+_kw$").to_numpy()
    over = float(site_network(config, scenario.station_ids).overload(applied.T).max(initial=0.0))
    delivered = float(result.soc.filter(like="soc_").to_numpy()[-1].sum() - scenario.soc_init.sum())
    if over > OVERLOAD_TOL_A:
        return None, f"exceeds the network by up to {over:.1f} A (delivers {delivered:.1f} kWh)"
    return delivered, ""


def crosscheck_day(day: str, transformer_kw: float, columns: Sequence[str],
                   cache: dict[str, list[float]] | None = None) -> DayResult:
    """Every column of `day` at `transformer_kw` on both sides. `cache`: acnportal's [kWh, seconds] by
    'day/kW/column', read where present and filled where not (its results do not change with our code)."""
    scenario = day_scenario(day)
    config = day_config(scenario, transformer_kw)
    out = DayResult(day, transformer_kw, scenario.n_pevs, float(scenario.energy_requested.sum()))
    cache = {} if cache is None else cache
    ours: dict[str, tuple[float | None, str, float]] = {}  # policy -> kWh, why pending, seconds
    for column, make in acn_algorithms(columns).items():
        key = f"{day}/{transformer_kw:g}/{column}"
        if key not in cache:
            start = time.perf_counter()
            kwh = float(acnsim_delivered(acn_site("caltech", transformer_kw), make(), config, scenario,
                                         scenario.station_ids).sum())
            cache[key] = [kwh, time.perf_counter() - start]
        out.acn_kwh[column], out.acn_s[column] = cache[key]
        if OUR_POLICY[column] not in ours:
            start = time.perf_counter()
            ours[OUR_POLICY[column]] = (*ours_delivered(column, config, scenario), time.perf_counter() - start)
        out.ours_kwh[column], why, out.ours_s[column] = ours[OUR_POLICY[column]]
        if why:
            out.pending[column] = why
    return out


def missing_stations() -> dict[str, list[str]]:
    """Station ids of each shipped Caltech file that acnportal's caltech_acn does not have."""
    from pev_env.acn import MONTH_FILES, SAMPLE_FILE, all_stations, load_acn_sessions
    from pev_env.network import caltech_builder, site_ids

    known = set(site_ids(caltech_builder(150.0)))
    return {p.name: [s for s in all_stations(load_acn_sessions(p)) if s not in known]
            for p in (SAMPLE_FILE, *MONTH_FILES)}


# ============================================================================ printing
def _pct(kwh: float | None, requested: float) -> str:
    return "pending" if kwh is None else f"{100.0 * kwh / requested:.2f}"


def print_constraints(rows: list[dict[str, Any]]) -> bool:
    """Print part a; True when everything matches."""
    print("| network | transformer kW | constraints | names match | max limit rel. diff | max load rel. diff "
          "| schedules |")
    print("|---|---:|---:|---|---:|---:|---:|")
    ok = True
    for r in rows:
        kw = "45 / 150" if r["transformer_kw"] is None else f"{r['transformer_kw']:g}"
        print(f"| {r['site']} | {kw} | {r['constraints']} | {'yes' if r['names_match'] else 'NO'} | "
              f"{r['limits_rel']:.1e} | {r['loads_rel']:.1e} | {r['schedules']} |")
        ok &= r["names_match"] and r["limits_rel"] <= LOAD_RTOL and r["loads_rel"] <= LOAD_RTOL
    return ok


def print_days(results: list[DayResult], columns: Sequence[str]) -> bool:
    """Print the table of days (% of requested, acnportal / ours / difference); True when within tolerance."""
    head = " | ".join(f"{c} acnportal | {c} ours | {c} diff %" for c in columns)
    print(f"| day | transformer kW | PEVs | requested kWh | {head} | acnportal s | ours s |")
    print("|---|---:|---:|---:|" + "---:|" * (3 * len(columns)) + "---:|---:|")
    ok = True
    for r in results:
        cells = []
        for c in columns:
            diff = r.diff_pct(c)
            cells += [_pct(r.acn_kwh[c], r.requested_kwh), _pct(r.ours_kwh[c], r.requested_kwh),
                      "pending" if diff is None else f"{diff:+.3f}"]
            ok &= diff is None or abs(diff) <= TOLERANCE_PCT[c]
        print(f"| {r.day} | {r.transformer_kw:g} | {r.pevs} | {r.requested_kwh:.1f} | {' | '.join(cells)} | "
              f"{sum(r.acn_s[c] for c in columns):.1f} | {sum(r.ours_s[c] for c in columns):.1f} |")
    for c in columns:
        why = [r.pending[c] for r in results if c in r.pending]
        if why:
            print(f"pending, ours {c} on {len(why)} of {len(results)} day runs: {why[0]}" if len(set(why)) == 1 else
                  f"pending, ours {c} on {len(why)} of {len(results)} day runs: e.g. {why[0]}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", help="comma-separated YYYY-MM-DD (default: the quoted days and the held-out ones)")
    parser.add_argument("--transformer-kw", default=",".join(f"{k:g}" for k in TRANSFORMER_KW),
                        help="comma-separated transformer capacities, kW")
    parser.add_argument("--columns", default=",".join(OUR_POLICY), help=f"subset of {','.join(OUR_POLICY)}")
    parser.add_argument("--constraints-only", action="store_true", help="part a only")
    parser.add_argument("--acn-results", type=Path, help="JSON file of acnportal's results: read, completed, "
                        "written back (reruns then time acnportal's side as when it was stored)")
    args = parser.parse_args(argv)
    try:
        import acnportal.acnsim  # noqa: F401
    except ImportError as exc:
        print(f"acnportal is not installed ({exc}): pip install 'setuptools<81' acnportal==0.3.3 (and adacharge "
              "from its repository for the offline column)", file=sys.stderr)
        return 2
    kws = [float(k) for k in args.transformer_kw.split(",")]
    print("## a. Constraint loads against acnportal's constraint_current (linear=False)\n")
    ok = print_constraints([constraint_check("caltech", kw) for kw in kws] + [constraint_check("jpl", None)])
    if args.constraints_only:
        return 0 if ok else 1
    columns = [c for c in args.columns.split(",") if c]
    try:
        import adacharge  # noqa: F401
    except ImportError:
        print("adacharge is not installed: the offline column is left out", file=sys.stderr)
        columns = [c for c in columns if c != "offline"]
    print("\nstation ids of the shipped Caltech files not in acnportal's caltech_acn:",
          "; ".join(f"{f}: {ids or 'none'}" for f, ids in missing_stations().items()))
    days = args.days.split(",") if args.days else [*QUOTED_DAYS, *held_out_days()]
    print(f"\n## b-d. Delivered energy, % of the delivered-energy demand (held out: every {HELD_OUT_EVERY}th "
          f"weekday of the May-December files from index {HELD_OUT_FIRST})\n")
    start = time.perf_counter()
    cache = json.loads(args.acn_results.read_text()) if args.acn_results and args.acn_results.exists() else {}
    results = []
    for day in days:
        for kw in kws:
            results.append(crosscheck_day(day, kw, columns, cache))
            if args.acn_results:
                args.acn_results.write_text(json.dumps(cache, indent=1, sort_keys=True))
    for table in TABLES:
        shown = [c for c in table if c in columns]
        if shown:
            print("\nacnportal as shipped:\n" if table == TABLES[0] else
                  f"\nacnportal's sorted algorithms with bisection to {EXACT_BISECTION_A:g} A (instead of 0.01 A):\n")
            ok &= print_days(results, shown)
    print(f"\n{len(results)} day runs in {time.perf_counter() - start:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
