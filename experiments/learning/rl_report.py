"""The RL statistics of summary.md and the performance profiles: IQM with stratified-bootstrap 95 % intervals,
probability of improvement over baselines and profiles (`experiments.learning.rlstats`), over training seeds x evaluation
days.

A learned controller run with several model folders has rows `ppo@0`, `ppo@1`, ... (`registry.learned_base`);
here they are one *agent*, `ppo`, whose runs are its (training seed, evaluation day) pairs, resampled as a
crossed design (`rlstats`: training seeds and days drawn independently). Two folders with the same model (equal
SHA-256) are one training seed: the later is left out, with a note. Rows of a plain `ppo` (one folder, e.g. kept
by a `--resume`) beside `ppo@i` rows are the agent `ppo (one folder)`, never pooled with them. Every other
controller is an agent of one training seed. The tasks (strata of the bootstrap) are the scenarios. Every
metric here is lower-is-better.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from pev_env.metrics import SERVED_TOL_KWH

from experiments.controllers import registry
from experiments.outputs.summary import EXCEEDED_MARK, NONCAUSAL_MARK, counted, exceeded
from experiments.learning.rlstats import (Interval, iqm_of_strata, performance_profile, probability_of_improvement,
                                 stratified_bootstrap)

METRICS: tuple[str, ...] = ("unmet_energy_kwh", "network_violation_steps")
"""Metrics of the RL statistics (lower is better). network_violation_steps counts the steps above any limit of
the plant: the area limit alone (then it equals area_violation_steps), or any constraint of a site network."""
TIES: dict[str, float] = {"unmet_energy_kwh": SERVED_TOL_KWH}
"""Differences of a metric at most this large are a tie in the probability of improvement: the MPCs, LLF and the
offline optimum leave the same energy unmet up to the solvers' round-off (1e-7 kWh), which must not decide who
is better (the tolerance of a fully served PEV)."""
BASELINES: tuple[str, ...] = ("llf", "mpc-decentralised")
"""Controllers the probability of improvement is taken over (when they ran)."""
RATIO_TARGET = 1.1
"""Target of the unmet-energy profile: at most 10 % more unmet energy than LLF on the same episode."""
VIOLATION_TARGET = 0.1
"""Target of the violation profile: at most 0.1 violation steps (area limit or network) per episode."""


ONE_FOLDER = " (one folder)"
"""Suffix of the agent of a plain learned controller's rows beside training-seed rows of the same controller."""


