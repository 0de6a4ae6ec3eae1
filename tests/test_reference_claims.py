"""What README.md and docs/ say about the committed reference run and the code is what they hold: the results
table and the figures quoted in the prose are recomputed from results/reference/metrics.csv, and the documented
metric columns, configuration fields, per-PEV columns and plot files are the code's."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pev_env import ChargingCore, EnvConfig, make_scenario
from pev_env.metrics import METRIC_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
METRICS = pd.read_csv(ROOT / "results" / "reference" / "metrics.csv")
NETWORK = "acn-caltech-network"
SCENARIOS = ("seed", "seed-20", "acn-caltech", NETWORK)
PAGES = {name: (ROOT / name).read_text() for name in ("README.md", "docs/results.md")}


def _rows(controller: str, scenario: str) -> pd.DataFrame:
    return METRICS[(METRICS["controller"] == controller) & (METRICS["scenario"] == scenario)]


def _total(controller: str, scenario: str) -> float:
    return float(_rows(controller, scenario)["unmet_energy_kwh"].sum())


def _more(controller: str, than: str, scenario: str) -> float:
    """% more energy unmet over the scenario's seeds than `than`."""
    return 100.0 * (_total(controller, scenario) / _total(than, scenario) - 1.0)


def _table_row(controller: str) -> list[str]:
    """The cells after the controller of the results table: unmet kWh / violation steps per scenario (steps above
    any network constraint on the network scenario), rounds mean / max on the two real-day scenarios (MPC
    coordination only), median step ms."""
    cells = []
    for scenario in SCENARIOS:
        rows = _rows(controller, scenario)
        steps = rows["network_violation_steps" if scenario == NETWORK else "area_violation_steps"].mean()
        cells.append(f"{rows['unmet_energy_kwh'].mean():.1f} / {steps:.1f}")
    for scenario in ("acn-caltech", NETWORK):
        rows = _rows(controller, scenario)
        rounds = controller.startswith("mpc-decentralised")
        cells.append(f"{rows['coordination_iterations_mean'].mean():.1f} / {rows['coordination_iterations_max'].max()}"
                     if rounds else "")
    times = [_rows(controller, s)["step_time_median_ms"].mean() for s in ("acn-caltech", NETWORK)]
    cells.append("(solved at reset)" if controller == "offline-optimal"
                 else " / ".join(f"{t:.1f}" if t >= 1 else f"{t:.2f}" for t in times))
    return cells


def _page_table(text: str) -> dict[str, list[str]]:
    """controller -> cells of the page's results table (bold marks and the row's note dropped)."""
    table = {}
    for line in text.splitlines():
        if line.startswith("| ") and " / " in line and not line.startswith("| controller"):
            cells = [c.strip().replace("**", "") for c in line.strip().strip("|").split("|")]
            if len(cells) == 8:
                table[cells[0].split(" (")[0]] = cells[1:]
    return table


@pytest.mark.parametrize("page", sorted(PAGES))
def test_results_table_is_the_reference_run(page) -> None:
    table = _page_table(PAGES[page])
    assert set(table) == set(METRICS["controller"])
    for controller, cells in table.items():
        assert cells == _table_row(controller), controller


