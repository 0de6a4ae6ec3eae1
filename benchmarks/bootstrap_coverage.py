"""Coverage of the 95 % stratified-bootstrap intervals of `experiments.learning.rlstats` (IQM and mean, 2000 resamples)
on normal samples whose true IQM and mean are 0: the fraction of 1000 draws whose interval holds 0, for the
numbers of runs an evaluation has (5 days of one training seed; 3 or 5 seeds x 5 days; 50).

    python benchmarks/bootstrap_coverage.py
"""

from __future__ import annotations

import numpy as np

from experiments.learning.rlstats import iqm_of_strata, stratified_bootstrap

DRAWS = 1000


def main() -> None:
    rng = np.random.default_rng(7)
    for n in (5, 15, 25, 50):
        hits = {"IQM": 0, "mean": 0}
        for i in range(DRAWS):
            x = rng.normal(0.0, 1.0, n)
            for name, statistic in (("IQM", iqm_of_strata), ("mean", lambda p: p[0].mean(axis=-1))):
                _, low, high = stratified_bootstrap([x], statistic, seed=i)
                hits[name] += low <= 0.0 <= high
        print(f"n = {n:2d} runs: coverage of the nominal 95 % interval: IQM {hits['IQM'] / DRAWS:.3f}, "
              f"mean {hits['mean'] / DRAWS:.3f} ({DRAWS} draws)")


if __name__ == "__main__":
    main()
