"""Wall time of whole real days on the Caltech network for one controller (issue: one day in under 5 s).

    python benchmarks/network_day.py [--controller mpc-decentralised] [--seeds 0,1] [--transformer-kw 40]

Drives the controller through the plant on `acn-caltech-network` days (the shipped week on the Caltech
network) and prints, per day, the wall time (and the process's CPU time, which a loaded machine inflates
less), the steps, the unmet energy and the most coordination rounds of a step.
"""

from __future__ import annotations

import argparse
import time

from pev_env.config import EnvConfig
from pev_env.core import ChargingCore
from pev_env.scenarios import make_scenario
from pev_mpc.policies import make_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--controller", default="mpc-decentralised")
    parser.add_argument("--seeds", default="0,1", help="days of the week (seed %% 5), comma-separated")
    parser.add_argument("--transformer-kw", type=float, default=40.0)
    args = parser.parse_args()
    base = EnvConfig(network="caltech", transformer_kw=args.transformer_kw)
    for seed in (int(s) for s in args.seeds.split(",")):
        config, scenario = make_scenario("acn-caltech-network", seed, base)
        policy = make_policy(args.controller)
        core = ChargingCore(config, scenario)
        policy.reset(config, scenario, seed)
        obs, rounds = core.reset(), []
        start, cpu = time.perf_counter(), time.process_time()
        while not core.done:
            obs = core.step(policy.act_array(obs)).observations
            rounds.append(policy.last_stats.get("iterations", 0))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        unmet = core.episode_metrics()["unmet_energy_kwh"]
        print(f"{scenario.name}: {wall:.1f} s wall ({cpu:.1f} s CPU, all threads) for {config.n_steps} steps, "
              f"unmet {unmet:.2f} kWh, most rounds in a step {max(rounds)}")


if __name__ == "__main__":
    main()
