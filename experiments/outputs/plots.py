"""Figures from results tables (matplotlib, Agg backend): labelled axes with units, legends, 150 dpi."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from experiments.outputs.summary import counted, mean_ci  # noqa: E402

LABELS: dict[str, str] = {
    "unmet_energy_kwh": "Unmet energy (kWh)",
    "unmet_energy_pct": "Unmet energy (%)",
    "area_violation_steps": "Area-limit violations (steps)",
    "network_violation_steps": "Limit violations (steps; the area limit,\nor any constraint of a site network)",
    "area_overload_kwh": "Energy above the area limit (kWh)",
    "local_violation_steps": "Local violations (steps)",
    "step_time_median_ms": "Median time per step (ms)",
    "gap_mean": "Mean relative objective gap\nto the centralised MPC",
}
GAP_FLOOR = 1e-16
"""Gaps below this (solver round-off, or exactly 0) are drawn at it on the log axis."""


def _grid(n: int, width: float = 4.2, height: float = 2.6) -> tuple[plt.Figure, np.ndarray]:
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                             sharex=True, sharey=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def _held(time_min: Any, *values: Any) -> tuple[np.ndarray, ...]:
    """`time_min` and `values` as float arrays with the last sample held for one more step, so a `step="post"`
    drawing shows the last step as long as the others (a trace's row is the start of its step)."""
    t = np.asarray(time_min, dtype=float)
    end = [2 * t[-1] - t[-2]] if len(t) > 1 else []
    return (np.r_[t, end], *(np.r_[np.asarray(v, dtype=float), np.asarray(v, dtype=float)[-1:][:len(end)]]
                             for v in values))


def _against_limit(ax: plt.Axes, time_min: Any, value: Any, limit: Any, labels: tuple[str, str]) -> None:
    """`value` and `limit` (labels) as steps, every step above the limit shaded over its whole length (a single
    step too: a `where=` mask shades only between two samples above it)."""
    t, value, limit = _held(time_min, value, limit)
    ax.step(t, value, where="post", lw=1.2, label=labels[0])
    ax.step(t, limit, where="post", lw=1.0, ls="--", color="k", label=labels[1])
    over = value > limit + 1e-6
    if over.any():
        ax.fill_between(t, limit, np.where(over, value, limit), step="post", color="tab:red", alpha=0.35,
                        label="above limit")


def area_power(traces: Mapping[str, pd.DataFrame], title: str) -> plt.Figure:
    """Area power against P_ref over one episode, one panel per controller."""
    fig, axes = _grid(len(traces))
    for ax, (controller, trace) in zip(axes.flat, traces.items()):
        _against_limit(ax, trace["time_min"], trace["area_power_kw"], trace["P_ref_kw"], ("area power", "P_ref"))
        ax.set_title(controller, fontsize=10)
    return _finish_panels(fig, axes, "Power (kW)", title, legend=True)


def network_load(traces: Mapping[str, pd.DataFrame], title: str) -> plt.Figure:
    """The most loaded network constraint in % of its limit over one episode, one panel per controller
    (`traces`: columns time_min and load_pct, the largest 100 load / limit over the constraints at each step),
    the limit at 100 % and the steps above it shaded."""
    fig, axes = _grid(len(traces))
    for ax, (controller, trace) in zip(axes.flat, traces.items()):
        _against_limit(ax, trace["time_min"], trace["load_pct"], np.full(len(trace), 100.0),
                       ("most loaded constraint", "its limit (100 %)"))
        ax.set_title(controller, fontsize=10)
    return _finish_panels(fig, axes, "Load (% of limit)", title, legend=True)


def _legend_entries(axes: np.ndarray) -> tuple[list, list]:
    entries: dict[str, object] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    return list(entries.values()), list(entries)


def distinct_colors(n: int) -> list[tuple[float, ...]]:
    """`n` colours that differ: tab10 up to 10, tab20 up to 20, else evenly spaced hues of `turbo`."""
    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(n)]
    return [plt.get_cmap("turbo")(x) for x in np.linspace(0.03, 0.97, n)]


