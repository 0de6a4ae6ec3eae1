"""experiments.learning.rlstats against hand-computed cases, the coverage of its intervals and its stratification."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from experiments.learning.rlstats import (iqm, iqm_of_strata, performance_profile, probability_of_improvement, resample,
                                 stratified_bootstrap)


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert iqm(np.array([8.0, 1, 7, 2, 6, 3, 5, 4])) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert iqm(np.array([0.0, 0, 0, 0, 100])) == pytest.approx(0.0)  # one run cut from each end
    assert iqm([np.array([1.0, 2, 3, 4]), np.array([5.0, 6, 7, 8])]) == pytest.approx(4.5)  # strata pooled
    assert iqm(np.array([[1.0, 2, 3, 100], [0, 0, 4, 4]])) == pytest.approx([2.5, 2.0])  # one per row


def test_bootstrap_of_a_constant_is_a_point_and_is_reproducible() -> None:
    assert tuple(stratified_bootstrap([np.full(5, 3.0)])) == (3.0, 3.0, 3.0)
    x = [np.arange(10.0), np.arange(7.0) ** 2]
    assert stratified_bootstrap(x) == stratified_bootstrap(x)
    assert stratified_bootstrap(x, seed=1) != stratified_bootstrap(x)


def test_bootstrap_interval_of_two_values_by_hand() -> None:
    """Mean of a resample of [0, 1] (n = 2): 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4; the 95 % percentile
    interval is therefore [0, 1] and the point 1/2."""
    point, low, high = stratified_bootstrap([np.array([0.0, 1.0])], lambda p: p[0].mean(axis=-1))
    assert (point, low, high) == (0.5, 0.0, 1.0)


def test_resampling_stays_within_each_stratum() -> None:
    """Two strata of constants: every resample keeps 3 runs of each, so the pooled mean is exactly 5 (pooled,
    unstratified resampling would vary); and a resample only holds values of its own stratum."""
    parts = [np.zeros(3), np.full(3, 10.0)]
    point, low, high = stratified_bootstrap(parts, lambda p: np.concatenate(p, axis=-1).mean(axis=-1))
    assert (point, low, high) == (5.0, 5.0, 5.0)
    drawn = resample([np.array([1.0, 2, 3]), np.array([10.0, 20])], 200, np.random.default_rng(0))
    assert drawn[0].shape == (200, 3) and set(np.unique(drawn[0])) == {1.0, 2.0, 3.0}
    assert drawn[1].shape == (200, 2) and set(np.unique(drawn[1])) == {10.0, 20.0}


def test_interval_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    """300 draws of 30 normal samples: the bootstrap interval of the mean holds 0 in ~95 % of them (the
    percentile bootstrap is slightly liberal at n = 30; the tolerance is loose and the draws fixed)."""
    rng = np.random.default_rng(2024)
    hits = 0
    for i in range(300):
        _, low, high = stratified_bootstrap([rng.normal(0.0, 1.0, 30)], lambda p: p[0].mean(axis=-1), n_boot=500,
                                            seed=i)
        hits += low <= 0.0 <= high
    assert 0.88 <= hits / 300 <= 0.99


def test_iqm_interval_holds_the_population_iqm() -> None:
    """Normal samples: the population IQM is the mean, 0; the IQM interval of 200 runs holds it, is narrow."""
    _, low, high = stratified_bootstrap([np.random.default_rng(5).normal(0.0, 1.0, 200)], iqm_of_strata)
    assert low < 0.0 < high and high - low < 0.5


def test_probability_of_improvement_tiny_cases() -> None:
    assert probability_of_improvement([np.array([1.0, 2])], [np.array([0.0, 0])]).point == 1.0
    assert probability_of_improvement([np.array([1.0])], [np.array([1.0])]).point == 0.5  # a tie counts 1/2
    # values at most `tie` apart are a tie, either way round; beyond it the lower wins
    assert probability_of_improvement([np.array([1.0, 1.0])], [np.array([1.0 + 1e-8, 1.0 - 1e-8])],
                                      lower_is_better=True, tie=1e-3).point == 0.5
    assert probability_of_improvement([np.array([1.0])], [np.array([1.002])], lower_is_better=True,
                                      tie=1e-3).point == 1.0
    # lower is better: 1 beats 2, 3 loses to 2 -> 1/2
    assert probability_of_improvement([np.array([1.0, 3])], [np.array([2.0])], lower_is_better=True).point == 0.5
    # averaged over tasks: 1 on the first, 0 on the second
    poi = probability_of_improvement([np.array([5.0]), np.array([0.0])], [np.array([1.0]), np.array([9.0])])
    assert tuple(poi) == (0.5, 0.5, 0.5)
    # a Mann-Whitney U statistic divided by m n
    x, y = np.array([0.3, 1.2, 2.0, 2.0, 5.0]), np.array([0.1, 2.0, 3.0])
    u = stats.mannwhitneyu(x, y).statistic
    assert probability_of_improvement([x], [y]).point == pytest.approx(u / 15)
    with pytest.raises(ValueError, match="tasks"):
        probability_of_improvement([x], [y, y])


def test_probability_of_improvement_interval_resamples_both() -> None:
    point, low, high = probability_of_improvement([np.array([1.0, 2, 3, 4])], [np.array([2.5, 2.5, 2.5])])
    assert point == 0.5 and 0.0 <= low < 0.5 < high <= 1.0


def test_performance_profile_fractions_and_bands() -> None:
    scores = [np.array([1.0, 2]), np.array([3.0, 4])]
    taus = np.array([0.0, 2.5, 4.0])
    assert performance_profile(scores, taus).point.tolist() == [1.0, 0.5, 0.0]
    profile = performance_profile(scores, taus, lower_is_better=True)
    assert profile.point.tolist() == [0.0, 0.5, 1.0]
    assert (profile.low >= 0).all() and (profile.high <= 1).all() and (profile.low <= profile.point).all()
    # strata fixed: the first stratum is always <= 2.5 and the second never, so the band at 2.5 is a point
    assert (profile.low[1], profile.high[1]) == (0.5, 0.5)


def test_empty_stratum_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one run"):
        stratified_bootstrap([np.array([1.0]), np.array([])])
