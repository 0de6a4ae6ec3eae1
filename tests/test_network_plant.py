"""The plant measures every constraint of its site network (pev_env.network) and never enforces it:
loads against an independent phasor computation, metrics, the network_headroom observation and its
bounds, the global state, traces, and bad network input at the command line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pev_env import ChargingCore, PEVChargeEnv, PEVChargeGymEnv, make_scenario
from pev_env.config import EnvConfig
from pev_env.meter import NetworkMeter
from pev_env.metrics import METRIC_COLUMNS
from pev_env.network import Network, site_network
from pev_env.observation import N_OBS, OBS_INDEX
from pev_env.scenario import Scenario

HEADROOM = OBS_INDEX["network_headroom"]

# ---- the Caltech site re-derived from acnportal 0.3.3 (caltech_acn.py), independently of pev_env.network
CC_POD = ["CA-322", "CA-493", "CA-496", "CA-320", "CA-495", "CA-321", "CA-323", "CA-494"]
AV_POD = ["CA-324", "CA-325", "CA-326", "CA-327", "CA-489", "CA-490", "CA-491", "CA-492"]
LINE_OF = {
    **{s: "AB" for s in [f"CA-{i}" for i in (308, 508, 303, 513, 310, 506, 316, 500, 318, 498)] + AV_POD + CC_POD},
    **{f"CA-{i}": "BC" for i in (304, 512, 305, 511, 313, 503, 311, 505, 317, 499, 148, 149, 212, 213)},
    **{f"CA-{i}": "CA" for i in (307, 509, 309, 507, 306, 510, 315, 501, 319, 497, 312, 504, 314, 502)},
}
ANGLE_DEG = {"AB": 30.0, "BC": -90.0, "CA": 150.0}


def caltech_loads(ids: tuple[str, ...], p_kw: np.ndarray, transformer_kw: float) -> dict[str, tuple[np.ndarray, float]]:
    """{constraint: (loads (T,) A, limit A)} of powers p_kw (T, N) at the stations `ids`, by phasors."""
    current = 1000.0 * p_kw / 208.0 * np.exp(1j * np.deg2rad([ANGLE_DEG[LINE_OF[s]] for s in ids]))
    line = {name: current[:, [LINE_OF[s] == name for s in ids]].sum(axis=1) for name in ANGLE_DEG}
    pod = {name: current[:, np.isin(ids, members)].sum(axis=1) for name, members in (("CC", CC_POD), ("AV", AV_POD))}
    i_a, i_b, i_c = line["AB"] - line["CA"], line["BC"] - line["AB"], line["CA"] - line["BC"]
    secondary, primary = transformer_kw * 1000 / 3 / 120, transformer_kw * 1000 / 3 / 277
    return {"CC Pod": (np.abs(pod["CC"]), 80.0), "AV Pod": (np.abs(pod["AV"]), 80.0),
            "Secondary A": (np.abs(i_a), secondary), "Secondary B": (np.abs(i_b), secondary),
            "Secondary C": (np.abs(i_c), secondary), "Primary A": (np.abs(i_a - i_c) / 4, primary),
            "Primary B": (np.abs(i_b - i_a) / 4, primary), "Primary C": (np.abs(i_c - i_b) / 4, primary)}


def random_episode(core: ChargingCore, seed: int, scale: float = 1.3) -> list[dict]:
    """Run the core to its end with uniform random requests in [0, scale p_max]; return the step infos."""
    rng = np.random.default_rng(seed)
    core.reset()
    infos = []
    while not core.done:
        infos.append(core.step(rng.uniform(0.0, scale * core.config.station_p_max)).info)
    return infos


def test_caltech_loads_match_an_independent_phasor_computation() -> None:
    config, scenario = make_scenario("acn-caltech", 0, EnvConfig(network="caltech", transformer_kw=40))
    core = ChargingCore(config, scenario)
    infos = random_episode(core, 0)
    applied, loads = core.history["applied_kw"], core.history["network_load"]
    expected = caltech_loads(scenario.station_ids, applied, 40.0)
    assert core.network.names == tuple(expected) and loads.shape == (config.n_steps, len(expected))
    limits = np.array([lim for _, lim in expected.values()])
    want = np.column_stack([load for load, _ in expected.values()])
    np.testing.assert_allclose(loads, want, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(core.network.limit, limits, rtol=1e-15)
    np.testing.assert_array_equal(np.array([i["network_load"] for i in infos]), loads)
    over = want > limits + 1e-9 * limits + 1e-9
    worst = np.where(over, 100 * (want - limits) / limits, 0.0).max(axis=1)
    np.testing.assert_allclose(core.history["network_overload_pct"], worst, rtol=1e-9)
    m = core.episode_metrics()
    assert m["network_violation_steps"] == over.any(axis=1).sum() > 0
    assert m["network_overload_max_pct"] == pytest.approx(worst.max(), rel=1e-9)
    assert m["area_violation_steps"] == 0  # P_ref is no constraint on a site network unless set


@st.composite
def networks(draw) -> tuple[Network, np.ndarray, np.ndarray]:
    """A random network (linear, cone and area rows, some stations loading nothing), p_max and applied powers."""
    n = draw(st.integers(1, 8))
    j = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    gain = rng.normal(size=(j, n)) + 1j * rng.normal(size=(j, n)) * rng.integers(0, 2, (j, 1))
    gain *= rng.random((j, n)) < 0.7  # sparse: some stations load no row
    kinds = rng.integers(0, 3, j)
    gain[kinds == 1] = np.abs(gain[kinds == 1])  # linear rows
    gain[kinds == 2] = 1.0  # area rows (every station's power)
    limit = rng.uniform(0.1, 50.0, j)
    p_max = rng.uniform(1.0, 22.0, n)
    applied = p_max * rng.random(n) * (rng.random(n) < 0.8)
    units = tuple("kW" if k == 2 or rng.random() < 0.5 else "A" for k in kinds)
    return Network("random", tuple(f"c{i}" for i in range(j)), gain, limit, units), p_max, applied


@settings(deadline=None)
@given(networks())
def test_meter_matches_the_network_and_numpy(case) -> None:
    network, p_max, applied = case
    meter = NetworkMeter(network, p_max, 1e-9)
    loads = meter.loads(applied, float(applied.sum()))
    want = np.abs(network.gain @ applied)
    np.testing.assert_allclose(loads, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(loads, network.loads(applied), rtol=1e-12, atol=1e-12)
    mag = np.abs(network.gain)
    room = np.where(mag > 0, (network.limit - loads)[:, None] / np.where(mag > 0, mag, 1.0), np.inf).min(axis=0)
    np.testing.assert_array_equal(meter.headroom_kw(loads), np.where(np.isfinite(room), room, p_max))
    np.testing.assert_array_equal(meter.headroom_kw(loads), network.headroom_kw(loads, p_max))
    tol = np.where(np.array(network.units) == "kW", 1e-9, 1e-9 * network.limit + 1e-9)
    over = loads > network.limit + tol
    assert meter.overload_pct(loads) == pytest.approx(
        np.max(100 * (loads - network.limit) / network.limit, where=over, initial=0.0), rel=1e-12)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(0, 3))
def test_tree_loads_are_the_power_of_each_node(b1: int, b2: int, seed: int) -> None:
    config, scenario = make_scenario("seed-20", seed, EnvConfig(network=f"tree:{b1},{b2}"))
    core = ChargingCore(config, scenario)
    random_episode(core, seed)
    applied, loads = core.history["applied_kw"], core.history["network_load"]
    panel = np.arange(config.n_stations) % (b1 * b2)
    for j, name in enumerate(core.network.names):
        if name == "feeder":
            members = np.ones(config.n_stations, bool)
        elif name.startswith("transformer"):
            members = panel // b2 == int(name.split()[1])
        else:
            t, q = (int(x) for x in name.split()[1].split("."))
            members = panel == t * b2 + q
        np.testing.assert_allclose(loads[:, j], applied[:, members].sum(axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(loads[:, core.network.names.index("feeder")], core.history["area_power_kw"])


# ---- the default area network: the same numbers as the area limit, every existing metric unchanged
REFERENCE = Path(__file__).parents[1] / "results" / "reference" / "metrics.csv"


@pytest.mark.parametrize("scenario", ["seed", "seed-20", "acn-caltech"])
def test_area_network_metrics_equal_the_area_metrics_and_the_reference(scenario: str) -> None:
    """Each heuristic's seed-0 row reproduces the committed reference in every existing column (timings
    aside), and the network columns restate the area ones."""
    from experiments.commands.runner import FAILURE_COLUMNS, run_episode
    from experiments.controllers.registry import make_controller

    old = [c for c in METRIC_COLUMNS if not c.startswith("network_")] + list(FAILURE_COLUMNS)
    reference = pd.read_csv(REFERENCE)
    for controller in ("uncontrolled", "equal-share", "edf", "llf"):
        config, sc = make_scenario(scenario, 0)
        row = run_episode(make_controller(controller), config, sc, 0).row
        ref = reference[(reference["controller"] == controller) & (reference["scenario"] == scenario)
                        & (reference["seed"] == 0)]
        assert len(ref) == 1
        assert {c: row[c] for c in old} == ref.iloc[0][old].to_dict(), controller
        assert row["network_violation_steps"] == row["area_violation_steps"]
        assert row["network_overload_max_pct"] == pytest.approx(100 * row["area_overload_max_kw"] / config.P_ref,
                                                                 rel=1e-12)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.5, 1.5))
def test_area_network_violations_equal_area_violations_at_the_limit(seed: int, scale: float) -> None:
    """Requests that sum to P_ref within a few 1e-9 kW: network and area violations agree step by step."""
    config, scenario = make_scenario("seed", 0)
    core = ChargingCore(config, scenario)
    rng = np.random.default_rng(seed)
    core.reset()
    while not core.done:
        plugged = core.station_pev >= 0
        share = rng.random(config.n_stations) * plugged
        request = share / max(share.sum(), 1e-12) * config.P_ref * scale ** rng.integers(0, 2)
        request += plugged * rng.choice([-2e-9, 0.0, 1e-9, 2e-9, 5e-9], config.n_stations)
        info = core.step(np.clip(request, 0.0, config.station_p_max)).info
        assert (info["network_overload_pct"] > 0) == info["area_violation"]
        assert info["network_load"].tolist() == [info["area_power_kw"]]
    m = core.episode_metrics()
    assert m["network_violation_steps"] == m["area_violation_steps"]


# ---- observation, spaces and global state
@pytest.mark.parametrize(("scenario", "network"), [("acn-caltech", "caltech"), ("seed-20", "jpl"),
                                                   ("seed-20", "tree:3,2"), ("seed", "area")])
def test_headroom_observation_and_state_never_leave_their_spaces(scenario: str, network: str) -> None:
    base = EnvConfig(network=network, transformer_kw=40, jpl_first_transformer_kw=20)
    env = PEVChargeEnv(scenario_name=scenario, config=base)
    gym_env = PEVChargeGymEnv(scenario_name=scenario, config=base)
    obs, _ = env.reset(seed=1)
    gym_obs, _ = gym_env.reset(seed=1)
    core = env.core
    rng = np.random.default_rng(1)
    negative = False
    while env.agents:
        assert all(env.observation_space(a).contains(obs[a]) for a in env.agents)
        assert env.state_space.contains(env.state()) and gym_env.observation_space.contains(gym_obs)
        stacked = np.array([obs[a] for a in env.possible_agents])
        assert stacked.shape[1] == N_OBS
        np.testing.assert_array_equal(stacked[:, HEADROOM], core.network.headroom_kw(
            core.network_load, core.config.station_p_max).astype(np.float32))
        np.testing.assert_array_equal(env.state()[-core.network.n_constraints:],
                                      core.network_load.astype(np.float32))
        negative |= bool((stacked[:, HEADROOM] < 0).any())
        request = rng.uniform(0.5, 1.5, core.n_stations) * core.config.station_p_max  # overloads
        obs, *_ = env.step({a: request[i:i + 1] for i, a in enumerate(env.possible_agents)})
        gym_obs, *_ = gym_env.step(request.astype(np.float32))
    assert negative  # the controller overloaded the network
    assert core.episode_metrics()["network_violation_steps"] > 0


# ---- network:PATH files
def test_network_file_with_kw_and_ampere_nodes_builds_the_expected_rows(tmp_path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("root:\n  name: feeder\n  limit_kw: 50\n  children:\n"
                    "    - name: panel\n      limit_a: 60\n"
                    "      stations: [{id: s1, phase: AB}, {id: s2, phase: BC}, {id: s3, phase: CA}]\n"
                    "    - {name: solo, limit_kw: 10, stations: [s4]}\n")
    ids = ("s4", "s2", "s1", "s3")
    scenario = Scenario(arrival=[0, 0, 0, 0], departure=[6, 6, 6, 6], soc_init=[0.0] * 4, soc_target=[20.0] * 4,
                        capacity=[40.0] * 4, station=[0, 1, 2, 3], n_stations=4, n_steps=6, station_ids=ids)
    config = EnvConfig(n_stations=4, n_pevs=4, total_time=30.0, network=f"network:{path}")
    core = ChargingCore(config, scenario)
    net = core.network
    assert net.names == ("panel I_a", "panel I_b", "panel I_c", "solo", "feeder")   # P_ref unset: no area row
    assert net.units == ("A", "A", "A", "kW", "kW")
    np.testing.assert_array_equal(net.limit, [60, 60, 60, 10, 50])
    k = 1000 / 208.0
    ab, bc, ca = (k * np.exp(1j * np.deg2rad(a)) for a in (30, -90, 150))
    want = np.array([[0, 0, ab, -ca], [0, bc, -ab, 0], [0, -bc, 0, ca], [1, 0, 0, 0], [1, 1, 1, 1]])
    np.testing.assert_allclose(net.gain, want, atol=1e-12)
    result = core.step(np.array([5.0, 7.0, 11.0, 3.0]))  # s4, s2, s1, s3
    i_ab, i_bc, i_ca = 11 * ab, 7 * bc, 3 * ca
    lines = np.abs([i_ab - i_ca, i_bc - i_ab, i_ca - i_bc])
    np.testing.assert_allclose(result.info["network_load"][:3], lines, rtol=1e-12)
    assert result.info["network_load"][3:].tolist() == [5.0, 26.0]
    assert lines.max() > 60  # I_b (75.6 A) is the most over its limit (the kW rows are within theirs)
    assert result.info["network_overload_pct"] == pytest.approx(100 * (lines.max() - 60) / 60, rel=1e-12)


def test_network_file_numbers_stations_in_the_files_order(tmp_path) -> None:
    """Station i of a scenario without ids is the file's i-th, in the order written: here the children first."""
    from pev_env.network import file_builder, site_ids

    path = tmp_path / "order.yaml"
    path.write_text("root:\n  name: feeder\n  limit_kw: 50\n  children:\n    - {name: small, limit_kw: 5, "
                    "stations: [s1]}\n  stations: [s0, s2]\n")
    assert site_ids(file_builder(path, [])) == ["s1", "s0", "s2"]
    net = site_network(EnvConfig(n_stations=3, network=f"network:{path}"))
    assert net.names[0] == "small" and net.gain[0].tolist() == [1, 0, 0]


