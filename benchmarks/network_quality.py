"""Checks the network quality goals on the rows of `pev-experiments compare` runs.

The goals: at most 1.5 % more unmet energy than the offline optimum in total and 3 % more on every day, below
LLF and EDF on every day where they fall short, no step above a constraint.

    pev-experiments compare --scenarios acn-caltech-eval --seeds 8,14,20 \\
        --controllers offline-optimal,llf,edf,mpc-decentralised \\
        --set env.network=caltech --set env.transformer_kw=40 --out results/heldout-40
    python benchmarks/network_quality.py results/heldout-40 [more folders] [--controller mpc-decentralised] [--held-out]

Prints, per folder, each day's unmet energy relative to the optimum ((controller - optimum) / optimum, as the
table of docs/networks.md; not `unmet_energy_pct`, which is in points of the energy requested) for the
controller and the sorts, the totals over the days, the worst day, the days on which the controller is not
below every sort, its violations and coordination rounds, and the reference's inaccurate steps. A day that lacks
the row of one of the controllers (a failed run, listed in run.json) fails the check and is named. Exit 1 when
a goal fails, so a script can check a new set of days; exit 2 on bad arguments (a folder without metrics.csv,
a controller without rows in the folder). A folder with no day left to check (`--held-out` on shipped-week days
only) does not meet the goals (exit 1). The controller checked is never among its own sorts.

The days of the shipped week (`acn-caltech`, 2019-05-06 to 05-10) are also `acn-caltech-eval` seeds 0-4 (mod
87): the package was designed on them and `make run` runs them, so they are not held out. The report names
them when they are among the rows; `--held-out` leaves them out of the check.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pev_env.scenarios import scenario_episodes
from pev_env.scenarios.acn_caltech import AcnCaltechFamily, caltech_days

TOTAL_GOAL_PCT, DAY_GOAL_PCT = 1.5, 3.0


@functools.cache
def _days(scenario: str) -> tuple[str, ...]:
    return tuple(str(day) for day in caltech_days(scenario))


def shipped_day(scenario: str, seed: int) -> str | None:
    """The day of the shipped week (`acn-caltech`) that the row (scenario spec, seed) ran, None for any other:
    a day of the shipped Caltech scenarios by its seed, or of an `acn:FILE:DATE` spec by its date."""
    if scenario in AcnCaltechFamily.names:
        day = _days(scenario)[scenario_episodes(scenario, [int(seed)])[0]]
    elif scenario.startswith("acn:"):
        day = scenario.rsplit(":", 1)[-1]
    else:
        return None
    return day if day in _days("acn-caltech") else None


def excess_pct(unmet: pd.Series, optimum: pd.Series) -> pd.Series:
    """(unmet - optimum) / optimum in % per day: 0 where the two agree (to 1e-9 kWh), inf where the optimum
    leaves nothing unmet and the controller does."""
    gap = unmet - optimum
    pct = 100.0 * gap / optimum.where(optimum > 0)
    return pct.where(optimum > 0, np.inf).where(gap.abs() > 1e-9, 0.0)


def check(rows: pd.DataFrame, controller: str, reference: str, sorts: list[str],
          held_out: bool = False) -> tuple[list[str], bool]:
    """The report lines of one folder's rows and whether every goal holds (over the held-out days only if
    `held_out`: without the shipped week's)."""
    sorts = [s for s in sorts if s not in (controller, reference)]
    columns = [controller, reference, *sorts]
    absent = sorted(set(columns) - set(rows.controller))
    if absent:
        raise ValueError(f"controllers {absent}: not in the rows (found {sorted(set(rows.controller))})")
    day = [shipped_day(scenario, seed) for scenario, seed in zip(rows.scenario, rows.seed)]
    shipped = rows.assign(day=day).dropna(subset=["day"])[["scenario", "seed", "day"]].drop_duplicates()
    lines = []
    if len(shipped):
        named = ", ".join(f"{r.scenario} seed {r.seed} ({r.day})" for r in shipped.itertuples())
        lines.append(f"days of the shipped week, not held out (the package was designed on them): {named}; "
                     + ("left out" if held_out else "kept (--held-out leaves them out)"))
        if held_out:
            rows = rows[[d is None for d in day]]
    unmet = rows.pivot_table(index=["scenario", "seed"], columns="controller", values="unmet_energy_kwh")
    if unmet.empty:
        return lines + ["no day to check (every day left out)"], False
    unmet = unmet.reindex(columns=columns)   # a controller without rows here: NaN
    lacking = unmet.isna()
    failed = [f"{scenario} seed {seed} ({', '.join(lacking.columns[lacking.loc[(scenario, seed)]])})"
              for scenario, seed in lacking.index[lacking.any(axis=1)]]
    if failed:
        lines.append(f"days without a row of every controller (failed runs?), left out and failing the check: "
                     f"{', '.join(failed)}")
    unmet = unmet.dropna()
    if unmet.empty:
        return lines + ["no day with a row of every controller"], False
    optimum = unmet[reference]
    lines.append(f"{len(unmet)} day{'s' * (len(unmet) != 1)}; {reference}: {optimum.sum():.2f} kWh unmet in total")
    table = pd.DataFrame({c: excess_pct(unmet[c], optimum) for c in [controller, *sorts]}).round(2)
    lines.append("per day, % more unmet energy than the optimum:\n" + table.to_string())
    totals = {c: 100.0 * (unmet[c].sum() / optimum.sum() - 1.0) for c in [controller, *sorts]}
    lines.append("total: " + ", ".join(f"{c} {v:+.2f} %" for c, v in totals.items()))
    scenario, seed = table[controller].idxmax()
    lines.append(f"{controller} worst day: {table[controller].max():+.2f} % ({scenario} seed {seed})")
    behind = [f"{scenario} seed {seed}" for scenario, seed in unmet.index
              if any(optimum[scenario, seed] < unmet.loc[(scenario, seed), s] <= unmet.loc[(scenario, seed), controller]
                     for s in sorts)]
    lines.append(f"days where {controller} is not below every sort that falls short: {behind or 'none'}")
    mine = rows[rows.controller == controller]
    violations = int(mine.network_violation_steps.sum())
    lines.append(f"{controller}: {violations} steps above a constraint, rounds mean "
                 f"{mine.coordination_iterations_mean.min():.2f}-{mine.coordination_iterations_mean.max():.2f}, "
                 f"max {int(mine.coordination_iterations_max.max())}, {int(mine.nonconverged_steps.sum())} "
                 "non-converged steps")
    inaccurate = rows[(rows.controller == reference) & (rows.nonconverged_steps > 0)]
    if len(inaccurate):
        lines.append(f"{reference}: inaccurate steps (nonconverged_steps) on "
                     + ", ".join(f"{r.scenario} seed {r.seed} ({r.nonconverged_steps})"
                                 for r in inaccurate.itertuples()))
    ok = (totals[controller] <= TOTAL_GOAL_PCT and table[controller].max() <= DAY_GOAL_PCT and not behind
          and violations == 0 and not failed)
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="output folders of `pev-experiments compare`")
    parser.add_argument("--controller", default="mpc-decentralised",
                        help="the controller checked (default: %(default)s)")
    parser.add_argument("--reference", default="offline-optimal", help="the optimum (default: %(default)s)")
    parser.add_argument("--sorts", default="llf,edf", help="comma-separated; the controller must be below them "
                        "(default: %(default)s)")
    parser.add_argument("--held-out", action="store_true", help="leave the shipped week's days out (acn-caltech-eval "
                        "seeds 0-4: the package was designed on them)")
    args = parser.parse_args(argv)
    all_ok = True
    for folder in args.folders:
        path = folder / "metrics.csv"
        if not path.is_file():
            print(f"folder = {str(folder)!r}: has no metrics.csv (expected the output folder of a compare)",
                  file=sys.stderr)
            return 2
        try:
            lines, ok = check(pd.read_csv(path), args.controller, args.reference, args.sorts.split(","),
                              args.held_out)
        except ValueError as exc:
            print(f"{folder}: {exc}", file=sys.stderr)
            return 2
        all_ok &= ok
        print(f"== {folder} (goals {'met' if ok else 'NOT met'})")
        print("\n".join(lines))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
