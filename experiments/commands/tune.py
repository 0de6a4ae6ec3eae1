"""`tune`: sweep decentralised-MPC settings (`pev_mpc.settings.MPCSettings`) in closed loop.

For every setting of the grid (cartesian product) and every scenario x seed, the decentralised MPC runs a
closed-loop episode; at every step the centralised QP of the same step's problem (same settings) is solved
as the reference, on the plant's network. Recorded per run: relative objective gap to the centralised optimum
(mean, max of |f_dec - f_cen| / max(|f_cen|, 1e-9)), network and area violations, unmet energy, coordination
iterations, convergence rate and the decentralised solve time per step. Writes tune.csv, pareto.png (time vs
gap) and tune.json; prints the Pareto-optimal settings and the fastest one within 1e-3 gap and without
violations, naming the settings tied with it. A setting with a run over the run timeout is left out of both
(it would be compared on fewer episodes).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from experiments.commands.backends import map_in_order, open_backend
from experiments.commands.config import TuneConfig, settings_grid
from experiments.commands.compare import run_files
from experiments.commands.runner import RunTimeout, distinct_seeds, run_episode, time_limit
from experiments.outputs import plots
from experiments.outputs.outdir import claim
from experiments.outputs.provenance import environment_info, plant_entry, split_plants, to_dict
from experiments.outputs.results import save_figure, write_csv, write_text

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from pev_env.config import EnvConfig

GAP_OK = 1e-3
"""Relative objective gap regarded as 'equal to the centralised optimum'."""
TIME_TIE = 0.05
"""Settings with the same results whose median step times differ by less than this fraction are tied."""


class _GapProbe:
    """Wraps a decentralised MPC policy; after each act, solves the centralised QP of the same step."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.gaps: list[float] = []
        self.solve_s: list[float] = []
        self.converged: list[bool] = []

    @property
    def last_stats(self) -> dict[str, Any]:
        return self.policy.last_stats

    def reset(self, config: Any, scenario: Any = None, seed: int | None = None) -> None:
        self.config = config
        self.policy.reset(config, scenario, seed)

    def act_array(self, obs: np.ndarray) -> np.ndarray:
        from pev_mpc.centralised import solve_centralised
        from pev_mpc.policies.base import Observed

        action = self.policy.act_array(obs)
        stats = self.policy.last_stats
        problem = self.policy.problem(Observed(obs, self.config.P_ref))  # the step's problem, on the plant's network
        reference = solve_centralised(problem, self.policy.settings).objective
        self.gaps.append(abs(float(stats["objective"]) - reference) / max(abs(reference), 1e-9))
        self.solve_s.append(float(stats["solve_time_s"]))
        self.converged.append(bool(stats.get("converged", True)))
        return action


