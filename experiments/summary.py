"""Mean and 95% confidence interval (Student t) per controller x scenario, as a markdown report."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

SUMMARY_METRICS: tuple[str, ...] = (
    "unmet_energy_kwh",
    "unmet_energy_pct",
    "area_violation_steps",
    "area_overload_kwh",
    "local_violation_steps",
    "step_time_median_ms",
)


def mean_ci(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width) of the two-sided `level` t-interval; half-width is NaN for fewer than 2 values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size < 2:
        return float(x.mean()), float("nan")
    sem = x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean()), float(stats.t.ppf(0.5 + level / 2, df=x.size - 1) * sem)


def summarise(metrics: pd.DataFrame, columns: Sequence[str] = SUMMARY_METRICS) -> pd.DataFrame:
    """Long table: controller, scenario, metric, n, mean, ci95 (half-width)."""
    records = []
    present = [c for c in columns if c in metrics.columns]
    for (scenario, controller), group in metrics.groupby(["scenario", "controller"], sort=False):
        for col in present:
            mean, half = mean_ci(group[col].to_numpy(dtype=float))
            records.append(
                {"scenario": scenario, "controller": controller, "metric": col,
                 "n": int(group[col].notna().sum()), "mean": mean, "ci95": half}
            )
    return pd.DataFrame(records, columns=["scenario", "controller", "metric", "n", "mean", "ci95"])


def _cell(mean: float, half: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    digits = 2 if abs(mean) < 1000 else 0
    return f"{mean:.{digits}f}" if not np.isfinite(half) else f"{mean:.{digits}f} ± {half:.{digits}f}"


def markdown(metrics: pd.DataFrame, columns: Sequence[str] = SUMMARY_METRICS, title: str = "Summary") -> str:
    """One markdown table per scenario: rows = controllers (in run order), cells = mean ± 95% CI."""
    table = summarise(metrics, columns)
    lines = [f"# {title}", "", "Mean ± half-width of the 95% t confidence interval over seeds "
             f"(seeds: {', '.join(str(s) for s in sorted(metrics['seed'].unique()))})." if len(metrics) else "No rows.", ""]
    for scenario, block in table.groupby("scenario", sort=False):
        shown = [c for c in columns if c in set(block["metric"])]
        lines += [f"## {scenario}", "", "| controller | n | " + " | ".join(shown) + " |",
                  "|---|---:|" + "---:|" * len(shown)]
        for controller, rows in block.groupby("controller", sort=False):
            by_metric = rows.set_index("metric")
            cells = [_cell(by_metric.at[c, "mean"], by_metric.at[c, "ci95"]) for c in shown]
            lines.append(f"| {controller} | {int(rows['n'].max())} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
