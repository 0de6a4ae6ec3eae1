"""`compare` (and `evaluate`): every controller on every scenario x seed, then summary, traces and plots.

Output directory layout:

```
metrics.csv          tidy: one row per controller x scenario x seed (rewritten atomically after every run)
summary.md           mean ± 95% CI per controller and scenario (also printed)
run.json             the configuration, the MPC settings and the base plant (EnvConfig) in effect, the command
                     line, versions, wall time, failures
traces/<scenario>_seed<seed>_<controller>.csv       per step: area power, P_ref, price, per-station power
traces/<scenario>_seed<seed>_<controller>_soc.csv   per step boundary: SOC of every PEV
plots/area_power_<scenario>.png, plots/soc_<scenario>.png, plots/violations_unmet.png
```
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from experiments import plots, registry
from experiments.backends import open_backend
from experiments.config import CompareConfig, TrainConfig, to_dict
from experiments.provenance import environment_info
from experiments.results import ResultsTable, save_figure, write_csv, write_text
from experiments.runner import CONTROLLER_COLUMNS, EpisodeResult, RunKey, grid, run_grid
from experiments.summary import markdown
from pev_env.scenarios import scenario_label, scenario_provenance

log = logging.getLogger(__name__)


def resolve_ppo_model(cfg: CompareConfig, out: Path) -> Path | None:
    """The PPO model to use: cfg.ppo_model, or one trained now (bounded budget) into out/ppo when missing."""
    if registry.PPO not in cfg.controllers:
        return None
    path = Path(cfg.ppo_model)
    if path.exists():
        return path
    from experiments.rl import train

    fallback = out / "ppo"
    if (fallback / "model.zip").exists():
        log.warning("PPO model %s missing; using %s from an earlier fallback training", path, fallback)
        return fallback / "model.zip"
    log.warning("PPO model %s missing: training one now (%d steps) into %s", path, cfg.ppo_fallback_steps, fallback)
    return train(TrainConfig(timesteps=cfg.ppo_fallback_steps, out=str(fallback)), progress=False)


def trace_paths(out: Path, key: RunKey) -> tuple[Path, Path]:
    """(power trace, SOC trace) CSV paths of one run."""
    return out / "traces" / f"{key.stem()}.csv", out / "traces" / f"{key.stem()}_soc.csv"


def write_plots(cfg: CompareConfig, out: Path, metrics: pd.DataFrame) -> list[Path]:
    """Bars with CIs from metrics; area power and SOC panels for the first seed of each scenario."""
    written: list[Path] = []
    if metrics.empty:
        return written

    def save(fig: Any, name: str) -> None:
        save_figure(fig, out / "plots" / name)
        plots.close(fig)
        written.append(out / "plots" / name)

    save(plots.metric_bars(metrics), "violations_unmet.png")
    for spec in cfg.scenarios:
        seed, scenario = cfg.seeds[0], scenario_label(spec)
        found = {c: trace_paths(out, RunKey(c, spec, seed)) for c in cfg.controllers}
        found = {c: p for c, p in found.items() if p[0].exists() and p[1].exists()}
        if not found:
            continue
        power = {c: pd.read_csv(p[0]) for c, p in found.items()}
        save(plots.area_power(power, f"Area power against P_ref ({scenario}, seed {seed})"),
             f"area_power_{scenario}.png")
        soc = {c: pd.read_csv(p[1]) for c, p in found.items()}
        save(plots.soc_trajectories(soc, f"SOC of every PEV ({scenario}, seed {seed})"), f"soc_{scenario}.png")
    return written


def _in_config_order(metrics: pd.DataFrame, cfg: CompareConfig) -> pd.DataFrame:
    """Rows sorted by the configured scenario, controller and seed order (workers finish in any order)."""
    if metrics.empty:
        return metrics
    rank = {"scenario": [scenario_label(s) for s in cfg.scenarios], "controller": cfg.controllers, "seed": cfg.seeds}
    keys = {c: metrics[c].map({v: i for i, v in enumerate(order)}).fillna(len(order)) for c, order in rank.items()}
    return metrics.assign(**{f"_{c}": k for c, k in keys.items()}).sort_values(
        ["_scenario", "_controller", "_seed"]).drop(columns=["_scenario", "_controller", "_seed"])


def compare(cfg: CompareConfig, argv: list[str] | None = None, progress: bool = True,
            title: str = "Controller comparison") -> int:
    """Run the grid of `cfg`; write metrics, summary, traces and plots into cfg.out. Exit code 0 or 1."""
    from pev_env.metrics import METRIC_COLUMNS

    start = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    table = ResultsTable(out / "metrics.csv", resume=cfg.resume, columns=[*METRIC_COLUMNS, *CONTROLLER_COLUMNS])
    done = table.done()
    keys = [k for k in grid(cfg.controllers, cfg.scenarios, cfg.seeds) if (k.controller, k.label, k.seed) not in done]
    if done:
        log.info("resume: %d runs already in %s, %d to go", len(done), table.path, len(keys))
    ppo_model = resolve_ppo_model(cfg, out) if keys else None
    mpc = cfg.mpc_settings()
    env = cfg.env_config()

    def on_result(key: RunKey, result: EpisodeResult) -> None:
        if cfg.traces:
            power, soc = trace_paths(out, key)
            write_csv(power, result.trace)
            write_csv(soc, result.soc)
        table.add(result.row)

    with open_backend(cfg) as backend:
        failures = run_grid(keys, on_result, ppo_model=ppo_model, backend=backend, progress=progress, mpc=mpc,
                            env=env)
    metrics = _in_config_order(table.frame(), cfg)
    text = markdown(metrics, title=title)
    if failures:
        text += "\n**Failed runs** (see the log): " + ", ".join(f.key.stem() for f in failures) + "\n"
    write_text(out / "summary.md", text)
    if cfg.plots:
        write_plots(cfg, out, metrics)
    wall = time.perf_counter() - start
    info = {"command": argv if argv is not None else sys.argv, "config": to_dict(cfg),
            "mpc_settings": dataclasses.asdict(mpc), "env_config": env.as_dict(),
            "scenario_files": scenario_provenance(cfg.scenarios),
            "ppo_model": None if ppo_model is None else str(ppo_model), "wall_time_s": round(wall, 2),
            "failures": [f.key.stem() for f in failures], "environment": environment_info()}
    write_text(out / "run.json", json.dumps(info, indent=2) + "\n")
    print(text)
    print(f"{len(metrics)} rows in {out / 'metrics.csv'}; wall time {wall:.1f} s"
          + (f"; {len(failures)} runs FAILED" if failures else ""))
    return 1 if failures else 0
