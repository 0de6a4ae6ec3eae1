"""Cross-check: our `llf` heuristic against acnportal's `least_laxity_first` on the same ACN-Data sessions.

    python benchmarks/acn_llf_crosscheck.py                                   # three shipped days
    python benchmarks/acn_llf_crosscheck.py --scenarios acn:FILE:2019-10-01 --tolerance-pct 0.1

Both run the scenario exactly as `pev-experiments compare` builds it (`make_scenario`, seed 0): the same
sessions and plug schedule, per-station ratings, area limit P_ref and step (5 min). acnportal works in
amperes on one phase at `--voltage` V: each station is a continuous EVSE with max rate p_max / V, the area
limit one aggregate current constraint P_ref / V, and the scheduler `SortedSchedulingAlgo(least_laxity_first)`
recomputed every period. Our plant stores eta = 1 - xi of the power drawn, so each acnportal EV requests the
energy to draw (target / eta). The script prints the delivered energy of both and their difference as a
percentage of the requested energy, and exits 1 when it exceeds the tolerance (default 0.1 %).

acnportal is optional and needed by this script only (`pip install acnportal scikit-learn`; acnportal 0.3
imports `pkg_resources`, i.e. setuptools < 81). Without it the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_DAYS = ("acn-caltech", "acn-caltech-train")
"""Named shipped days, plus (in `main`) one `acn:` spec on the shipped September-December file."""


def acn_events(config: Any, scenario: Any, station_ids: Sequence[str]) -> Any:
    """acnportal `EventQueue` of the scenario's plugged sessions: each EV plugs in at its plug step into
    `station_ids[station]`, leaves at its (true, also estimated) departure and requests the energy to draw
    (target / eta); its battery never limits (capacity request + 1 kWh, max power the station's p_max)."""
    from acnportal import acnsim

    from pev_env.schedule import plug_schedule

    schedule = plug_schedule(scenario)
    events = acnsim.EventQueue()
    draw = scenario.energy_requested / config.eta
    for j in np.flatnonzero(schedule.plugged & (draw > 0)):
        station = int(schedule.station[j])
        battery = acnsim.Battery(capacity=float(draw[j]) + 1.0, init_charge=0.0,
                                 max_power=float(config.station_p_max[station]))
        ev = acnsim.EV(int(schedule.plug_step[j]), int(schedule.unplug_step[j]), float(draw[j]),
                       station_ids[station], f"pev_{j}", battery, estimated_departure=int(schedule.unplug_step[j]))
        events.add_event(acnsim.PluginEvent(int(schedule.plug_step[j]), ev))
    return events


def acnsim_delivered(network: Any, algorithm: Any, config: Any, scenario: Any,
                     station_ids: Sequence[str]) -> np.ndarray:
    """kWh stored per PEV when acnportal's `algorithm` schedules the scenario on `network` (never-plugged
    PEVs: 0). An offline algorithm (adacharge's, with `register_events` and `solve`) sees every event first."""
    from acnportal import acnsim

    events = acn_events(config, scenario, station_ids)
    if hasattr(algorithm, "register_events"):
        algorithm.register_events(events)
    start = dt.datetime(2019, 1, 1, tzinfo=dt.timezone.utc)
    sim = acnsim.Simulator(network, algorithm, events, start, period=config.sampling_time, verbose=False)
    if hasattr(algorithm, "solve"):
        algorithm.solve()
    sim.run()
    delivered = np.zeros(scenario.n_pevs)
    for ev in sim.ev_history.values():
        delivered[int(ev.session_id.split("_")[1])] = ev.energy_delivered * config.eta
    return delivered


def acnportal_llf_delivered(config: Any, scenario: Any, voltage: float = 208.0) -> np.ndarray:
    """kWh stored per PEV when acnportal's LLF schedules the scenario on one area constraint (never-plugged
    PEVs: 0)."""
    from acnportal import acnsim
    from acnportal.algorithms import SortedSchedulingAlgo, least_laxity_first

    amps = 1000.0 / voltage  # A per kW
    ids = [f"cs_{i}" for i in range(config.n_stations)]
    network = acnsim.ChargingNetwork()
    for sid, p_max in zip(ids, config.station_p_max):
        network.register_evse(acnsim.EVSE(sid, max_rate=p_max * amps, min_rate=0.0), voltage, 0.0)
    network.add_constraint(acnsim.Current(ids), config.P_ref * amps, name="area")
    return acnsim_delivered(network, SortedSchedulingAlgo(least_laxity_first), config, scenario, ids)


def our_llf_delivered(config: Any, scenario: Any) -> np.ndarray:
    """kWh stored per PEV by our `llf` policy in the plant (the path `compare` runs)."""
    from experiments.commands.runner import run_episode
    from pev_mpc.policies import make_policy

    policy = make_policy("llf")
    soc = run_episode(policy, config, scenario, 0).soc.filter(like="soc_").to_numpy()
    return soc[-1] - scenario.soc_init


def crosscheck(spec: str, voltage: float = 208.0) -> dict[str, Any]:
    """Delivered energy of both implementations on `spec` (seed 0) and the difference in % of the request."""
    from pev_env.scenarios import make_scenario

    config, scenario = make_scenario(spec, 0)
    ours = our_llf_delivered(config, scenario)
    theirs = acnportal_llf_delivered(config, scenario, voltage)
    requested = float(scenario.energy_requested.sum())
    return {"scenario": scenario.name, "stations": config.n_stations, "pevs": scenario.n_pevs,
            "P_ref_kw": config.P_ref, "requested_kwh": requested, "ours_kwh": float(ours.sum()),
            "acnportal_kwh": float(theirs.sum()), "pev_diff_max_kwh": float(np.abs(ours - theirs).max(initial=0.0)),
            "diff_pct": 100.0 * abs(float(ours.sum() - theirs.sum())) / requested}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    from pev_env.acn import MONTH_FILES

    default = [*DEFAULT_DAYS, f"acn:{MONTH_FILES[1]}:2019-10-01"]
    parser.add_argument("--scenarios", default=",".join(default), help="comma-separated scenario specs")
    parser.add_argument("--voltage", type=float, default=208.0, help="EVSE voltage of the acnportal network, V")
    parser.add_argument("--tolerance-pct", type=float, default=0.1, help="allowed difference, %% of requested")
    args = parser.parse_args(argv)
    try:
        import acnportal.acnsim  # noqa: F401
    except ImportError as exc:
        print(f"acnportal is not installed ({exc}); skipping the cross-check (pip install acnportal scikit-learn)")
        return 0
    worst = 0.0
    print("| scenario | stations | PEVs | P_ref kW | requested kWh | ours kWh | acnportal kWh | diff % of requested "
          "| largest PEV diff kWh |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for spec in args.scenarios.split(","):
        r = crosscheck(spec, args.voltage)
        worst = max(worst, r["diff_pct"])
        print(f"| {r['scenario']} | {r['stations']} | {r['pevs']} | {r['P_ref_kw']:.1f} | {r['requested_kwh']:.2f} | "
              f"{r['ours_kwh']:.3f} | {r['acnportal_kwh']:.3f} | {r['diff_pct']:.4f} | {r['pev_diff_max_kwh']:.3f} |")
    print(f"largest difference {worst:.4f} % of requested (tolerance {args.tolerance_pct} %)")
    return 0 if worst <= args.tolerance_pct else 1


if __name__ == "__main__":
    sys.exit(main())