def agent_runs(metrics: pd.DataFrame, checksums: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """`metrics` with `agent` (the controller, `ppo` for `ppo@1`) and `train_seed` (the folder index; 0 for a
    controller run once), without the rows of a training seed whose model (`checksums`: controller -> SHA-256)
    equals an earlier one's; and a note per such folder."""
    controllers = metrics["controller"].astype(str)
    seeded = {registry.learned_base(c) for c in controllers if registry.TRAINING_SEED_MARK in c}

    def agent_of(controller: str) -> str:
        base = registry.learned_base(controller)
        if not base:
            return controller
        return base + ONE_FOLDER if base in seeded and registry.TRAINING_SEED_MARK not in controller else base

    agent = controllers.map(agent_of)
    index = controllers.map(lambda c: int(c.partition(registry.TRAINING_SEED_MARK)[2] or 0))
    notes, first, same = [], {}, set()
    for c in sorted(set(controllers) & set(checksums or {}), key=lambda c: (registry.learned_base(c), c)):
        if registry.TRAINING_SEED_MARK not in c:
            continue
        earlier = first.setdefault((registry.learned_base(c), checksums[c]), c)
        if earlier != c:
            same.add(c)
            notes.append(f"{c} runs the same model as {earlier} (SHA-256 {checksums[c][:12]}): counted once")
    keep = ~controllers.isin(same)
    return metrics.assign(agent=agent, train_seed=index)[keep], notes


def has_learned(metrics: pd.DataFrame) -> bool:
    """True when a learned controller has rows."""
    return bool(len(metrics)) and any(registry.learned_base(c) for c in metrics["controller"].unique())


def strata(runs: pd.DataFrame, agent: str, metric: str, scenarios: Sequence[str]) -> list[np.ndarray]:
    """The runs of `agent` on each of `scenarios`: per scenario a grid (training seeds x days) of `metric` when
    every pair ran (resampled as a crossed design), else the runs as one array."""
    mine = runs[runs["agent"] == agent]
    return [_grid(mine[mine["scenario"] == s], metric) for s in scenarios]


def _grid(rows: pd.DataFrame, metric: str) -> np.ndarray:
    """The crossed grid (training seeds x days) of `metric` over `rows` (`crossed`)."""
    return crossed(rows.pivot_table(index="train_seed", columns="seed", values=metric, aggfunc="first")).to_numpy(
        float)


def crossed(grid: pd.DataFrame) -> pd.DataFrame:
    """The largest complete part of a grid (training seeds x days, NaN where a pair did not run): every training
    seed on the days all of them ran, the training seeds that ran every day, or the training seed with the most
    days; runs outside it are left out (`left_out`) rather than resampled as independent runs, which would make
    the interval of a grid with one failed run as narrow as that of seeds x days independent days."""
    ran = grid.notna()
    parts = [grid.loc[:, ran.all(axis=0)], grid.loc[ran.all(axis=1), :]]
    if len(grid):
        best = ran.sum(axis=1).idxmax()
        parts.append(grid.loc[[best], ran.loc[best]])
    return max(parts, key=lambda part: part.size)


def left_out(runs: pd.DataFrame) -> list[str]:
    """A note per agent and scenario whose runs do not all form a crossed grid (`crossed`): which were left out."""
    notes = []
    for (scenario, agent), rows in runs.groupby(["scenario", "agent"], sort=False):
        kept = crossed(rows.pivot_table(index="train_seed", columns="seed", values="unmet_energy_kwh",
                                        aggfunc="first"))
        if kept.size < len(rows):
            notes.append(f"{agent} on {scenario}: {len(rows) - kept.size} of {len(rows)} runs left out of its "
                         f"statistics (not every training seed ran every day; kept {kept.shape[0]} training "
                         f"seed(s) × {kept.shape[1]} day(s), the largest complete crossed grid)")
    return notes


def _interval(value: Interval, n: int) -> str:
    """'point [low, high]'; with `n` (the fewest runs a resampled stratum has) below 2 the bootstrap cannot vary:
    'point (n = 1, no interval)'."""
    point = float(value.point)
    if n < 2:
        return f"{point:.2f} (n = {n}, no interval)"
    return f"{point:.2f} [{float(value.low):.2f}, {float(value.high):.2f}]"


def _count(block: pd.DataFrame, metric: str) -> str:
    """'seeds × days = runs' of the crossed grid of `metric` for a learned agent (1 × 5 with one training seed: the
    interval is over days only), the runs for any other."""
    grid = _grid(block, metric)
    (seeds, days), runs = grid.shape, grid.size
    learned = registry.learned_base(str(block["controller"].iloc[0])) != ""
    return f"{seeds} × {days} = {runs}" if learned or seeds > 1 else str(runs)


def agent_marks(runs: pd.DataFrame, bounds: Sequence[str] = ()) -> dict[tuple[str, str], str]:
    """(scenario, agent) -> the marks after its name, as in the paired differences of summary.md: NONCAUSAL_MARK
    for the `bounds` (the controllers that read the episode's future, `registry.is_causal` False), EXCEEDED_MARK
    when a run exceeded a shared limit (`summary.exceeded`), so an IQM or a probability of improvement of a
    limit-breaker or a bound never reads as that of a controller that kept the limits."""
    agent = dict(zip(runs["controller"], runs["agent"]))
    marks = {(s, agent[c]): f" {NONCAUSAL_MARK}" for s, c in zip(runs["scenario"], runs["controller"])
             if c in bounds}
    for scenario, controller in exceeded(runs):
        key = (scenario, agent[controller])
        if EXCEEDED_MARK not in marks.get(key, ""):
            marks[key] = marks.get(key, "") + f" {EXCEEDED_MARK}"
    return marks


def mark_notes(marks: Mapping[tuple[str, str], str]) -> list[str]:
    """The lines that explain the marks of `agent_marks` ([] when none is set)."""
    def named(mark: str) -> str:
        return ", ".join(dict.fromkeys(f"{a} on {s}" for (s, a), m in marks.items() if mark in m))

    lines = [f"{EXCEEDED_MARK} exceeded a shared limit (the area limit or a site-network constraint) in some run "
             f"({named(EXCEEDED_MARK)}): its unmet energy, and a probability of improvement on it, are not comparable "
             "with those of a controller that kept the limits."] if named(EXCEEDED_MARK) else []
    if named(NONCAUSAL_MARK):
        lines.append(f"{NONCAUSAL_MARK} reads the episode's future sessions ({named(NONCAUSAL_MARK)}): a bound, not "
                     "a controller a site can run.")
    return [part for line in lines for part in (line, "")]


def iqm_tables(runs: pd.DataFrame, metrics: Sequence[str] = METRICS,
               marks: Mapping[tuple[str, str], str] | None = None) -> list[str]:
    """One markdown table per scenario: agent (with its `agent_marks`), n (training seeds x days), IQM [95 % CI] of
    each metric."""
    marks = marks or {}
    lines: list[str] = []
    for scenario, block in runs.groupby("scenario", sort=False):
        lines += [f"### {scenario}: IQM [95 % CI]", "", "| agent | n (training seeds × days) | "
                  + " | ".join(metrics) + " |", "|---|---:|" + "---:|" * len(metrics)]
        for agent, rows in block.groupby("agent", sort=False):
            grids = [_grid(rows, m) for m in metrics]
            cells = [_interval(stratified_bootstrap([grid], iqm_of_strata), grid.size) for grid in grids]
            lines.append(f"| {agent}{marks.get((scenario, agent), '')} | {_count(rows, metrics[0])} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def improvement_table(runs: pd.DataFrame, metrics: Sequence[str] = METRICS, baselines: Sequence[str] = BASELINES,
                      marks: Mapping[tuple[str, str], str] | None = None) -> list[str]:
    """Markdown table: P(agent better than baseline) [95 % CI] per metric and baseline, averaged over the
    scenarios both ran, an agent marked as on any scenario (`agent_marks`); [] when no baseline ran."""
    marks = marks or {}
    present = [b for b in baselines if b in set(runs["agent"])]
    if not present:
        return []
    heads = [f"{m} vs {b}" for m in metrics for b in present]
    lines = ["### Probability of improvement P(agent better than baseline) [95 % CI]", "",
             "| agent | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for agent in dict.fromkeys(runs["agent"]):
        cells = []
        for metric in metrics:
            for baseline in present:
                both = [s for s in dict.fromkeys(runs["scenario"])
                        if {agent, baseline} <= set(runs.loc[runs["scenario"] == s, "agent"])]
                if agent == baseline or not both:
                    cells.append("—")
                    continue
                mine, theirs = strata(runs, agent, metric, both), strata(runs, baseline, metric, both)
                poi = probability_of_improvement(mine, theirs, lower_is_better=True, tie=TIES.get(metric, 0.0))
                cells.append(_interval(poi, min(part.size for part in mine + theirs)))
        shown = "".join(f" {m}" for m in (NONCAUSAL_MARK, EXCEEDED_MARK)
                        if any(a == agent and m in ms for (_, a), ms in marks.items()))
        lines.append(f"| {agent}{shown} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def markdown(metrics: pd.DataFrame, checksums: Mapping[str, str] | None = None, bounds: Sequence[str] = ()) -> str:
    """The RL statistics section of summary.md ('' when no learned controller has rows); `checksums`: learned
    controller -> its model's SHA-256 (equal models count once); `bounds`: the controllers that read the future."""
    if not has_learned(metrics):
        return ""
    runs, notes = agent_runs(metrics, checksums)
    notes += left_out(runs)
    lines = ["", "## RL statistics (IQM, stratified bootstrap, probability of improvement)", "",
             "Runs are training seeds × evaluation days (n); lower is better for every metric. IQM: mean of the "
             "middle 50 % of the runs; [low, high]: 95 % percentile interval of 2000 stratified bootstrap "
             "resamples (within each scenario, training seeds and days drawn independently, seed 0); with one "
             "training seed it is over evaluation days only and says nothing about another training run. At n = 5 "
             "runs such a 95 % interval holds the true value in about 90 % of draws (IQM), 83 % (mean). "
             "P(agent better than baseline): the chance "
             "that a random run of the agent has a lower value than a random run of the baseline (ties 1/2; unmet "
             f"energies at most {TIES['unmet_energy_kwh']:g} kWh apart are a tie), "
             "averaged over the scenarios both ran. docs/RL_STATISTICS.md tells how to read them.", "",
             *(f"- {note}" for note in notes), *([""] if notes else [])]
    marks = agent_marks(runs, bounds)
    lines += iqm_tables(runs, counted(runs, METRICS), marks)
    lines += improvement_table(runs, counted(runs, METRICS), marks=marks)
    return "\n".join([*lines, *mark_notes(marks)])


class Profile(NamedTuple):
    """Performance profiles of one metric: per agent, the fraction of runs <= each threshold and its band."""

    label: str
    taus: np.ndarray
    curves: dict[str, Interval]
    target: float
    """Threshold marked on the plot (NaN: none)."""
    scale: str
    """x-axis scale of the plot: log (ratios) or symlog (counts, linear below 1)."""


def _profile(runs: pd.DataFrame, column: str, label: str, target: float, top: float, scale: str) -> Profile:
    """Profiles of `column` for every agent at thresholds up to `top` (geometric from `top` / 40 for a log axis,
    linear below 1 and geometric above for symlog)."""
    scenarios = list(dict.fromkeys(runs["scenario"]))
    if scale == "log":
        taus = np.geomspace(top / 40, top, 241)
    else:
        taus = np.concatenate([np.linspace(0.0, 1.0, 41)[:-1], np.geomspace(1.0, max(top, 1.0), 201)])
    curves = {}
    for agent in dict.fromkeys(runs["agent"]):
        parts = [p for p in strata(runs, agent, column, scenarios) if p.size]
        if parts:  # none: the agent ran only where the normalising LLF did not
            curves[agent] = performance_profile(parts, taus, lower_is_better=True)
    return Profile(label, taus, curves, target, scale)


def llf_ratio(runs: pd.DataFrame) -> pd.Series:
    """Each run's unmet energy / LLF's on the same scenario and seed (1 when both are 0, inf when only LLF's
    is 0; NaN where LLF did not run)."""
    llf = runs[runs["agent"] == "llf"].set_index(["scenario", "seed"])["unmet_energy_kwh"]
    ref = pd.Series(list(zip(runs["scenario"], runs["seed"])), index=runs.index).map(llf.to_dict()).astype(float)
    unmet = runs["unmet_energy_kwh"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = unmet / ref
    return ratio.mask((ref == 0) & (unmet <= 1e-9), 1.0)


def profiles(metrics: pd.DataFrame, checksums: Mapping[str, str] | None = None) -> list[Profile]:
    """The unmet-energy profile (relative to LLF on the same episode when LLF ran, else in % of the energy
    asked) and the violation profile (the area limit or any network constraint), each over every agent's runs,
    scenarios as strata."""
    runs, _ = agent_runs(metrics, checksums)
    found: list[Profile] = []
    if "llf" in set(runs["agent"]):
        runs = runs.assign(llf_ratio=llf_ratio(runs)).dropna(subset=["llf_ratio"])
        finite = runs["llf_ratio"][np.isfinite(runs["llf_ratio"])]
        top = float(np.clip(finite.max() * 1.05 if len(finite) else 2.0, 2.0, 20.0))
        found.append(_profile(runs, "llf_ratio", "unmet energy / LLF's on the same episode\n(LLF 0 kWh: 1 if also 0, "
                              "else never reached)", RATIO_TARGET, top, "log"))
    elif "unmet_energy_pct" in runs:
        top = float(runs["unmet_energy_pct"].max()) * 1.05
        found.append(_profile(runs, "unmet_energy_pct", "unmet energy (% of the energy asked)", float("nan"), top,
                              "symlog"))
    [violations] = counted(runs, ["network_violation_steps"])
    top = float(runs[violations].max()) * 1.05
    found.append(_profile(runs, violations, "violation steps per episode (area limit or network)",
                          VIOLATION_TARGET, top, "symlog"))
    return found
