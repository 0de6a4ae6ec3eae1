"""`scale`: time per control step and memory against the number of stations (synthetic-N scenarios).

For every size N and controller, the plant runs to a quarter of the episode with 0 kW requests (so
about as many PEVs are plugged as in mid-episode; earlier when `steps` would not fit after it, and the row's
`first_timed_step` says where timing began), then the controller acts once (warm-up, untimed) and `steps`
timed steps. Each row names the base plant's `network`; the plot shows the median over the seeds. Memory:
`peak_traced_mb` is the peak of Python/numpy allocations during one extra step (tracemalloc; solver-internal
C allocations are not seen); `max_rss_mb` is the process's peak resident set so far (sizes run in increasing order). The centralised MPC is skipped above
`centralised_max` stations and the row says so.
"""

from __future__ import annotations

import json
import resource
import sys
import tracemalloc
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from experiments.outputs import plots

from experiments.commands.backends import map_in_order, open_backend
from experiments.commands.config import ScaleConfig
from experiments.commands.runner import RunTimeout, time_limit
from experiments.commands.runner import time_control_steps, warm_up_step
from experiments.controllers import registry
from experiments.outputs.outdir import claim
from experiments.outputs.provenance import environment_info, plant_entry, split_plants, to_dict
from experiments.outputs.results import save_figure, write_csv, write_text
from pev_env.network import network_files

if TYPE_CHECKING:
    from pev_env.config import EnvConfig
    from pev_mpc import MPCSettings

CENTRALISED = "mpc-centralised"


def measure(controller: str, n_stations: int, seed: int, steps: int, env: EnvConfig | None = None,
            mpc: MPCSettings | None = None) -> dict[str, Any]:
    """Timing and memory of `controller` on synthetic-<n_stations> built on the base plant `env`
    (None: the EnvConfig defaults), MPC controllers with the settings `mpc` (None: the defaults), and the plant
    that ran (`plant_fingerprint`, `plant`)."""
    from pev_env.scenarios import make_scenario

    config, scenario = make_scenario(f"synthetic-{n_stations}", seed, base=env)
    start = config.n_steps // 4
    policy = registry.make_controller(controller, mpc=mpc)
    times, stats = time_control_steps(policy, config, scenario, seed, start, steps)
    tracemalloc.start()
    try:
        time_control_steps(policy, config, scenario, seed, start, 0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    ms = times * 1e3
    iterations = [s.get("iterations", np.nan) for s in stats]
    return {"step_time_median_ms": float(np.median(ms)), "step_time_p95_ms": float(np.percentile(ms, 95)),
            "iterations_mean": float(np.nanmean(iterations)) if stats else float("nan"),
            "peak_traced_mb": peak / 2**20,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "n_pevs": scenario.n_pevs, "first_timed_step": warm_up_step(start, config.n_steps, steps) + 1,
            "skipped": "", **dict(zip(("plant_fingerprint", "plant"), plant_entry(config)))}


def _measure_job(job: tuple[int, str, int], cfg: ScaleConfig) -> dict[str, Any]:
    """The row of one (n_stations, controller, seed) job (what the backends run)."""
    n, controller, seed = job
    row: dict[str, Any] = {"controller": controller, "n_stations": n, "seed": seed, "network": cfg.env.network}
    if controller == CENTRALISED and n > cfg.centralised_max:
        row["skipped"] = f"n_stations > centralised_max = {cfg.centralised_max}"
        return row
    try:
        with time_limit(cfg.run_timeout, f"{controller}/synthetic-{n}/{seed}"):
            row.update(measure(controller, n, seed, cfg.steps, cfg.env, cfg.mpc))
    except RunTimeout as exc:
        row["skipped"] = str(exc)
    return row


def scale(cfg: ScaleConfig, argv: list[str] | None = None, progress: bool = True) -> int:
    """Run every size x controller x seed; write scale.csv, scale.png and scale.json into cfg.out (locked)."""
    with claim(cfg.out, ("scale.csv",), overwrite=cfg.overwrite,
               outputs=("scale.csv", "scale.json", "scale.png")) as out:
        return _measure_all(cfg, out, argv, progress)


def _measure_all(cfg: ScaleConfig, out: Path, argv: list[str] | None, progress: bool) -> int:
    jobs = [(n, c, seed) for n in sorted(cfg.sizes) for c in cfg.controllers for seed in cfg.seeds]
    with open_backend(cfg) as backend:
        rows = map_in_order(backend, partial(_measure_job, cfg=cfg), jobs,
                            lambda done: write_csv(out / "scale.csv", pd.DataFrame(split_plants(done)[0])), "scale",
                            progress)
    rows, plants = split_plants(rows)
    frame = pd.DataFrame(rows)
    timed_out = frame["skipped"].fillna("").str.contains(RunTimeout.MARK, regex=False)
    done = frame[frame["skipped"].fillna("") == ""]
    if not done.empty:  # one point per controller and size: the median over the seeds
        columns = ["step_time_median_ms", "peak_traced_mb"]
        fig = plots.loglog(done.groupby(["controller", "n_stations"], sort=False, as_index=False)[columns].median(),
                           "n_stations", {"step_time_median_ms": "Median time per control step (ms)",
                                                "peak_traced_mb": "Peak traced memory per step (MB)"},
                           "controller", "Scaling with the number of stations")
        save_figure(fig, out / "scale.png")
        plots.close(fig)
    write_text(out / "scale.json", json.dumps({"command": argv or sys.argv, "config": to_dict(cfg),
                                               "env_set": sorted(cfg.env.user_set), "plants": plants,
                                               "network_files": network_files(cfg.env.network),
                                               "environment": environment_info()}, indent=2) + "\n")
    with pd.option_context("display.width", 200):
        print(frame.to_string(index=False))
    print(f"wrote {out / 'scale.csv'} and {out / 'scale.png'}")
    if timed_out.any():
        print(f"{int(timed_out.sum())} run(s) over the run timeout of {cfg.run_timeout:g} s (column skipped)",
              file=sys.stderr)
        return 1
    return 0
