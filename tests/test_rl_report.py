"""Several training seeds per learned controller in evaluate, the RL statistics of summary.md, the performance
profiles, learning curves over seeds and the generated --controllers help."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from experiments.controllers import registry

from experiments.cli.main import build_parser, main
from experiments.controllers.rl_model import reference_model
from experiments.learning import rl_report
from experiments.learning.learning_curves import main as curves_main
from experiments.learning.rlstats import iqm_of_strata, stratified_bootstrap
from experiments.learning.learning_curves import seed_curves

EVAL = ["evaluate", "--scenarios", "seed", "--seeds", "0-1", "--controllers", "ppo,llf", "--jobs", "1", "-q",
        "--no-traces"]


@pytest.fixture
def two_seeds(tmp_path):
    """Two model folders of ppo (copies of the shipped reference: two 'training seeds')."""
    for name in ("ppo-a", "ppo-b"):
        shutil.copytree(reference_model("ppo"), tmp_path / name)
    return tmp_path


def test_evaluate_runs_every_training_seed_and_reports_rl_statistics(two_seeds, capsys) -> None:
    out = two_seeds / "ev"
    pattern = f"models.ppo={two_seeds}/ppo-*"
    assert main([*EVAL, "--set", pattern, "--out", str(out)]) == 0
    metrics = pd.read_csv(out / "metrics.csv")
    assert sorted(set(metrics["controller"])) == ["llf", "ppo@0", "ppo@1"] and len(metrics) == 6
    summary = (out / "summary.md").read_text()
    assert "## RL statistics" in summary
    # the two folders hold one model (copies): one training seed x 2 days, with a note
    # n: training seeds x days; the shipped ppo exceeds the area limit on these days (1 step): marked
    assert "| ppo ‡ | 1 × 2 = 2 |" in summary and "| llf | 2 |" in summary
    assert "- ppo@1 runs the same model as ppo@0 (SHA-256 " in summary
    assert "Probability of improvement" in summary and "unmet_energy_kwh vs llf" in summary
    assert f"`ppo@1`: model `{two_seeds}/ppo-b`" in summary
    assert (out / "plots" / "performance_profiles.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main([*EVAL, "--set", pattern, "--out", str(out), "--resume"]) == 0  # every row kept, none re-run
    assert "1 × 2 = 2" in capsys.readouterr().out and len(pd.read_csv(out / "metrics.csv")) == 6


@pytest.mark.parametrize("args, message", [
    (["--set", "models.ppo=/nonexistent/ppo-*"], "evaluate.models.ppo = '/nonexistent/ppo-*': the pattern"),
    (["--set", "models.ppo=a,,b"], "an empty entry"),
    (["--controllers", "ppo@3"], "evaluate.controllers = 'ppo@3': allowed: ppo"),
])
def test_bad_training_seed_input_exits_2_with_one_line(args, message, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--controllers", "ppo", *args, "--out", str(tmp_path / "x"), "-q"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and message in err and len(err.splitlines()) == 1


def test_training_seed_names() -> None:
    assert registry.training_seed_names("ppo", 1) == ("ppo",)
    assert registry.training_seed_names("ppo", 3) == ("ppo@0", "ppo@1", "ppo@2")
    assert [registry.learned_base(n) for n in ("ppo@2", "mappo", "llf", "ppo@x", "llf@1")] == [
        "ppo", "mappo", "", "", ""]


def _rows(controller: str, unmet: list[float], scenario: str = "s") -> list[dict]:
    return [{"controller": controller, "scenario": scenario, "seed": i, "unmet_energy_kwh": u,
             "area_violation_steps": 0} for i, u in enumerate(unmet)]


def test_summary_groups_training_seeds_and_compares_with_the_baselines() -> None:
    metrics = pd.DataFrame(_rows("ppo@0", [5.0, 6]) + _rows("ppo@1", [7.0, 8]) + _rows("llf", [1.0, 9])
                           + _rows("mpc-decentralised", [0.0, 0]))
    runs, _ = rl_report.agent_runs(metrics)
    assert runs.groupby("agent", sort=False)["train_seed"].nunique().to_dict() == {
        "ppo": 2, "llf": 1, "mpc-decentralised": 1}
    text = rl_report.markdown(metrics)
    # IQM of 5, 6, 7, 8 = 6.5; P(ppo < llf): ppo beats 9 in all 4 pairs, loses to 1 in all 4 -> 1/2
    assert "| ppo | 2 × 2 = 4 | 6.50 [" in text
    row = next(line for line in text.splitlines() if line.startswith("| ppo | 0.50"))
    assert row.split(" | ")[2].startswith("0.00 [0.00, 0.00]")  # never better than the MPC's 0 kWh
    assert rl_report.markdown(metrics[~metrics["controller"].str.startswith("ppo")]) == ""  # no learned agent


def test_equal_models_count_once_and_stale_rows_are_their_own_agent() -> None:
    """Two folders of one model are one training seed; plain `ppo` rows (kept by a --resume) beside `ppo@i` rows
    are not pooled with them."""
    metrics = pd.DataFrame(_rows("ppo@0", [5.0, 6]) + _rows("ppo@1", [5.0, 6]) + _rows("ppo@2", [7.0, 8])
                           + _rows("ppo", [1.0, 1]) + _rows("llf", [1.0, 9]))
    runs, notes = rl_report.agent_runs(metrics, {"ppo@0": "a" * 64, "ppo@1": "a" * 64, "ppo@2": "b" * 64})
    assert notes == [f"ppo@1 runs the same model as ppo@0 (SHA-256 {'a' * 12}): counted once"]
    assert runs.groupby("agent", sort=False)["train_seed"].unique().map(list).to_dict() == {
        "ppo": [0, 2], "ppo (one folder)": [0], "llf": [0]}
    text = rl_report.markdown(metrics, {"ppo@0": "a" * 64, "ppo@1": "a" * 64, "ppo@2": "b" * 64})
    assert "| ppo | 2 × 2 = 4 |" in text and "| ppo (one folder) | 1 × 2 = 2 |" in text and "counted once" in text


def test_the_interval_of_copies_of_one_training_seed_is_that_of_one() -> None:
    """Training seeds x days resampled as a crossed design: five identical training seeds are no more evidence
    than one (pooled as independent runs the interval was 2.6 times narrower)."""
    days = np.array([70.0, 95.0, 100.0, 120.0, 140.0])
    one = stratified_bootstrap([days[None, :]], iqm_of_strata)
    five = stratified_bootstrap([np.repeat(days[None, :], 5, axis=0)], iqm_of_strata)
    pooled = stratified_bootstrap([np.tile(days, 5)], iqm_of_strata)
    width = lambda i: float(i.high - i.low)  # noqa: E731
    assert width(five) == pytest.approx(width(one), rel=0.1) and width(pooled) < 0.6 * width(one)


def test_a_missing_run_never_turns_the_grid_into_independent_runs() -> None:
    """Five training seeds x five days with one run missing (a failed run): the statistics keep a crossed grid (the
    days every training seed ran) and name the run left out; they used to resample the 24 runs as independent,
    an interval 2.5 times narrower than that of the full grid."""
    days = [70.0, 95.0, 100.0, 120.0, 140.0]
    rows = [r for s in range(5) for r in _rows(f"ppo@{s}", days)]
    full = pd.DataFrame(rows)
    missing = pd.DataFrame([r for r in rows if (r["controller"], r["seed"]) != ("ppo@1", 2)])
    runs = rl_report.agent_runs(missing)[0]
    assert rl_report._grid(runs, "unmet_energy_kwh").shape == (5, 4)
    def width(text: str) -> float:
        low, high = re.search(r"\| ppo \| [^|]+ \| [0-9.]+ \[([0-9.]+), ([0-9.]+)\]", text).groups()
        return float(high) - float(low)

    text = rl_report.markdown(missing)
    assert "| ppo | 5 × 4 = 20 |" in text
    assert "ppo on s: 4 of 24 runs left out of its statistics" in text
    assert width(text) > 0.6 * width(rl_report.markdown(full))


def test_limit_breakers_and_bounds_are_marked_in_the_rl_statistics() -> None:
    """An agent that exceeded a shared limit leaves less energy unmet; its IQM and P(better than LLF) = 1 are
    marked ‡ and the offline optimum's ° as in the paired differences (they were shown unmarked)."""
    breaker = [{**r, "area_violation_steps": 40} for r in _rows("ppo", [1.0, 2])]
    metrics = pd.DataFrame(breaker + _rows("ppo-safe", [6.0, 7]) + _rows("llf", [5.0, 9])
                           + _rows("offline-optimal", [4.0, 5]))
    lines = rl_report.markdown(metrics, bounds=["offline-optimal"]).splitlines()
    assert [line.split(" | ")[0] for line in lines if line.startswith("| ppo") or line.startswith("| offline")] == [
        "| ppo ‡", "| ppo-safe", "| offline-optimal °"] * 2
    assert any(line.startswith("‡ exceeded a shared limit") and "ppo on s" in line for line in lines)
    assert any(line.startswith("° reads the episode's future sessions (offline-optimal on s)") for line in lines)


