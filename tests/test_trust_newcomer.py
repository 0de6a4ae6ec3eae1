"""What a newcomer sees: --help lists every controller and scenario and shows the defaults with readable
placeholders; the comparison bars have one distinct colour per controller, a legend outside the bars and no
interval below 0; the per-PEV plot and the learning curve are labelled."""

from __future__ import annotations

import matplotlib.colors as mcolors
from matplotlib.container import BarContainer
import numpy as np
import pandas as pd
import pytest

from experiments.outputs import plots

from experiments.cli.main import build_parser
from experiments.controllers import registry


def help_text(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return " ".join(sub.format_help().split())


@pytest.mark.parametrize("command", ["compare", "evaluate", "scale"])
def test_help_lists_every_controller(command) -> None:
    text = help_text(command)
    for name in registry.controller_names():
        assert f" {name}," in text or f" {name} " in text, name
    assert "module:ClassName" in text


@pytest.mark.parametrize("command", ["compare", "evaluate", "train", "tune", "scale"])
def test_help_placeholders_are_readable_and_defaults_shown(command) -> None:
    text = help_text(command)
    assert "OPT_" not in text and "--out DIR" in text and "--seeds SEEDS" in text
    assert "(default: " in text
    if command == "compare":
        assert "--seeds SEEDS scenario seeds: integers and inclusive ranges, e.g. 0-4,10 (default: 0-4)" in text
    if command == "train":
        assert "(default: 1000-1099)" in text


def _metrics(n_controllers: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"controller": f"c{i}", "scenario": s, "seed": seed,
             "unmet_energy_kwh": float(rng.uniform(0, 5)) if i else 0.0,
             "area_violation_steps": float(seed == 0 and i == 1) * 9.0}  # one outlier: a wide interval around 3
            for i in range(n_controllers) for s in ("seed", "seed-20") for seed in range(3)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n", [3, 11, 14, 25])
def test_bars_have_distinct_colours_outside_legend_and_no_negative_interval(n, tmp_path) -> None:
    fig = plots.metric_bars(_metrics(n))
    try:
        for ax in fig.axes:
            colours = {bars.get_label(): mcolors.to_hex(bars.patches[0].get_facecolor())
                       for bars in ax.containers if isinstance(bars, BarContainer)}
            assert len(set(colours.values())) == len(colours) == n
            assert ax.get_legend() is None  # the legend is the figure's, below the panels
            for line in ax.lines:  # error-bar caps: the lower ones never below 0
                assert np.nanmin(line.get_ydata()) >= 0
            for collection in ax.collections:  # error-bar segments
                for segment in collection.get_segments():
                    assert segment[:, 1].min() >= 0
        (legend,) = fig.legends
        fig.canvas.draw()
        box = legend.get_window_extent()
        for ax in fig.axes:
            assert box.y1 <= ax.get_window_extent().y0 + 1  # below every panel: covers no bar
        fig.savefig(tmp_path / "bars.png")
        assert (tmp_path / "bars.png").stat().st_size > 0
    finally:
        plots.close(fig)


def test_pev_energy_and_learning_curve_are_labelled(tmp_path) -> None:
    soc = pd.DataFrame({"step": [0, 1, 2], "time_min": [0, 5, 10], "soc_0_kwh": [1.0, 2.0, 3.0],
                        "soc_1_kwh": [4.0, 4.0, 4.5]})
    fig = plots.pev_energy({"edf": soc, "llf": soc}, np.array([3.0, 1.0]), "Energy per PEV")
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [2.0, 0.5]
    assert ax.get_ylabel() == "Energy (kWh)" and "PEV" in ax.get_xlabel()
    plots.close(fig)
    log = pd.DataFrame({"timesteps": [100, 200], "scenario": ["seed", "seed"], "unmet_energy_pct": [50.0, 40.0],
                        "area_violation_steps": [3.0, 1.0]})
    fig = plots.learning_curve(log)
    assert [a.get_ylabel() for a in fig.axes] == ["Unmet energy (%)", "Area-limit violations (steps)"]
    assert fig.axes[0].get_xlabel() == "Station-samples trained"
    plots.close(fig)


def _shaded_area(ax) -> float:
    """Area under the "above limit" fills of a panel (shoelace over their polygons), in x units x y units."""
    total = 0.0
    for collection in ax.collections:
        if collection.get_label() == "above limit":
            for path in collection.get_paths():
                x, y = path.vertices.T
                total += 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    return total


@pytest.mark.parametrize("kind", ["area_power", "network_load"])
def test_every_step_above_the_limit_is_shaded_over_its_whole_length(kind) -> None:
    """A single step above the limit, a run of two and the episode's last step: each shaded for its 5 minutes
    (a `where=` mask shaded none of the single ones and one step less of each run)."""
    value = np.array([10.0, 40.0, 10.0, 10.0, 40.0, 40.0, 10.0, 10.0, 10.0, 40.0])
    time_min = 5.0 * np.arange(len(value))
    if kind == "area_power":
        fig = plots.area_power({"c": pd.DataFrame({"time_min": time_min, "area_power_kw": value,
                                                   "P_ref_kw": np.full(len(value), 30.0)})}, "t")
    else:
        fig = plots.network_load({"c": pd.DataFrame({"time_min": time_min, "load_pct": value + 70.0})}, "t")
    try:
        ax = fig.axes[0]
        assert _shaded_area(ax) == pytest.approx(4 * 10.0 * 5.0)  # 4 steps, 10 over the limit, 5 min each
        assert max(line.get_xdata().max() for line in ax.lines) == pytest.approx(50.0)  # the last step drawn
    finally:
        plots.close(fig)


def test_performance_profile_legend_covers_no_panel() -> None:
    """15 agents with long names (the default comparison's): the legend right of the panels, not over them."""
    from experiments.learning.rl_report import Profile
    from experiments.learning.rlstats import Interval

    taus = np.linspace(0.0, 100.0, 50)
    curve = Interval(taus / 100.0, taus / 110.0, np.minimum(taus / 90.0, 1.0))
    names = [f"controller-with-a-long-name-{i}" for i in range(15)]
    profile = Profile("threshold", taus, dict.fromkeys(names, curve), 10.0, "symlog")
    fig = plots.performance_profiles([profile, profile])
    try:
        fig.canvas.draw()
        (legend,) = fig.legends
        box = legend.get_window_extent()
        for ax in fig.axes:
            assert ax.get_window_extent().x1 <= box.x0 + 1
    finally:
        plots.close(fig)


def test_progress_moves_within_an_episode_run_in_this_process() -> None:
    from experiments.commands import runner
    from pev_env.scenarios import make_scenario
    from pev_mpc import EDF

    class Bar:
        n = 0.0
        updates: list[float] = []

        def update(self, amount: float = 1.0) -> None:
            self.n += amount
            self.updates.append(self.n)

    bar = Bar()
    config, scenario = make_scenario("seed", 0)
    with runner.step_progress(bar):
        runner.run_episode(EDF(), config, scenario, 0)
        bar.episode_finished()
    assert len(bar.updates) == config.n_steps - 1 and 0 < bar.updates[0] < bar.updates[-1] < 1
    assert bar.n == pytest.approx(0.0) and runner._STEP_HOOK is None  # the whole episode is counted by run_grid