def test_figures_quoted_in_the_prose_are_the_reference_run() -> None:
    results, readme = PAGES["docs/results.md"], PAGES["README.md"]
    dec, opt = "mpc-decentralised", "offline-optimal"
    quoted = [
        f"leaves {_total(opt, NETWORK):.1f} kWh", f"decentralised MPC {_total(dec, NETWORK):.1f} "
        f"(+{_more(dec, opt, NETWORK):.2f} %)", f"LLF {_total('llf', NETWORK):.1f}\n  (+{_more('llf', opt, NETWORK):.1f} %)",
        f"EDF {_total('edf', NETWORK):.1f} (+{_more('edf', opt, NETWORK):.1f} %)",
        f"equal share {_total('equal-share', NETWORK):.1f}", f"leaves {_total(dec, 'acn-caltech'):.2f} kWh unmet",
        f"leave {_more('ppo-safe', 'llf', 'acn-caltech'):.1f} and\n  {_more('mappo-safe', 'llf', 'acn-caltech'):.1f} %",
        f"(-{-_more('ppo-safe', 'llf', NETWORK):.2f} and +{_more('mappo-safe', 'llf', NETWORK):.1f} %",
        f"+{_more('ppo-residual', 'llf', NETWORK):.2f} % on the network week",
    ]
    for text in quoted:
        assert text in results, text
    assert f"the offline optimum over the five days, LLF\n  {_more('llf', opt, NETWORK):.1f} % and EDF " \
           f"{_more('edf', opt, NETWORK):.1f} % more" in readme
    assert f"{_more(dec, opt, NETWORK):.2f} % more energy unmet" in readme
    tracking = "mpc-decentralised-tracking"
    assert f"{_more(tracking, opt, 'acn-caltech'):.0f} % more energy\n  unmet" in readme
    assert f"{_more(tracking, opt, 'seed-20'):.0f} % more on `seed-20`" in readme
    median = {c: _rows(c, "acn-caltech")["step_time_median_ms"].mean() for c in (dec, "mpc-centralised")}
    for page in (readme, results):
        assert f"about {median['mpc-centralised'] / median[dec]:.0f} times faster" in page
    both = [_rows(c, s).set_index("seed")["unmet_energy_kwh"] for c in (dec, "mpc-centralised") for s in SCENARIOS]
    gap = max((both[i] - both[i + len(SCENARIOS)]).abs().max() for i in range(len(SCENARIOS)))
    assert gap < 1e-3 and f"{gap:.1e} on one network day".replace("e-0", "e-") in results  # "equal": within 0.001 kWh
    inaccurate = METRICS.groupby(["controller", "scenario"])["nonconverged_steps"].sum()["mpc-centralised"]
    assert f"{inaccurate[NETWORK]} of its steps on the network week, {inaccurate['acn-caltech']} on\n  `acn-caltech` " \
           f"and {inaccurate['seed-20']} on `seed-20`" in readme


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end, text.index(start))]


def test_documented_metric_columns_and_fields_are_the_codes() -> None:
    environment = (ROOT / "docs" / "environment.md").read_text()
    metrics = _section(environment, "## Metrics", "- Unmet energy")
    assert set(re.findall(r"\w+", metrics)) >= set(METRIC_COLUMNS)
    interfaces = (ROOT / "docs" / "INTERFACES.md").read_text()
    env_config = _section(interfaces, "### `pev_env.config.EnvConfig`", "### `pev_env.scenario.Scenario`")
    for field in dataclasses.fields(EnvConfig):
        assert f"`{field.name}=" in env_config, field.name
    config, scenario = make_scenario("seed", seed=0)
    core = ChargingCore(config, scenario)
    core.reset()
    core.step(np.zeros(config.n_stations))
    documented = re.search(r"core\.pev_table\(\) +# pandas DataFrame per PEV: (.*)", interfaces).group(1)
    assert documented.split(", ") == list(core.pev_table().columns)


def test_documented_output_files_are_the_ones_compare_writes() -> None:
    from experiments.commands.compare import trace_paths
    from experiments.commands.runner import RunKey

    text = (ROOT / "docs" / "experiments.md").read_text()
    traces = _section(text, "  - `traces/`:", "  - `plots/`:")
    paths = trace_paths(Path("out"), RunKey("llf", "seed", 0, "seed"))
    assert f"`{paths.power.name.replace('seed_seed0_llf', 'SCENARIO_seedS_CONTROLLER')}`" in traces
    for path in paths[1:]:
        assert f"`...{path.name.removeprefix('seed_seed0_llf')}`" in traces, path.name
    plots = _section(text, "  - `plots/`:", "  - `run.json`")
    for name in sorted({p.name for p in (ROOT / "results" / "reference" / "plots").glob("*.png")}):
        pattern = re.sub(r"_(seed|seed-20|acn-caltech|acn-caltech-network)\.png$", "_SCENARIO.png", name)
        assert f"`{pattern}`" in plots, name
    assert "SOC trajectories" not in plots  # soc_SCENARIO.png is energy per PEV against the request