def test_ratio_to_llf_and_profiles() -> None:
    metrics = pd.DataFrame(_rows("ppo", [2.0, 0.0, 3.0]) + _rows("llf", [1.0, 0.0, 0.0]))
    ratio = rl_report.llf_ratio(rl_report.agent_runs(metrics)[0])
    assert ratio.tolist()[:3] == [2.0, 1.0, np.inf]
    unmet, violations = rl_report.profiles(metrics)
    assert unmet.target == rl_report.RATIO_TARGET and violations.target == rl_report.VIOLATION_TARGET
    at = np.searchsorted(unmet.taus, 2.0)
    assert unmet.curves["ppo"].point[at] == pytest.approx(2 / 3)  # 2 and 1 are <= 2, inf never
    assert (violations.curves["llf"].low >= 0).all()
    elsewhere = pd.DataFrame(_rows("ppo", [2.0], scenario="t"))  # LLF never ran on t: no ratio for ppo there
    unmet, _ = rl_report.profiles(pd.concat([metrics[metrics["controller"] == "llf"], elsewhere]))
    assert set(unmet.curves) == {"llf"}


def _log(level: float) -> pd.DataFrame:
    return pd.DataFrame({"timesteps": np.arange(1, 41) * 100, "scenario": ["a", "b"] * 20,
                         "unmet_energy_kwh": np.full(40, level)})


