"""Cost of recording one row in metrics.csv (`experiments.results.ResultsTable.add`: append + fsync) with 1,000
and 50,000 rows already in the file: it should not grow with the table.

    python benchmarks/results_append.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from experiments.results import ResultsTable
from experiments.runner import CONTROLLER_COLUMNS, FAILURE_COLUMNS
from pev_env.metrics import METRIC_COLUMNS

COLUMNS = [*METRIC_COLUMNS, *CONTROLLER_COLUMNS, *FAILURE_COLUMNS]
TIMED = 200


def row(seed: int) -> dict:
    """A metrics row of the real width."""
    return {"controller": "edf", "scenario": "seed", "seed": seed, **{c: 1.0 + seed / 7 for c in COLUMNS},
            "package_version": "0.0", "plant_fingerprint": "0123456789ab", "settings_fingerprint": "ba9876543210"}


def per_row_ms(existing: int) -> float:
    """Median milliseconds of `add` over TIMED rows, the file holding `existing` rows."""
    with tempfile.TemporaryDirectory() as folder:
        table = ResultsTable(Path(folder) / "metrics.csv", COLUMNS, [row(s) for s in range(existing - 1)])
        table.add(row(existing - 1))  # the one rewrite: header and the rows before
        times = []
        for seed in range(existing, existing + TIMED):
            start = time.perf_counter()
            table.add(row(seed))
            times.append(time.perf_counter() - start)
    return sorted(times)[TIMED // 2] * 1e3


if __name__ == "__main__":
    for n in (1_000, 50_000):
        print(f"{n:>6} rows: {per_row_ms(n):.3f} ms per appended row (median of {TIMED}, fsync included)")
