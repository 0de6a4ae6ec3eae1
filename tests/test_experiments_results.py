"""Runner metrics on a hand-checkable plant, atomic resumable results and the summary statistics."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments.commands.runner import P_REF_INDEX, RunKey, run_episode
from experiments.outputs.results import ResultsTable, read_rows
from experiments.outputs.summary import markdown, mean_ci, summarise
from pev_env.config import EnvConfig
from pev_env.observation import OBS_INDEX
from pev_env.scenario import Scenario
from pev_mpc.policies import POLICIES


def test_one_station_one_pev_by_hand() -> None:
    """1 station, P_ref 10 kW, one PEV plugged for steps 1..3 charging at 22 kW (1.65 kWh per step)."""
    config = EnvConfig(n_stations=1, n_pevs=1, p_max=22.0, P_ref=10.0, total_time=30.0)
    scenario = Scenario(arrival=[1], departure=[4], soc_init=[10.0], soc_target=[24.0], capacity=[24.0],
                        station=[0], n_stations=1, n_steps=6, name="hand")
    result = run_episode(POLICIES["uncontrolled"](), config, scenario, 0, RunKey("uncontrolled", "hand", 0))
    row = result.row
    gain = 0.9 * 22.0 * 5.0 / 60.0  # kWh per step at 22 kW
    assert gain == pytest.approx(1.65)
    delivered = 3 * gain
    expected = {
        "controller": "uncontrolled", "scenario": "hand", "seed": 0,
        "energy_requested_kwh": 14.0, "energy_delivered_kwh": delivered, "unmet_energy_kwh": 14.0 - delivered,
        "unmet_energy_pct": 100.0 * (14.0 - delivered) / 14.0, "pevs_total": 1, "pevs_fully_served": 0,
        "pevs_never_plugged": 0, "area_violation_steps": 3, "area_overload_max_kw": 12.0,
        "area_overload_kwh": 3 * 12.0 * 5.0 / 60.0, "local_violation_steps": 0, "peak_power_kw": 22.0,
    }
    for key, value in expected.items():
        assert row[key] == pytest.approx(value), key
    assert row["step_time_median_ms"] > 0 and row["step_time_p95_ms"] >= row["step_time_median_ms"]
    trace = result.trace
    assert list(trace["area_power_kw"]) == pytest.approx([0, 22, 22, 22, 0, 0])
    assert list(trace["P_ref_kw"]) == pytest.approx([10.0] * 6)
    assert list(trace["p_0_kw"]) == list(trace["area_power_kw"])
    assert list(result.soc["soc_0_kwh"]) == pytest.approx([10, 10, 10 + gain, 10 + 2 * gain] + [10 + 3 * gain] * 3)


def test_p_ref_index_matches_the_observation_contract() -> None:
    assert P_REF_INDEX == OBS_INDEX["P_ref"] == 8


def _row(c: str, s: str, seed: int, v: float) -> dict:
    return {"controller": c, "scenario": s, "seed": seed, "unmet_energy_kwh": v, "package_version": "0.1.0",
            "plant_fingerprint": "ba9876543210", "settings_fingerprint": "0123456789ab"}


def test_results_table_is_rewritten_after_every_row_and_resumes(tmp_path) -> None:
    path = tmp_path / "metrics.csv"
    table = ResultsTable(path)
    table.add(_row("edf", "seed", 0, 1.0))
    assert pd.read_csv(path).shape[0] == 1  # on disk immediately
    table.add(_row("edf", "seed", 1, 2.0))
    assert not list(tmp_path.glob(".metrics*"))  # no temporary files left behind
    rows, problems = read_rows(path, ["unmet_energy_kwh"])
    assert ResultsTable(path, rows=rows).done() == {("edf", "seed", 0), ("edf", "seed", 1)} and not problems
    assert ResultsTable(path).done() == set()
    with pytest.raises(ValueError, match="missing key columns"):
        table.add({"controller": "edf"})


def test_mean_ci_matches_the_t_interval() -> None:
    x = np.array([1.0, 2.0, 4.0, 7.0])
    mean, half = mean_ci(x)
    lo, hi = stats.t.interval(0.95, df=3, loc=x.mean(), scale=stats.sem(x))
    assert mean == pytest.approx(3.5) and half == pytest.approx((hi - lo) / 2)
    assert np.isnan(mean_ci([3.0])[1]) and mean_ci([3.0])[0] == 3.0
    assert mean_ci([2.0, 2.0, 2.0]) == (2.0, 0.0)


def test_summary_table() -> None:
    frame = pd.DataFrame([_row("edf", "seed", s, v) for s, v in enumerate([1.0, 2.0, 3.0])]
                         + [_row("llf", "seed", 0, 5.0)])
    table = summarise(frame, ["unmet_energy_kwh"])
    assert table.set_index("controller").loc["edf", "mean"] == pytest.approx(2.0)
    text = markdown(frame, ["unmet_energy_kwh"])
    half = stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)   # 2.48 > the mean: the interval is shown clipped at 0
    assert f"| edf | 3 | 2.00 [0, {2.0 + half:.2f}] |" in text
    assert "| llf | 1 | 5.00 |" in text
    narrow = pd.DataFrame([_row("edf", "seed", s, v) for s, v in enumerate([10.0, 11.0, 12.0])])
    assert f"| edf | 3 | 11.00 ± {half:.2f} |" in markdown(narrow, ["unmet_energy_kwh"])


def test_paired_differences_mark_a_controller_that_exceeded_a_shared_limit() -> None:
    """A plug-in overloading the network delivers 180 kWh more than the offline optimum: its paired row is marked
    and a note says its energy is not comparable; a controller within the limits is not marked."""
    rows = [{"controller": c, "scenario": "acn-caltech-network", "seed": 0, "unmet_energy_kwh": u,
             "area_violation_steps": 0, "network_violation_steps": v}
            for c, u, v in (("offline-optimal", 200.0, 0), ("overload:Plugin", 20.07, 146), ("llf", 210.0, 0))]
    text = markdown(pd.DataFrame(rows), ["unmet_energy_kwh", "network_violation_steps"], reference="offline-optimal")
    paired = text.split("minus offline-optimal")[1]
    assert "| overload:Plugin ‡ | 1 | -179.93 | 0.00 | 146.00 |" in paired and "| llf | 1 | 10.00 | 0.00 | 0.00 |" in paired
    assert ("‡ exceeded a shared limit (the area limit or a site-network constraint): its energy is not comparable "
            "with that of a controller that kept the limits (overload:Plugin on acn-caltech-network in 146 steps).")\
        in text
    assert "‡" not in text.split("minus offline-optimal")[0]


def test_without_a_reference_the_controller_that_exceeded_a_limit_is_marked_in_the_first_tables() -> None:
    """`--controllers llf,ppo` has no offline optimum, so no paired differences: the controller that broke the
    limit is marked where its energy is shown, with the note (before, nothing said it was not comparable)."""
    rows = [{"controller": c, "scenario": "seed", "seed": 0, "unmet_energy_kwh": u, "area_violation_steps": v,
             "network_violation_steps": v} for c, u, v in (("llf", 60.0, 0), ("ppo", 40.0, 12))]
    text = markdown(pd.DataFrame(rows), ["unmet_energy_kwh", "network_violation_steps"], reference="offline-optimal")
    assert "minus offline-optimal" not in text
    assert "| ppo ‡ | 1 | 40.00 | 12.00 |" in text and "| llf | 1 | 60.00 | 0.00 |" in text
    assert "its energy is not comparable with that of a controller that kept the limits (ppo on seed in 12 steps)." \
        in text


def test_scenarios_that_ran_the_same_days_are_named_in_the_summary() -> None:
    from experiments.commands.compare import shared_days

    episodes = {"acn-caltech": {"0": "acn-caltech-2019-05-06", "1": "acn-caltech-2019-05-07"},
                "acn-caltech-network": {"0": "acn-caltech-2019-05-06", "1": "acn-caltech-2019-05-07"},
                "seed": {"0": "seed-0"}}
    (note,) = shared_days(episodes)
    assert note.startswith("acn-caltech and acn-caltech-network share 2 episode(s) (acn-caltech-2019-05-06, "
                           "acn-caltech-2019-05-07): statistics pooled over scenarios count them once per scenario")
    assert shared_days({"seed": {"0": "seed-0"}, "seed-20": {"0": "seed-20-0"}}) == []


def test_controllers_that_read_the_future_are_marked_as_bounds() -> None:
    """offline-optimal and mpc-foresight read the episode's future sessions; mpc-history (a forecast from other
    days) and the causal controllers are not marked."""
    from experiments.outputs.summary import NONCAUSAL_MARK, markdown

    rows = [{"controller": c, "scenario": "seed", "seed": s, "unmet_energy_kwh": 1.0 + s, "network_violation_steps": 0}
            for c in ("llf", "mpc-history", "mpc-foresight", "offline-optimal") for s in (0, 1)]
    from experiments.controllers.registry import is_causal

    bounds = [c for c in ("llf", "mpc-history", "mpc-foresight", "offline-optimal") if not is_causal(c)]
    text = markdown(pd.DataFrame(rows), columns=("unmet_energy_kwh",), reference="offline-optimal", bounds=bounds)
    assert f"| mpc-foresight {NONCAUSAL_MARK} |" in text and f"| offline-optimal {NONCAUSAL_MARK} |" in text
    assert "| llf |" in text and "| mpc-history |" in text
    assert (f"{NONCAUSAL_MARK} reads the episode's future sessions (mpc-foresight, offline-optimal): a bound"
            in text)


def test_a_plugin_that_reads_the_future_says_so_and_is_marked(tmp_path, monkeypatch) -> None:
    """A plug-in subclassing the offline optimum (causal = False inherited) or declaring causal = False is marked as
    a bound; one that declares causal = True is taken at its word."""
    from experiments.cli.main import main

    (tmp_path / "peek.py").write_text("from pev_mpc.policies.offline import OfflineOptimal\n"
                                      "class Peek(OfflineOptimal):\n    name = 'peek'\n")
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "--scenarios", "seed", "--seeds", "0", "--controllers", "llf,peek:Peek", "--jobs", "1",
                 "--no-plots", "--no-traces", "-q", "--out", str(tmp_path / "out")]) == 0
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| peek:Peek ° |" in summary and "| llf |" in summary

