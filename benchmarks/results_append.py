"""Cost of recording one row in metrics.csv (`experiments.outputs.results.ResultsTable.add`: append + fsync) with 1,000
and 50,000 rows already in the file: it should not grow with the table. Printed with the fsync (the disk's
share, which varies with the machine's other writes) and without it (the code's share).

    python benchmarks/results_append.py
"""

from __future__ import annotations

import os
import tempfile
import time
from unittest import mock
from pathlib import Path

from experiments.commands.runner import CONTROLLER_COLUMNS, FAILURE_COLUMNS
from experiments.outputs.results import ResultsTable
from pev_env.metrics import METRIC_COLUMNS

COLUMNS = [*METRIC_COLUMNS, *CONTROLLER_COLUMNS, *FAILURE_COLUMNS]
TIMED = 200


def row(seed: int) -> dict:
    """A metrics row of the real width."""
    return {"controller": "edf", "scenario": "seed", "seed": seed, **{c: 1.0 + seed / 7 for c in COLUMNS},
            "package_version": "0.0", "plant_fingerprint": "0123456789ab", "settings_fingerprint": "ba9876543210"}


def per_row_ms(existing: int) -> tuple[float, float]:
    """Median milliseconds of `add` over TIMED rows, the file holding `existing` rows: with and without fsync."""
    with tempfile.TemporaryDirectory() as folder:
        table = ResultsTable(Path(folder) / "metrics.csv", COLUMNS, [row(s) for s in range(existing - 1)])
        table.add(row(existing - 1))  # the one rewrite: header and the rows before
        medians = []
        for fsync in (os.fsync, lambda _fd: None):
            times = []
            with mock.patch("os.fsync", fsync):
                for seed in range(existing + len(medians) * TIMED, existing + (len(medians) + 1) * TIMED):
                    start = time.perf_counter()
                    table.add(row(seed))
                    times.append(time.perf_counter() - start)
            medians.append(sorted(times)[TIMED // 2] * 1e3)
    return medians[0], medians[1]


if __name__ == "__main__":
    for n in (1_000, 50_000):
        synced, written = per_row_ms(n)
        print(f"{n:>6} rows: {synced:.2f} ms per appended row with fsync, {written:.3f} ms without (median of {TIMED})")