def metric_bars(metrics: pd.DataFrame, columns: Sequence[str] = ("unmet_energy_kwh", "network_violation_steps"),
                title: str = "Unmet energy and limit violations") -> plt.Figure:
    """Grouped bars (scenario groups, one bar per controller, each controller its own colour) with 95%
    t-interval error bars; the metrics are non-negative, so an interval never reaches below 0. One panel a row (at
    most 12 in wide, so the text stays legible when the figure is shrunk to a page); the legend is below the
    panels, never over the bars. Violations as the rows count them (`summary.counted`)."""
    columns = counted(metrics, columns)
    controllers = list(dict.fromkeys(metrics["controller"]))
    scenarios = list(dict.fromkeys(metrics["scenario"]))
    panel = float(np.clip(1.5 + 0.3 * len(controllers) * len(scenarios), 4.5, 12.0))
    ncol = min(len(controllers), 5)
    fig, axes = plt.subplots(len(columns), 1, figsize=(panel, 2.8 * len(columns) + 0.6 + 0.2 * len(controllers) / ncol),
                             squeeze=False)
    width = 0.8 / max(len(controllers), 1)
    colors = distinct_colors(len(controllers))
    for ax, col in zip(axes[:, 0], columns):
        for i, controller in enumerate(controllers):
            stats = [mean_ci(metrics.loc[(metrics["controller"] == controller) & (metrics["scenario"] == s), col])
                     for s in scenarios]
            means = np.array([m for m, _ in stats], dtype=float)  # NaN (no rows): no bar
            errs = np.nan_to_num(np.array([h for _, h in stats], dtype=float))
            below = np.minimum(errs, np.maximum(np.nan_to_num(means), 0.0))  # clipped at 0: never negative
            x = np.arange(len(scenarios)) + (i - (len(controllers) - 1) / 2) * width
            ax.bar(x, means, width, yerr=np.vstack([below, errs]), capsize=2, color=colors[i], label=controller)
        ax.set_xticks(np.arange(len(scenarios)), scenarios)
        ax.set_xlabel("Scenario")
        ax.set_ylabel(LABELS.get(col, col))
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{title} (mean, 95% CI)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    legend = fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=9, frameon=False)
    fig.canvas.draw()  # the legend's height as drawn: the panels start above it
    fig.tight_layout(rect=(0, legend.get_window_extent().height / fig.bbox.height, 1, 1))
    return fig