def test_acn_caltech_network_runs_the_network_the_user_set() -> None:
    def plant(**fields: object) -> tuple[str, float]:
        config, _ = make_scenario("acn-caltech-network", 0, EnvConfig().with_overrides(fields))
        return config.network, config.transformer_kw

    assert plant() == ("caltech", 40.0) == plant(network="caltech")     # the scenario's 40 kW, not the 150 default
    assert plant(transformer_kw=25) == ("caltech", 25.0)
    assert plant(network="area")[0] == "area"


def test_a_site_field_of_a_network_no_scenario_is_on_is_refused(tmp_path, capsys, caplog) -> None:
    from experiments.cli.main import main

    with pytest.raises(SystemExit) as err:
        main(["compare", "--scenarios", "seed", "--controllers", "llf", "--set", "env.jpl_first_transformer_kw=5",
              "--dry-run"])
    assert err.value.code == 2
    assert ("compare.env.jpl_first_transformer_kw = 5.0: applies to network 'jpl' only; the run's scenarios are on "
            "area") in capsys.readouterr().err
    main(["compare", "--scenarios", "seed,acn-caltech-network", "--controllers", "llf", "--set",
          "env.transformer_kw=25", "--dry-run"])
    assert "applies to network 'caltech' only; not used by seed (area)" in caplog.text