def test_learning_curves_over_seeds(tmp_path, capsys) -> None:
    curves = seed_curves([_log(1.0), _log(3.0)], "unmet_energy_kwh", points=5, window=2)
    grid, curve, seeds = curves["a"]
    assert set(curves) == {"a", "b"} and seeds == 2 and len(grid) == 5
    assert np.allclose(curve.point, 2.0) and np.allclose(curve.low, 1.0) and np.allclose(curve.high, 3.0)
    _, alone, _ = seed_curves([_log(1.0)], "unmet_energy_kwh", points=5, window=2)["a"]
    assert np.allclose(alone.point, 1.0) and np.isnan(alone.low).all()  # one seed: no band, not one of width 0
    folders = []
    for i, level in enumerate((1.0, 2.0, 4.0)):
        (tmp_path / f"s{i}").mkdir()
        _log(level).to_csv(tmp_path / f"s{i}" / "training_log.csv", index=False)
        folders.append(str(tmp_path / f"s{i}"))
    assert curves_main(["--out", str(tmp_path / "c.png"), *folders]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert set(pd.read_csv(tmp_path / "c.csv")["seeds"]) == {3}
    with pytest.raises(SystemExit) as exit_:
        curves_main(["--out", str(tmp_path / "d.png"), str(tmp_path / "missing")])
    assert exit_.value.code == 2 and "has no readable training_log.csv" in capsys.readouterr().err


def test_controllers_help_lists_every_registered_controller() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    for command in ("compare", "evaluate"):
        text = next(a for a in sub[command]._actions if a.dest == "controllers").help
        for name in registry.controller_names():
            assert name in text, (command, name)


def test_network_violations_are_what_the_summary_the_statistics_and_the_bars_count() -> None:
    """On a site network the area limit is no constraint (area_violation_steps 0): the summary, the RL
    statistics, the violation profile and the bar plot count the steps above any network constraint."""
    from experiments.outputs import plots
    from experiments.outputs.summary import markdown

    rows = [{"controller": c, "scenario": "acn-caltech-network", "seed": s, "unmet_energy_kwh": u + s,
             "unmet_energy_pct": 1.0, "area_violation_steps": 0, "network_violation_steps": v,
             "area_overload_kwh": 0.0, "local_violation_steps": 0, "step_time_median_ms": 1.0}
            for c, u, v in (("ppo@0", 10.0, 92), ("ppo@1", 11.0, 90), ("llf", 9.0, 0)) for s in range(3)]
    metrics = pd.DataFrame(rows)
    assert "network_violation_steps" in markdown(metrics)
    stats = rl_report.markdown(metrics)
    assert "network_violation_steps" in stats and "area_violation_steps" not in stats
    assert "91.00" in stats                                   # the IQM of ppo's six runs of 90 and 92 steps
    violation = rl_report.profiles(metrics)[-1]
    assert "network" in violation.label and violation.curves["ppo"].point[0] == 0.0   # no run at 0 steps
    fig = plots.metric_bars(metrics)
    assert "network" in fig.axes[1].get_ylabel()
    log = metrics.assign(timesteps=range(len(metrics)))        # a training log of the same episodes
    assert "network" in plots.learning_curve(log).axes[1].get_ylabel()
    legacy = metrics.drop(columns="network_violation_steps")  # rows written before site networks
    assert "area_violation_steps" in rl_report.markdown(legacy)
    assert "Area-limit" in plots.learning_curve(legacy.assign(timesteps=range(len(legacy)))).axes[1].get_ylabel()


def test_evaluation_on_training_episodes_is_named(tmp_path) -> None:
    """The shipped ppo trained on seed-20 seeds 1000-1099 and the acn-caltech-train days: evaluating there is
    named in summary.md and run.json, not passed off as held out (seeds 0-4 of seed-20 are)."""

    from pev_env.scenarios import episode_names

    assert episode_names("acn-caltech", [0]) == episode_names("acn-caltech-eval", [0]) == ["caltech-2019-05-06"]
    assert episode_names("acn:caltech_2019-05-01_2019-08-31.csv.gz:2019-05-06", [3]) == ["caltech-2019-05-06"]
    out = tmp_path / "ev"
    assert main(["evaluate", "--scenarios", "seed-20", "--seeds", "0,1000", "--controllers", "ppo,llf", "--out",
                 str(out), "-q", "--no-traces", "--no-plots"]) == 0
    summary = (out / "summary.md").read_text()
    note = ("ppo: 1 of the 2 episodes of seed-20 are episodes its model was trained on (seed-20#1000): not held out")
    assert "**Not held out**" in summary and note in summary
    assert json.loads((out / "run.json").read_text())["not_held_out"] == [note]


def test_a_model_without_training_episodes_is_of_unknown_held_out_status(tmp_path) -> None:
    """A model saved by the user's own trainer (`describe(..., training={})`) records no training episodes: summary.md
    and run.json say its held-out status is unknown rather than listing no overlap as if held out."""
    import json

    model = tmp_path / "mine"
    shutil.copytree(reference_model("ppo"), model)
    description = json.loads((model / "model.json").read_text())
    (model / "model.json").write_text(json.dumps({**description, "training": {}}))
    out = tmp_path / "ev"
    assert main(["evaluate", "--scenarios", "seed", "--seeds", "0", "--controllers", "ppo", "--set",
                 f"models.ppo={model}", "--out", str(out), "-q", "--no-traces", "--no-plots"]) == 0
    note = (f"ppo: {model / 'model.json'} records no training episodes (training.config.scenarios and seeds): "
            "held-out status unknown")
    assert f"**Held-out status unknown**:\n- {note}" in (out / "summary.md").read_text()
    run = json.loads((out / "run.json").read_text())
    assert run["not_held_out"] == [] and run["held_out_unknown"] == [note]


def test_probability_of_improvement_of_one_run_has_no_interval() -> None:
    """One run each of ppo and llf: the bootstrap cannot vary, so no '1.00 [1.00, 1.00]' but the point and n."""
    rows = [{"controller": c, "scenario": "seed", "seed": 0, "unmet_energy_kwh": u, "network_violation_steps": 0}
            for c, u in (("ppo", 1.0), ("llf", 2.0))]
    stats = rl_report.markdown(pd.DataFrame(rows))
    assert "| ppo | 1.00 (n = 1, no interval) | 0.50 (n = 1, no interval) |" in stats
    assert "[1.00, 1.00]" not in stats


def test_refresh_rewrites_only_the_rl_statistics_of_a_finished_folder(two_seeds, capsys) -> None:
    """Statistics that changed are recomputed from the rows as run; the rest of summary.md stays as it was."""
    from experiments.learning.refresh_statistics import main as refresh_main

    out = two_seeds / "ev"
    assert main([*EVAL, "--set", f"models.ppo={two_seeds}/ppo-*", "--out", str(out)]) == 0
    summary = (out / "summary.md").read_text()
    start = summary.index("\n## RL statistics")
    stale = summary[:start] + "\n## RL statistics\n\nan old bootstrap: 1.0 [0.9, 1.1]\n\n" + summary[
        summary.index("**Learned models**"):]
    (out / "summary.md").write_text(stale)
    (out / "plots" / "performance_profiles.png").unlink()
    assert refresh_main([str(out)]) == 0
    again = (out / "summary.md").read_text()
    assert "an old bootstrap" not in again and "recomputed from metrics.csv" in again
    head, tail = summary[:start], summary[summary.index("**Learned models**"):]
    assert again.startswith(head) and again.endswith(tail)
    assert again[start:].startswith(summary[start:summary.index("**Learned models**")].rstrip())  # same statistics
    assert (out / "plots" / "performance_profiles.png").exists()
    with pytest.raises(SystemExit) as exit_:
        refresh_main([str(two_seeds)])
    assert exit_.value.code == 2 and "not a results folder" in capsys.readouterr().err


def test_round_off_between_equal_controllers_is_a_tie_in_the_probability_of_improvement() -> None:
    """An agent that leaves LLF's energy unmet up to 1e-8 kWh (solver round-off) on every day is no better and
    no worse than LLF: P = 0.50, not 0.40 (the round-off decided the 5 same-day pairs of the 25)."""
    llf = np.array([67.1, 60.4, 72.5, 68.9, 70.2])
    rows = [{"controller": c, "scenario": "seed", "seed": seed, "unmet_energy_kwh": value + noise,
             "network_violation_steps": 0.0}
            for c, noise in (("llf", 0.0), ("ppo", 1e-8)) for seed, value in enumerate(llf)]
    runs, _ = rl_report.agent_runs(pd.DataFrame(rows))
    (row,) = [line for line in rl_report.improvement_table(runs, baselines=("llf",)) if line.startswith("| ppo |")]
    assert row.startswith("| ppo | 0.50 [")


def test_refresh_keeps_the_marks_without_importing_a_plug_in(tmp_path) -> None:
    """A folder with a plug-in bound that is not importable where the statistics are refreshed: its ° comes from the
    summary compare wrote (the class loaded then), and a limit-breaker's ‡ from the rows."""
    from experiments.learning.refresh_statistics import main as refresh_main

    rows = ([{**r, "area_violation_steps": 3} for r in _rows("ppo", [1.0, 2])] + _rows("llf", [5.0, 9])
            + _rows("gone_module:Bound", [4.0, 5]))
    pd.DataFrame(rows).to_csv(tmp_path / "metrics.csv", index=False)
    (tmp_path / "run.json").write_text(json.dumps({"models": {}}))
    (tmp_path / "summary.md").write_text("# Controller comparison\n\n| controller | n |\n|---|---:|\n"
                                         "| gone_module:Bound ° | 2 |\n\n## RL statistics\n\nold\n")
    assert refresh_main([str(tmp_path)]) == 0
    section = (tmp_path / "summary.md").read_text().split("## RL statistics")[1]
    assert "| gone_module:Bound ° | 2 |" in section and "| ppo ‡ | 1 × 2 = 2 |" in section
