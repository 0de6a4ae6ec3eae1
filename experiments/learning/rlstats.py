"""Aggregate statistics for few-run RL evaluations (Agarwal et al. 2021, "Deep RL at the edge of the statistical
precipice"; the definitions of the archived `rliable` library), in numpy.

Scores come as *strata*: one array of runs per task (here: per scenario). A 1-D array is runs that are
independent; a 2-D array (training seeds x evaluation days, every pair run) is resampled as a crossed design,
training seeds and days drawn with replacement independently and every pair of the draws kept, so that the runs
of one day under several training seeds never pass for independent samples (with one training seed it is the
1-D case). Every function takes `lower_is_better` where the direction matters, so unmet energy and violation
steps (lower is better) are never silently treated as rewards.

- `iqm`: interquartile mean, the mean of the middle 50 % of all runs of all tasks (`scipy.stats.trim_mean(x,
  0.25)` of the flattened scores).
- `stratified_bootstrap`: percentile interval of any statistic, the runs of each stratum resampled with
  replacement (a grid by its rows and columns) independently of the other strata (a fixed seed: the same call
  gives the same interval).
- `probability_of_improvement`: P(X better than Y), Mann-Whitney style (ties count 1/2), averaged over tasks.
- `performance_profile`: the fraction of runs whose score is within a threshold tau.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats

N_BOOT = 2000
"""Bootstrap resamples (rliable's default)."""
SEED = 0
"""Seed of the bootstrap generator: intervals are reproducible."""

Strata = Sequence[np.ndarray]
Statistic = Callable[[list[np.ndarray]], np.ndarray]
"""Maps one array per stratum, of shape (..., n_i), to an array of shape (...) or (..., k); the leading axes are
bootstrap replicates (none for the point estimate)."""


class Interval(NamedTuple):
    """A point estimate and the bounds of its percentile interval (arrays for a vector statistic)."""

    point: np.ndarray
    low: np.ndarray
    high: np.ndarray


def _strata(samples: Strata) -> list[np.ndarray]:
    """The strata as float arrays: a 2-D one (training seeds x days) kept as a grid, anything else flattened."""
    parts = [np.asarray(s, dtype=float) for s in samples]
    parts = [p if p.ndim == 2 else p.ravel() for p in parts]
    if not parts or any(p.size == 0 for p in parts):
        raise ValueError("every stratum needs at least one run")
    return parts


def iqm(scores: np.ndarray | Strata, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the 25 % trimmed mean along `axis` (a list of strata is flattened first)."""
    if isinstance(scores, (list, tuple)):
        scores = np.concatenate([p.ravel() for p in _strata(scores)])
    return np.asarray(stats.trim_mean(np.asarray(scores, dtype=float), 0.25, axis=axis))


def iqm_of_strata(parts: list[np.ndarray]) -> np.ndarray:
    """`iqm` of the runs of all strata pooled (the statistic of `stratified_bootstrap` for the IQM)."""
    return iqm(np.concatenate(parts, axis=-1))


def resample(parts: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`n_boot` resamples of every stratum, drawn with replacement within that stratum: shape (n_boot, n_i).
    A grid (s, d) draws s rows and d columns independently and keeps every pair: (n_boot, s * d)."""
    out = []
    for p in parts:
        if p.ndim == 2:
            rows = rng.integers(0, p.shape[0], size=(n_boot, p.shape[0]))
            cols = rng.integers(0, p.shape[1], size=(n_boot, p.shape[1]))
            out.append(p[rows[:, :, None], cols[:, None, :]].reshape(n_boot, p.size))
        else:
            out.append(p[rng.integers(0, p.size, size=(n_boot, p.size))])
    return out


def stratified_bootstrap(samples: Strata, statistic: Statistic = iqm_of_strata, n_boot: int = N_BOOT,
                         level: float = 0.95, seed: int = SEED) -> Interval:
    """Point estimate and two-sided percentile `level` interval of `statistic`, resampling the runs within each
    stratum independently (rliable's `StratifiedBootstrap` with the percentile method)."""
    if not 0 < level < 1:
        raise ValueError(f"level {level}: must be in (0, 1)")
    parts = _strata(samples)
    point = np.asarray(statistic([p.ravel() for p in parts]), dtype=float)
    boot = np.asarray(statistic(resample(parts, n_boot, np.random.default_rng(seed))), dtype=float)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(boot, [tail, 100 - tail], axis=0)
    return Interval(point[()], low, high)  # [()]: a scalar statistic gives numpy scalars, like the bounds


def _better(x: np.ndarray, y: np.ndarray, lower_is_better: bool, tie: float = 0.0) -> np.ndarray:
    """Mann-Whitney U / (m n) over the last axes: P(x better than y) + P(tie) / 2, values at most `tie` apart
    tied."""
    diff = x[..., :, None] - y[..., None, :]
    if lower_is_better:
        diff = -diff
    return ((diff > tie) + 0.5 * (np.abs(diff) <= tie)).mean(axis=(-2, -1))


def probability_of_improvement(x: Strata, y: Strata, lower_is_better: bool = False, n_boot: int = N_BOOT,
                               level: float = 0.95, seed: int = SEED, tie: float = 0.0) -> Interval:
    """P(X > Y) averaged over tasks (`x[t]`, `y[t]` the runs of both algorithms on task t; "better" means lower
    when `lower_is_better`; values at most `tie` apart are a tie, counted 1/2), with the stratified bootstrap
    interval (the runs of X and of Y resampled within each task independently)."""
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} tasks, y {len(y)}")
    tasks = len(x)

    def statistic(parts: list[np.ndarray]) -> np.ndarray:
        return np.mean([_better(parts[t], parts[tasks + t], lower_is_better, tie) for t in range(tasks)], axis=0)

    return stratified_bootstrap([*x, *y], statistic, n_boot, level, seed)


def performance_profile(scores: Strata, taus: np.ndarray, lower_is_better: bool = False, n_boot: int = N_BOOT,
                        level: float = 0.95, seed: int = SEED) -> Interval:
    """Fraction of all runs with score > tau (score <= tau when `lower_is_better`) for every tau, with stratified
    bootstrap bands (within [0, 1] by construction)."""
    taus = np.asarray(taus, dtype=float)

    def statistic(parts: list[np.ndarray]) -> np.ndarray:
        runs = np.concatenate(parts, axis=-1)[..., None]
        hit = runs <= taus if lower_is_better else runs > taus
        return hit.mean(axis=-2)

    return stratified_bootstrap(scores, statistic, n_boot, level, seed)