# ---- traces
def test_compare_writes_the_network_traces_beside_the_unchanged_ones(tmp_path) -> None:
    from experiments.cli.main import main

    out = tmp_path / "cmp"
    assert main(["compare", "--scenarios", "seed", "--seeds", "0", "--controllers", "uncontrolled", "--jobs", "1",
                 "--no-plots", "--out", str(out), "-q"]) == 0
    trace = pd.read_csv(out / "traces" / "seed_seed0_uncontrolled.csv")
    assert list(trace.columns) == ["step", "time_min", "area_power_kw", "P_ref_kw", "price", "iterations",
                                   "converged", "fallbacks", *(f"p_{i}_kw" for i in range(6))]
    loads = pd.read_csv(out / "traces" / "seed_seed0_uncontrolled_network.csv")
    assert list(loads.columns) == ["step", "time_min", "load_0"]
    np.testing.assert_array_equal(loads["load_0"], trace["area_power_kw"])
    described = json.loads((out / "traces" / "seed_seed0_uncontrolled_network.json").read_text())
    assert described == {"name": "area", "constraints": [{"name": "area", "unit": "kW", "limit": 31.5, "stations": 6,
                                                          "linear": True, "column": "load_0"}]}


def test_a_network_scenarios_plot_shows_its_constraints_not_p_ref(tmp_path) -> None:
    """On acn-caltech-network P_ref (277 kW) is no limit: the plot of a network scenario is the most loaded
    constraint against its limit, so an overloading controller shows as above it."""
    from experiments.cli.main import main
    from experiments.commands.compare import RunKey, trace_paths, worst_load

    out = tmp_path / "cmp"
    assert main(["compare", "--scenarios", "seed,acn-caltech-network", "--seeds", "0", "--controllers",
                 "uncontrolled,llf", "--jobs", "1", "--out", str(out), "-q"]) == 0
    plotted = sorted(p.name for p in (out / "plots").glob("*_*.png") if not p.name.startswith("soc"))
    assert plotted == ["area_power_seed.png", "network_load_acn-caltech-network.png", "violations_unmet.png"]
    metrics = pd.read_csv(out / "metrics.csv").set_index(["controller", "scenario"])
    for controller in ("uncontrolled", "llf"):
        load = worst_load(trace_paths(out, RunKey(controller, "acn-caltech-network", 0, "acn-caltech-network")))
        over = int((load["load_pct"] > 100.0 + 1e-6).sum())
        assert over == metrics.loc[(controller, "acn-caltech-network"), "network_violation_steps"]
    assert over == 0 < int(metrics.loc[("uncontrolled", "acn-caltech-network"), "network_violation_steps"])


