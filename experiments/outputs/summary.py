"""Mean and 95% confidence interval (Student t) per controller x scenario, paired per-seed differences
against a reference controller, and marks for solver failures, as a markdown report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

SUMMARY_METRICS: tuple[str, ...] = (
    "unmet_energy_kwh",
    "unmet_energy_pct",
    "area_violation_steps",
    "network_violation_steps",
    "area_overload_kwh",
    "local_violation_steps",
    "step_time_median_ms",
)
PAIRED_METRICS: tuple[str, ...] = SUMMARY_METRICS[:-1]
NONNEGATIVE = frozenset(SUMMARY_METRICS)
"""Metrics that cannot be below 0: their t-intervals are shown clipped at 0 (their paired differences are not)."""


def counted(metrics: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """`columns` as the rows can count them: network_violation_steps (steps above the area limit, or any constraint
    of a site network) becomes area_violation_steps where the rows predate site networks and lack it."""
    fallback = "network_violation_steps" not in metrics.columns
    return ["area_violation_steps" if fallback and c == "network_violation_steps" else c for c in columns]
"""Metrics compared seed by seed against the reference (step times are not paired quantities)."""
FAILURE_MARK = "⚠"
EXCEEDED_MARK = "‡"
"""Marks a controller of the paired differences that exceeded a shared limit: its energy is not comparable."""
NONCAUSAL_MARK = "°"
"""Marks a controller that reads the episode's future sessions (Policy.causal False): a bound."""
TROUBLE_COLUMNS: tuple[str, ...] = ("station_fallbacks", "nonconverged_steps")


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


def _cell(mean: float, half: float, nonnegative: bool = False) -> str:
    """'mean ± half'; for a `nonnegative` metric whose interval would reach below 0, 'mean [0, mean + half]'."""
    if not np.isfinite(mean):
        return "n/a"
    digits = 2 if abs(mean) < 1000 else 0
    text = f"{mean:.{digits}f}".removeprefix("-") if round(mean, digits) == 0 else f"{mean:.{digits}f}"
    if not np.isfinite(half):
        return text
    if nonnegative and mean - half < 0:
        return f"{text} [0, {mean + half:.{digits}f}]"
    return f"{text} ± {half:.{digits}f}"


def paired(metrics: pd.DataFrame, reference: str, columns: Sequence[str] = PAIRED_METRICS) -> pd.DataFrame:
    """Long table: scenario, controller, metric, n (seeds run by both), mean and ci95 of the per-seed
    differences controller - `reference`."""
    records = []
    present = [c for c in columns if c in metrics.columns]
    for scenario, block in metrics.groupby("scenario", sort=False):
        ref = block[block["controller"] == reference].set_index("seed")
        for controller, group in block[block["controller"] != reference].groupby("controller", sort=False):
            both = group.set_index("seed").index.intersection(ref.index)
            for col in present:
                diff = group.set_index("seed").loc[both, col].to_numpy(float) - ref.loc[both, col].to_numpy(float)
                mean, half = mean_ci(diff)
                records.append({"scenario": scenario, "controller": controller, "metric": col,
                                "n": int(np.isfinite(diff).sum()), "mean": mean, "ci95": half})
    return pd.DataFrame(records, columns=["scenario", "controller", "metric", "n", "mean", "ci95"])


def troubled(metrics: pd.DataFrame) -> pd.DataFrame:
    """Rows with station fallbacks or non-converged steps."""
    present = [c for c in TROUBLE_COLUMNS if c in metrics.columns]
    if not present or metrics.empty:
        return metrics.iloc[0:0]
    return metrics[(metrics[present].fillna(0) > 0).any(axis=1)]


def exceeded(metrics: pd.DataFrame) -> dict[tuple[str, str], int]:
    """(scenario, controller) -> its steps above a shared limit (the area limit or a site-network constraint,
    `counted` network_violation_steps) summed over its rows, where there are any."""
    [column] = counted(metrics, ["network_violation_steps"])
    if metrics.empty or column not in metrics:
        return {}
    steps = metrics.groupby(["scenario", "controller"], sort=False)[column].sum()
    return {key: int(n) for key, n in steps.items() if n > 0}


def network_label(plant: Mapping[str, Any]) -> str:
    """The site network of a plant record (run.json `plants`) in words; '' for the area limit."""
    spec = str(plant.get("network", "area"))
    if spec == "caltech":
        return f"caltech, transformer {plant['transformer_kw']:g} kW"
    if spec == "jpl":
        return f"jpl, transformers {plant['jpl_first_transformer_kw']:g} / {plant['jpl_third_fourth_transformer_kw']:g} kW"
    if spec.startswith("network:"):
        return f"file {spec[len('network:'):]}"
    return "" if spec == "area" else spec


