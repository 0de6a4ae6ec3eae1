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