def test_episode_result_carries_every_caltech_constraint() -> None:
    from experiments.commands.runner import run_episode
    from experiments.controllers.registry import make_controller

    config, scenario = make_scenario("acn-caltech", 0, EnvConfig(network="caltech", transformer_kw=40))
    result = run_episode(make_controller("uncontrolled"), config, scenario, 0)
    columns = [c["column"] for c in result.constraints["constraints"]]
    assert columns == [f"load_{j}" for j in range(8)] and list(result.network.columns) == ["step", "time_min", *columns]
    assert [c["name"] for c in result.constraints["constraints"]][2] == "Secondary A"
    loads = caltech_loads(scenario.station_ids, result.trace[[f"p_{i}_kw" for i in range(config.n_stations)]]
                          .to_numpy(), 40.0)
    np.testing.assert_allclose(result.network[columns].to_numpy(), np.column_stack([v for v, _ in loads.values()]),
                               rtol=1e-12, atol=1e-9)
    assert result.row["network_violation_steps"] > 0 == result.row["area_violation_steps"]


# ---- bad network input: exit 2 with one line, before anything runs
BAD_FILES: dict[str, tuple[str, str | None]] = {  # name -> (file, its text; None: not written)
    "missing": ("none.yaml", None),
    "broken": ("broken.yaml", "root: [a, b\n"),
    "negative": ("negative.yaml", "root: {name: panel, limit_kw: -3, stations: [x]}\n"),
    "nolimit": ("nolimit.yaml", "root: {name: feeder, stations: [a, b, c, d, e, f]}\n"),
    "typo": ("typo.yaml", "root: {name: feeder, limit_kw: 50, stations: [{id: a, phas: AB}, b, c, d, e, f]}\n"),
    "toplevel": ("toplevel.yaml", "phases: AB\nroot: {name: feeder, limit_kw: 50, stations: [a, b, c, d, e, f]}\n"),
    "twice": ("twice.yaml", "root:\n  limit_kw: 5\n  limit_kw: 500\n  stations: [a, b, c, d, e, f]\n"),
    "twice_json": ("twice.json", '{"root": {"limit_kw": 5, "stations": ["a", "b", "c", "d", "e", "f"], "limit_kw": 500}}'),
    "string": ("string.yaml", "root: {name: feeder, limit_kw: 50, stations: abcdef}\n"),
    "null_id": ("null_id.yaml", "root: {name: feeder, limit_kw: 50, stations: [{id: ~}, b, c, d, e, f]}\n"),
    "phase": ("phase.yaml", "phase: XY\nroot: {name: feeder, limit_kw: 50, stations: [{id: a, phase: AB}, b]}\n"),
    "text": ("text.yaml", "root: {name: feeder, limit_kw: 4e1, stations: [a, b, c, d, e, f]}\n"),
}


