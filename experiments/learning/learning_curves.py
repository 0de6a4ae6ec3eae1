"""Learning curves over training seeds: the IQM across seeds of a training metric against the samples trained,
with a 95 % bootstrap band over seeds, one panel per training scenario.

    python -m experiments.learning.learning_curves --out curves.png runs/ppo-0 runs/ppo-1 runs/ppo-2

Each folder is one training seed written by `pev-experiments train` (its training_log.csv: one row per finished
training episode, `timesteps` = samples trained so far). Per seed and scenario the episodes are smoothed by a
rolling mean of `window` episodes and interpolated onto a common grid of samples (up to the shortest run); the
seeds are then resampled (2000 times, seed 0) for the band. Also writes the curve as CSV next to the PNG.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.learning.rlstats import Interval, iqm, stratified_bootstrap

LOG_FILE = "training_log.csv"


def load_logs(folders: Sequence[str | Path]) -> list[pd.DataFrame]:
    """The training_log.csv of every folder; ValueError naming the folder when one is missing or unreadable."""
    logs = []
    for folder in folders:
        path = Path(folder) / LOG_FILE
        try:
            log = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"folders: {str(folder)!r} has no readable {LOG_FILE} ({exc}); allowed: folders "
                             "written by pev-experiments train") from None
        if not {"timesteps", "scenario"} <= set(log.columns) or log.empty:
            raise ValueError(f"folders: {str(path)!r} is not a training log (needs rows with timesteps, scenario)")
        logs.append(log)
    return logs


def seed_curves(logs: Sequence[pd.DataFrame], metric: str, points: int = 60,
                window: int = 20) -> dict[str, tuple[np.ndarray, Interval, int]]:
    """Scenario -> (samples grid, IQM across seeds with its bootstrap band, number of seeds), for every scenario
    in every log. ValueError when a log lacks `metric`."""
    for log in logs:
        if metric not in log.columns:
            raise ValueError(f"metric = {metric!r}: not in the training log; allowed: "
                             f"{', '.join(c for c in log.columns if c not in ('timesteps', 'scenario'))}")
    scenarios = [s for s in dict.fromkeys(logs[0]["scenario"]) if all((log["scenario"] == s).any() for log in logs)]
    curves = {}
    for scenario in scenarios:
        parts = [log[log["scenario"] == scenario] for log in logs]
        end = min(float(p["timesteps"].max()) for p in parts)
        start = max(float(p["timesteps"].min()) for p in parts)
        grid = np.linspace(start, max(end, start), points)
        values = np.stack([np.interp(grid, p["timesteps"].to_numpy(float),
                                     p[metric].rolling(window, min_periods=1).mean().to_numpy(float))
                           for p in parts])

        def statistic(chosen: list[np.ndarray], values: np.ndarray = values) -> np.ndarray:
            return iqm(values[chosen[0].astype(int)], axis=-2)

        if len(parts) > 1:
            curves[scenario] = (grid, stratified_bootstrap([np.arange(len(parts))], statistic), len(parts))
        else:  # one seed has no spread over seeds: no band (NaN), rather than a band of width 0
            none = np.full(points, np.nan)
            curves[scenario] = (grid, Interval(values[0], none, none), 1)
    return curves


def curve_table(curves: dict[str, tuple[np.ndarray, Interval, int]]) -> pd.DataFrame:
    """The curves as a tidy table: scenario, timesteps, iqm, low, high, seeds."""
    return pd.concat([pd.DataFrame({"scenario": s, "timesteps": grid, "iqm": c.point, "low": c.low, "high": c.high,
                                    "seeds": n}) for s, (grid, c, n) in curves.items()], ignore_index=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (module doc); exit 2 with one line on bad input."""
    parser = argparse.ArgumentParser(prog="python -m experiments.learning.learning_curves", description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", help="training folders (one per training seed)")
    parser.add_argument("--out", required=True, help="PNG file (the CSV goes beside it)")
    parser.add_argument("--metric", default="unmet_energy_kwh", help="column of training_log.csv")
    parser.add_argument("--window", type=int, default=20, help="rolling mean over this many episodes")
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.exit(2, f"{parser.prog}: error: window = {args.window}: must be >= 1\n")
    try:
        curves = seed_curves(load_logs(args.folders), args.metric, window=args.window)
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    from experiments.outputs import plots
    from experiments.outputs.results import save_figure, write_csv

    out = Path(args.out)
    fig = plots.seed_curves(curves, args.metric, f"Learning curves: IQM over training seeds (rolling mean of "
                                                 f"{args.window} episodes)")
    save_figure(fig, out)
    plots.close(fig)
    write_csv(out.with_suffix(".csv"), curve_table(curves))
    print(f"wrote {out} and {out.with_suffix('.csv')} ({len(args.folders)} seeds, {len(curves)} scenarios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