def _label(settings: Any, grid: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={attrgetter(k)(settings)}" for k in grid)


def evaluate_setting(settings: Any, scenario_name: str, seed: int, max_steps: int,
                     env: EnvConfig | None = None) -> dict[str, Any]:
    """Closed-loop metrics of the decentralised MPC with `settings` on one scenario x seed, built on the
    base plant `env` (None: the EnvConfig defaults), and the plant that ran (`plant_fingerprint`, `plant`)."""
    from pev_env.scenarios import make_scenario
    from pev_mpc.policies.mpc import DecentralisedMPC

    config, scenario = make_scenario(scenario_name, seed, base=env)
    if max_steps:
        config, scenario = _truncate(config, scenario, max_steps)
    probe = _GapProbe(DecentralisedMPC(settings=settings))
    row = run_episode(probe, config, scenario, seed).row
    times_ms = np.asarray(probe.solve_s) * 1e3
    return {
        "gap_mean": float(np.mean(probe.gaps)), "gap_max": float(np.max(probe.gaps)),
        "network_violation_steps": row["network_violation_steps"],
        "area_violation_steps": row["area_violation_steps"], "area_overload_kwh": row["area_overload_kwh"],
        "unmet_energy_kwh": row["unmet_energy_kwh"], "iterations_mean": row["coordination_iterations_mean"],
        "converged_fraction": float(np.mean(probe.converged)),
        "step_time_median_ms": float(np.median(times_ms)), "step_time_p95_ms": float(np.percentile(times_ms, 95)),
        **dict(zip(("plant_fingerprint", "plant"), plant_entry(config))),
    }


def _tune_row(job: tuple[Any, str, int], grid: Mapping[str, Any], max_steps: int,
              env: EnvConfig | None = None, run_timeout: float = 0.0) -> dict[str, Any]:
    """The tune.csv row of one (settings, scenario, seed) job (what the backends run); a job over `run_timeout`
    seconds (0: no limit) is a row with `failed` set."""
    settings, scenario, seed = job
    row = {"setting": _label(settings, grid), **{k: attrgetter(k)(settings) for k in grid}, "scenario": scenario,
           "seed": seed}
    try:
        with time_limit(run_timeout, f"{row['setting']}/{scenario}/{seed}"):
            return {**row, **evaluate_setting(settings, scenario, seed, max_steps, env)}
    except RunTimeout as exc:
        return {**row, "failed": str(exc)}


def _truncate(config: Any, scenario: Any, max_steps: int) -> tuple[Any, Any]:
    """The first `max_steps` steps of a scenario (sessions clipped to the shorter episode)."""
    from pev_env.scenario import Scenario

    steps = min(max_steps, config.n_steps)
    keep = scenario.arrival < steps
    short = Scenario(arrival=scenario.arrival[keep], departure=np.minimum(scenario.departure[keep], steps),
                     soc_init=scenario.soc_init[keep], soc_target=scenario.soc_target[keep],
                     capacity=scenario.capacity[keep], station=scenario.station[keep],
                     n_stations=scenario.n_stations, n_steps=steps, name=f"{scenario.name}[:{steps}]")
    cfg = config.derive({"total_time": steps * config.sampling_time, "n_pevs": short.n_pevs})
    return cfg, short


def _provenance(cfg: TuneConfig, argv: list[str] | None, repeated: list[str]) -> dict[str, Any]:
    """What tune.json records besides the outcome: the command, the config and the plant fields set in it
    (`env_set`: a scenario recomputes P_ref unless it is set, even to its default), the repeated episodes, the
    data files' sha256 and the environment."""
    return {"command": argv or sys.argv, "config": to_dict(cfg), "env_set": sorted(cfg.env.user_set),
            "repeated_episodes": repeated,
            "scenario_files": {sc: f for sc in cfg.scenarios if (f := run_files(sc, cfg.env.network))},
            "environment": environment_info()}


def _record(out: Path, provenance: Mapping[str, Any], **outcome: Any) -> None:
    """tune.json: `provenance` and the outcome; written before the sweep too, so that an interrupted sweep's
    tune.csv is never without its provenance."""
    write_text(out / "tune.json", json.dumps({**provenance, **outcome}, indent=2, default=str) + "\n")


def summarise(frame: pd.DataFrame, failed: pd.Index) -> pd.DataFrame:
    """One row per setting (grid order): the means over its finished runs, `runs` and `failed_runs`. A setting
    with a failed run is compared on fewer episodes than the others (its hard ones may be missing)."""
    finished = frame.drop(index=failed)
    per_setting = finished.groupby("setting", sort=False).agg(
        gap_mean=("gap_mean", "mean"), gap_max=("gap_max", "max"),
        network_violation_steps=("network_violation_steps", "sum"), area_violation_steps=("area_violation_steps", "sum"),
        unmet_energy_kwh=("unmet_energy_kwh", "mean"), iterations_mean=("iterations_mean", "mean"),
        step_time_median_ms=("step_time_median_ms", "median"))
    counts = frame.groupby("setting", sort=False).size()
    per_setting = per_setting.reindex(counts.index)
    per_setting.insert(0, "runs", counts)
    per_setting.insert(1, "failed_runs", frame.loc[failed, "setting"].value_counts().reindex(counts.index,
                                                                                           fill_value=0))
    return per_setting.reset_index()


def best_setting(per_setting: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The fastest setting with gap <= GAP_OK and no violation (else the smallest gap), and the settings tied with
    it: same unmet energy and mean iterations, median step time within TIME_TIE. Among tied settings the grid's
    first is named, so the choice does not follow timing noise."""
    ok = per_setting[(per_setting["gap_mean"] <= GAP_OK) & (per_setting["network_violation_steps"] == 0)
                     & (per_setting["area_violation_steps"] == 0)]
    pool = ok if len(ok) else per_setting.nsmallest(1, "gap_mean")
    if not len(pool):
        return pool, []
    fastest = pool.loc[pool["step_time_median_ms"].idxmin()]
    tied = pool[np.isclose(pool["unmet_energy_kwh"], fastest["unmet_energy_kwh"], rtol=1e-9, atol=1e-9)
                & np.isclose(pool["iterations_mean"], fastest["iterations_mean"], rtol=1e-9, atol=1e-9)
                & (pool["step_time_median_ms"] <= fastest["step_time_median_ms"] * (1 + TIME_TIE))]
    best = tied.head(1)
    return best, tied["setting"].iloc[1:].tolist()


def pareto_front(frame: pd.DataFrame, x: str, y: str) -> pd.Series:
    """True for rows not dominated in (x, y), both minimised."""
    xs, ys = frame[x].to_numpy(), frame[y].to_numpy()
    dominated = ((xs[None, :] <= xs[:, None]) & (ys[None, :] <= ys[:, None])
                 & ((xs[None, :] < xs[:, None]) | (ys[None, :] < ys[:, None]))).any(axis=1)
    return pd.Series(~dominated, index=frame.index)


def tune(cfg: TuneConfig, argv: list[str] | None = None, progress: bool = True) -> int:
    """Run the sweep; write tune.csv, pareto.png and tune.json into cfg.out (locked); print the best settings."""
    with claim(cfg.out, ("tune.csv",), overwrite=cfg.overwrite,
               outputs=("tune.csv", "tune.json", "pareto.png")) as out:
        return _sweep(cfg, out, argv, progress)


def _sweep(cfg: TuneConfig, out: Path, argv: list[str] | None, progress: bool) -> int:
    grid = cfg.grid
    distinct = {sc: distinct_seeds(sc, sc, cfg.seeds) for sc in cfg.scenarios}  # a repeated episode would weigh twice
    seeds = {sc: kept for sc, (kept, _) in distinct.items()}
    repeated = [note for _, note in distinct.values() if note]
    for note in repeated:
        log.warning("%s", note)
    jobs = [(s, sc, sd) for s in settings_grid(grid) for sc in cfg.scenarios for sd in seeds[sc]]
    provenance = _provenance(cfg, argv, repeated)
    _record(out, provenance, status=f"incomplete: the sweep of {len(jobs)} runs did not finish; tune.csv holds the "
                                    "runs that did")
    with open_backend(cfg) as backend:
        rows = map_in_order(backend, partial(_tune_row, grid=grid, max_steps=cfg.max_steps, env=cfg.env,
                                             run_timeout=cfg.run_timeout), jobs,
                            lambda done: write_csv(out / "tune.csv", pd.DataFrame(split_plants(done)[0])), "tune",
                            progress)
    rows, plants = split_plants(rows)
    provenance = {**provenance, "plants": plants}
    frame = pd.DataFrame(rows)
    failed = frame.pop("failed").dropna() if "failed" in frame else pd.Series(dtype=str)
    if failed.size == len(frame):
        print(f"every run went over the run timeout of {cfg.run_timeout:g} s; see {out / 'tune.csv'}", file=sys.stderr)
        return 1
    per_setting = summarise(frame, failed.index)
    complete = per_setting[per_setting["failed_runs"] == 0]
    front = pareto_front(complete, "step_time_median_ms", "gap_mean").reindex(per_setting.index, fill_value=False)
    fig = plots.pareto(per_setting, "step_time_median_ms", "gap_mean", "setting", front,
                       "Decentralised MPC: speed vs accuracy")
    save_figure(fig, out / "pareto.png")
    plots.close(fig)
    best, tied = best_setting(complete)
    incomplete = per_setting.loc[per_setting["failed_runs"] > 0, "setting"].tolist()
    _record(out, provenance, status="complete", best=best.to_dict("records"), tied_with_best=tied,
            incomplete_settings=incomplete)
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        print("Pareto-optimal settings (time per step vs mean relative gap):")
        print(per_setting[front].sort_values("step_time_median_ms").to_string(index=False))
        print(f"\nBest (fastest with gap <= {GAP_OK:g} and no violation; else smallest gap; settings with a failed "
              "run are left out):")
        print(best.to_string(index=False) if len(best) else "none: every setting has a failed run")
        if tied:
            print(f"Tied with it (same unmet energy and iterations, step time within {TIME_TIE:.0%}: timing noise "
                  f"decides between them, so the grid's first is named): {'; '.join(tied)}")
    print(f"wrote {out / 'tune.csv'} and {out / 'pareto.png'}")
    if failed.size:
        print(f"{failed.size} run(s) over the run timeout of {cfg.run_timeout:g} s (column failed of tune.csv)",
              file=sys.stderr)
        return 1
    return 0