@pytest.mark.parametrize(("args", "message"), [
    (["--scenarios", "acn-caltech", "--set", "env.network=jpl"],
     "compare.scenarios: acn-caltech: network jpl: station 'CA-"),
    (["--set", "env.network=network:{missing}"], "none.yaml: cannot read (No such file or directory)"),
    (["--set", "env.network=network:{broken}"], "broken.yaml: not valid YAML: line 2, column 1: expected ',' or ']'"),
    (["--set", "env.network=network:{negative}"], "negative.yaml': node 'panel': limit_kw = -3: must be a finite number > 0"),
    (["--set", "env.network=network:{nolimit}"], "nolimit.yaml': no node has limit_kw or limit_a"),
    (["--set", "env.network=network:"], "compare.env.network = 'network:': needs the path of a network file"),
    (["--set", "env.network=network:{typo}"], "station entry {'id': 'a', 'phas': 'AB'}: unknown key(s) ['phas']"),
    (["--set", "env.network=network:{toplevel}"], "unknown top-level key(s) ['phases']; allowed: root, phase"),
    (["--set", "env.network=network:{twice}"],
     "twice.yaml: not valid YAML: line 3, column 3: duplicate key 'limit_kw' (first on line 2)"),
    (["--set", "env.network=network:{twice_json}"], "twice.json: not valid JSON: duplicate key 'limit_kw'"),
    (["--set", "env.network=network:{string}"], "node 'feeder': stations = 'abcdef': must be a list (write [abcdef]"),
    (["--set", "env.network=network:{null_id}"], "node 'feeder': station None: an id must be a non-empty string"),
    (["--set", "env.network=network:{phase}"], "top-level phase = 'XY': must be AB, BC, CA or an angle in degrees"),
    (["--set", "env.network=network:{text}"], "limit_kw = '4e1': must be a finite number > 0 (YAML reads 4e1 as text"),
    (["--set", "env.network=bogus"],
     "compare.env.network = 'bogus': must be one of area, caltech, jpl, tree:B1,B2, network:PATH"),
    (["--set", "env.transformer_kw=-1"], "compare.env.transformer_kw = -1.0: must be > 0"),
    (["--set", "env.network=tree:0,3"], "compare.env.network = 'tree:0,3': B1 and B2 must be >= 1"),
])
def test_bad_network_input_exits_2_with_one_line(args, message, tmp_path, capsys) -> None:
    from experiments.cli.main import main

    files = {name: tmp_path / file for name, (file, _) in BAD_FILES.items()}
    for name, (_, text) in BAD_FILES.items():
        if text is not None:
            files[name].write_text(text)
    args = [a.format(**files) for a in args]
    with pytest.raises(SystemExit) as err:
        main(["compare", "--scenarios", "seed", "--controllers", "llf", "--seeds", "0", *args,
              "--out", str(tmp_path / "out"), "-q"])
    text = capsys.readouterr().err
    assert err.value.code == 2 and message in text
    assert text.startswith("pev-experiments compare: error: ") and text.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_scale_checks_the_network_of_every_size(tmp_path, capsys) -> None:
    from experiments.cli.main import main

    with pytest.raises(SystemExit) as err:
        main(["scale", "--sizes", "10,60", "--steps", "1", "--controllers", "edf", "--set", "env.network=caltech",
              "--out", str(tmp_path / "out"), "-q"])
    text = capsys.readouterr().err
    assert err.value.code == 2 and text.count("\n") == 1
    assert "scale.scenarios: synthetic-60: EnvConfig.network = 'caltech': has 54 stations" in text


def test_scale_records_the_network_file_it_read(tmp_path) -> None:
    import hashlib

    from experiments.cli.main import main

    path = tmp_path / "site.yaml"
    path.write_text("root: {name: feeder, limit_kw: 20, stations: [a, b, c, d]}\n")
    out = tmp_path / "out"
    assert main(["scale", "--sizes", "4", "--steps", "1", "--controllers", "edf", "--set",
                 f"env.network=network:{path}", "--out", str(out), "-q"]) == 0
    record = json.loads((out / "scale.json").read_text())
    assert record["network_files"] == {str(path.resolve()): hashlib.sha256(path.read_bytes()).hexdigest()}


def test_summary_names_the_network_each_scenario_ran_on(tmp_path) -> None:
    from experiments.cli.main import main

    out = tmp_path / "out"
    assert main(["compare", "--scenarios", "seed,acn-caltech-network", "--controllers", "llf", "--seeds", "0",
                 "--set", "env.transformer_kw=25", "--out", str(out), "-q", "--no-traces"]) == 0
    headings = [line for line in (out / "summary.md").read_text().splitlines() if line.startswith("## ")]
    assert headings == ["## seed", "## acn-caltech-network (network caltech, transformer 25 kW)"]