def _tables(table: pd.DataFrame, columns: Sequence[str], heading: str, marks: Mapping[tuple[str, str], str],
            networks: Mapping[str, str], nonnegative: frozenset[str] = frozenset()) -> list[str]:
    """One markdown table per scenario of a long table (scenario, controller, metric, n, mean, ci95); `marks`:
    (scenario, controller) -> the marks after its name."""
    lines: list[str] = []
    for scenario, block in table.groupby("scenario", sort=False):
        shown = [c for c in columns if c in set(block["metric"])]
        title = heading.format(scenario=scenario) + (f" (network {networks[scenario]})" if networks.get(scenario) else "")
        lines += [title, "", "| controller | n | " + " | ".join(shown) + " |",
                  "|---|---:|" + "---:|" * len(shown)]
        for controller, rows in block.groupby("controller", sort=False):
            by_metric = rows.set_index("metric")
            cells = [_cell(by_metric.at[c, "mean"], by_metric.at[c, "ci95"], c in nonnegative) for c in shown]
            lines.append(f"| {controller}{marks.get((scenario, controller), '')} | {int(rows['n'].max())} | "
                         + " | ".join(cells) + " |")
        lines.append("")
    return lines


def failure_note(metrics: pd.DataFrame) -> str:
    """One line on the rows with solver failures ('' when there are none)."""
    bad = troubled(metrics)
    if bad.empty:
        return ""
    steps, fallbacks = (int(bad[c].sum()) if c in bad else 0 for c in ("nonconverged_steps", "station_fallbacks"))
    return (f"{len(bad)} of {len(metrics)} runs had solver failures ({steps} non-converged steps, {fallbacks} "
            f"station fallbacks): "
            + ", ".join(f"{r.controller}/{r.scenario}/{r.seed}" for r in bad.itertuples()))


def markdown(metrics: pd.DataFrame, columns: Sequence[str] = SUMMARY_METRICS, title: str = "Summary",
             reference: str = "", networks: Mapping[str, str] | None = None, bounds: Sequence[str] = ()) -> str:
    """One markdown table per scenario: rows = controllers (in run order), cells = mean ± 95% CI; then, if
    `reference` ran, the paired per-seed differences against it; a controller that exceeded a shared limit is
    marked EXCEEDED_MARK with a note (in the paired differences, or without them in the first tables); controllers
    with solver failures marked FAILURE_MARK.
    `networks`: scenario -> its site network in words (`network_label`), shown in its heading; `bounds`: the
    controllers that read the episode's future sessions (`registry.is_causal` False), marked NONCAUSAL_MARK."""
    networks = networks or {}
    table = summarise(metrics, columns)
    lines = [f"# {title}", "", "Mean ± half-width of the 95% t confidence interval over seeds "
             f"(seeds: {', '.join(str(s) for s in sorted(metrics['seed'].unique()))}); an interval that would reach "
             "below 0, which these metrics cannot, is shown as [0, high]." if len(metrics) else "No rows.", ""]
    marks = {(r.scenario, r.controller): f" {FAILURE_MARK}" for r in troubled(metrics).itertuples()}
    bounds = [c for c in dict.fromkeys(metrics["controller"]) if c in bounds] if len(metrics) else []
    marks.update({(s, c): f" {NONCAUSAL_MARK}" + marks.get((s, c), "")
                  for s, c in zip(metrics["scenario"], metrics["controller"]) if c in bounds})
    over = exceeded(metrics)
    over_marks = {**marks, **{key: marks.get(key, "") + f" {EXCEEDED_MARK}" for key in over}}
    has_pairs = bool(reference and len(metrics) and reference in set(metrics["controller"]))
    lines += _tables(table, columns, "## {scenario}", marks if has_pairs else over_marks, networks, NONNEGATIVE)
    if has_pairs:
        lines += [f"Paired differences against {reference}: mean ± half-width of the 95% t interval of the per-seed "
                  f"differences (controller - {reference}) over the seeds both ran.", ""]
        lines += _tables(paired(metrics, reference), PAIRED_METRICS, f"## {{scenario}}: minus {reference}",
                         over_marks, networks)
    if over:
        lines += [f"{EXCEEDED_MARK} exceeded a shared limit (the area limit or a site-network constraint): its "
                  f"energy is not comparable with that of a controller that kept the limits ("
                  + "; ".join(f"{c}{' (the reference)' if has_pairs and c == reference else ''} on {s} in {n} steps"
                              for (s, c), n in over.items()) + ").", ""]
    if bounds:
        lines += [f"{NONCAUSAL_MARK} reads the episode's future sessions ({', '.join(bounds)}): a bound on what knowing "
                  "them is worth, not a controller a site can run.", ""]
    note = failure_note(metrics)
    if note:
        lines += [f"{FAILURE_MARK} {note}. See station_fallbacks, nonconverged_steps and "
                  "coordination_iterations_max in metrics.csv.", ""]
    return "\n".join(lines)