def pev_energy(socs: Mapping[str, pd.DataFrame], requested_kwh: np.ndarray, title: str) -> plt.Figure:
    """Energy delivered to each PEV (bars: last SOC - first SOC of the trace) against what it requested (black
    ticks), one panel per controller: the shortfall of every PEV is visible without 50 overlapping lines."""
    fig, axes = _grid(len(socs), width=max(4.2, min(9.0, 0.09 * len(requested_kwh) + 2.0)))
    pevs = np.arange(len(requested_kwh))
    for ax, (controller, soc) in zip(axes.flat, socs.items()):
        cols = [c for c in soc.columns if c.startswith("soc_")]
        values = soc[cols].to_numpy()
        delivered = values[-1] - values[0] if len(values) else np.zeros(len(cols))
        ax.bar(pevs[: len(delivered)], delivered, 0.8, color="tab:blue", label="delivered")
        ax.scatter(pevs, requested_kwh, marker="_", s=60, color="k", zorder=3, label="requested")
        ax.set_title(controller, fontsize=10)
    handles, labels = _legend_entries(axes)
    fig.legend(handles, labels, loc="upper right", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("PEV (index in the scenario)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _finish_panels(fig, axes, "Energy (kWh)", title, xlabel=None)


def _finish_panels(fig: plt.Figure, axes: np.ndarray, ylabel: str, title: str,
                   xlabel: str | None = "Time (min)", legend: bool = False) -> plt.Figure:
    """Grid lines, `xlabel` on the bottom row (None: as set), `ylabel` on the left column, title, tight layout;
    with `legend` the panels' entries in one row below them (never over a curve or the title)."""
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    for ax in axes[-1] if xlabel else ():
        ax.set_xlabel(xlabel)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    fig.suptitle(title)
    bottom = 0.0
    if legend:
        handles, labels = _legend_entries(axes)
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
        bottom = 0.45 / fig.get_figheight()  # inches of the legend row, as a fraction of the figure
    fig.tight_layout(rect=(0.0, bottom, 1.0, 1.0))
    return fig


def pareto(frame: pd.DataFrame, x: str, y: str, label: str, front: pd.Series, title: str) -> plt.Figure:
    """Scatter of `y` against `x` (log-log; y floored at GAP_FLOOR), Pareto-optimal points highlighted and joined."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ys = frame[y].clip(lower=GAP_FLOOR)
    ax.scatter(frame[x], ys, s=18, color="0.6", label="setting")
    best = frame[front].sort_values(x)
    ax.plot(best[x], ys[best.index], "o-", color="tab:red", ms=5, label="Pareto front")
    for i, r in best.iterrows():
        ax.annotate(str(r[label]), (r[x], ys[i]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(LABELS.get(x, x))
    ax.set_ylabel(LABELS.get(y, y))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def loglog(frame: pd.DataFrame, x: str, ys: Mapping[str, str], group: str, title: str) -> plt.Figure:
    """One log-log panel per column in `ys` (column -> axis label), one line per `group` value."""
    fig, axes = plt.subplots(1, len(ys), figsize=(5.0 * len(ys), 3.8), squeeze=False)
    for ax, (col, label) in zip(axes[0], ys.items()):
        for name, part in frame.groupby(group, sort=False):
            part = part.sort_values(x)
            ax.plot(part[x], part[col], "o-", label=str(name))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("Number of stations")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curve(log: pd.DataFrame, columns: Sequence[str] = ("unmet_energy_pct", "network_violation_steps"),
                   window: int = 20) -> plt.Figure:
    """Training episodes' metrics against the samples trained, one line per scenario (rolling mean of
    `window` episodes), one panel per metric, axes labelled in words with units (violations as the log counts
    them, `summary.counted`)."""
    columns = counted(log, columns)
    fig, axes = plt.subplots(1, len(columns), figsize=(4.8 * len(columns), 3.4), squeeze=False)
    for ax, col in zip(axes.flat, columns):
        for scenario, group in log.groupby("scenario", sort=False):
            ax.plot(group["timesteps"], group[col].rolling(window, min_periods=1).mean(), label=scenario)
        ax.set_xlabel("Station-samples trained")
        ax.set_ylabel(LABELS.get(col, col))
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize="small")
    fig.suptitle(f"Learning curve (rolling mean of {window} training episodes)")
    fig.tight_layout()
    return fig


def _colours(n: int) -> list:
    """`n` distinct colours (tab10, tab20 beyond 10)."""
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def performance_profiles(profiles: Sequence[Any], title: str = "Performance profiles") -> plt.Figure:
    """One panel per `experiments.learning.rl_report.Profile`: the fraction of runs within each threshold, one line (its
    own colour and dash, so equal curves stay visible) and 95 % bootstrap band per agent, the target dashed."""
    fig, axes = plt.subplots(1, len(profiles), figsize=(5.0 * len(profiles) + 1.6, 3.9), squeeze=False)
    dashes = ("-", "--", ":", "-.")
    for ax, profile in zip(axes[0], profiles):
        for i, (colour, (agent, curve)) in enumerate(zip(_colours(len(profile.curves)), profile.curves.items())):
            ax.step(profile.taus, curve.point, where="post", color=colour, ls=dashes[i % len(dashes)],
                    lw=1.8 - 0.1 * (i % 4), label=agent)
            ax.fill_between(profile.taus, np.clip(curve.low, 0, 1), np.clip(curve.high, 0, 1), step="post",
                            color=colour, alpha=0.12, lw=0)
        heading = "no target"
        if np.isfinite(profile.target):
            ax.axvline(profile.target, color="k", ls=(0, (4, 2)), lw=1.0)
            heading = f"target τ = {profile.target:g} (black dashes)"
        if profile.scale == "log":
            ax.set_xscale("log")
        else:
            ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(profile.taus[0], profile.taus[-1])
        ax.set_ylim(0, 1.02)
        ax.set_title(heading, fontsize=9)
        ax.set_xlabel(f"threshold τ: {profile.label}")
        ax.set_ylabel("fraction of runs ≤ τ")
        ax.grid(alpha=0.3, which="both")
    handles, labels = _legend_entries(axes)
    legend = fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.suptitle(f"{title} (runs = training seeds × days; bands: 95 % stratified bootstrap)")
    fig.canvas.draw()  # the legend's width as drawn: the panels end left of it, never under it
    fig.tight_layout(rect=(0, 0, 1 - legend.get_window_extent().width / fig.bbox.width, 1))
    return fig


def seed_curves(curves: Mapping[str, Any], ylabel: str, title: str) -> plt.Figure:
    """Learning curves over training seeds, one panel per scenario: `curves` maps a scenario to
    (samples, Interval of the statistic across seeds, number of seeds)."""
    fig, axes = plt.subplots(1, len(curves), figsize=(4.6 * len(curves), 3.4), squeeze=False)
    for ax, (colour, (scenario, (samples, curve, seeds))) in zip(axes[0], zip(_colours(len(curves)),
                                                                           curves.items())):
        ax.plot(samples, curve.point, color=colour, lw=1.4, label=f"IQM over {seeds} seeds")
        ax.fill_between(samples, curve.low, curve.high, color=colour, alpha=0.2, lw=0, label="95 % bootstrap band")
        ax.set_title(scenario, fontsize=10)
        ax.set_xlabel("station-samples trained")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def close(fig: plt.Figure) -> None:
    """Release a figure."""
    plt.close(fig)
