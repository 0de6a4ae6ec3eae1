"""The model market on trees of linear limits (`pev_mpc.tree_market`): the tree is recognised exactly when the
rows nest, the elimination solves its Newton systems exactly, and the interior point clears the same market
as Clarabel (the objective, the plans and the dual value), with fixed cells, budgets, stations hanging on an
inner row and stations outside every row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from scipy import sparse

import pev_mpc.network_market as nm
import pev_mpc.tree_market as tm
from pev_env.config import EnvConfig
from pev_env.network import Network, site_network
from pev_mpc import MPCSettings
from pev_mpc.network_market import model_dual
from pev_mpc.objective import StationCosts, station_costs
from pev_mpc.separable_qp import SeparableStations

from test_network_coordinator import assert_agree, network_problem


def nested_network(seed: int, n: int = 24) -> Network:
    """A random tree: a feeder over two transformers, panels under them, a station on the feeder itself and
    one outside every row; kW rows or A rows at one voltage (gains proportional across stations)."""
    rng = np.random.default_rng(seed)
    panel = rng.integers(0, 4, n)                      # panels 0, 1 under transformer 0; 2, 3 under 1
    on_feeder_only, outside = n - 2, n - 1
    rows, names = [], []
    feeder = np.ones(n)
    feeder[outside] = 0.0
    rows.append(feeder)
    for t in range(2):
        row = np.isin(panel, [2 * t, 2 * t + 1]).astype(float)
        row[[on_feeder_only, outside]] = 0.0
        rows.append(row)
        for q in (2 * t, 2 * t + 1):
            row = (panel == q).astype(float)
            row[[on_feeder_only, outside]] = 0.0
            rows.append(row)
    names = ("feeder", "t0", "p0", "p1", "t1", "p2", "p3")
    unit = 1000.0 / 208.0 if seed % 2 else 1.0
    gain = np.array(rows) * unit * (np.exp(1j * np.pi / 6) if seed % 3 == 2 else 1.0)   # a phase: linear rows
    return Network("nested", names, gain, np.full(len(rows), 100.0), ("A" if seed % 2 else "kW",) * len(rows))


def test_row_tree_of_a_synthetic_tree_and_of_networks_that_are_not_trees():
    network = site_network(EnvConfig(network="tree:3,2", n_stations=14, P_ref=60.0))
    tree = network.tree
    assert tree is not None
    names = network.names
    for j, parent in enumerate(tree.parent):
        kind = names[j].split()[0]
        assert (parent < 0) == (kind == "feeder")
        if kind == "panel":
            assert names[parent].startswith("transformer")
    assert all(names[j].startswith("panel") for j in tree.leaf)
    assert np.all(tree.factor == 1.0) and np.all(tree.station_gain == 1.0)
    gain = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])        # two rows that overlap without nesting
    assert Network("x", ("a", "b"), gain, np.ones(2), ("kW",) * 2).tree is None
    gain = np.array([[1.0, 2.0], [1.0, 1.0]])                  # nested, gains not proportional
    assert Network("x", ("a", "b"), gain, np.ones(2), ("kW",) * 2).tree is None
    phases = np.exp(1j * np.deg2rad([30.0, -90.0]))
    assert Network("x", ("a",), phases[None, :], np.ones(1), ("A",)).tree is None   # a cone


def market_of(seed: int, horizon: int = 6):
    """A tree market with binding rows, budgets on most stations (some allowing only the lower bounds: fixed
    cells that load the rows) and positive lower bounds on some stations."""
    from dataclasses import replace

    network = nested_network(seed)
    problem = network_problem(network, seed, horizon=horizon, tightness=0.4)
    rng = np.random.default_rng(seed + 1)
    p_min = np.where(rng.random(problem.n_stations) < 0.3, 0.5, 0.0)
    problem = replace(problem, p_min=p_min, network=network.with_limits(problem.network.limit + network.loads(p_min)))
    model = SeparableStations(problem, MPCSettings(horizon=horizon))
    rng = np.random.default_rng(seed)
    costs = model.costs
    cells = np.flatnonzero(problem.mask.any(axis=1))
    share = np.where(rng.random(problem.n_stations) < 0.15, 0.0, rng.uniform(0.2, 1.2, problem.n_stations))
    least = problem.lower_plan().sum(axis=1)
    cap = problem.x0 + problem.c * (least + share * (problem.upper_plan().sum(axis=1) - least))
    costs = StationCosts(node_weight=costs.node_weight, linear=costs.linear, power_reg=costs.power_reg,
                         cap=np.where(rng.random(cap.size) < 0.7, cap, np.inf), offset=costs.offset)
    return problem, costs, cells


def tree_market_of(seed: int) -> tuple[tm.TreeMarket, tm._Layout]:
    """`market_of(seed)` as the interior point sees it: the market and its layout along the tree."""
    problem, costs, _ = market_of(seed)
    market, _ = tm.build_market(problem, costs, 1.0)
    return market, tm._Layout.of(market)


@pytest.mark.parametrize("seed", range(4))
def test_elimination_solves_the_newton_system_exactly(seed):
    market, layout = tree_market_of(seed)
    rng = np.random.default_rng(seed)
    n, m = market.q.size, market.rhs.size
    D, w = rng.uniform(0.01, 10.0, n), rng.uniform(1e-3, 10.0, m)
    nb = market.budget_station.size
    factors, definite = tm._factor(layout, D, w[:nb], w[nb:])
    r_c, r_r = rng.normal(size=n), rng.normal(size=m)
    dp, dzb, dzr = tm._solve(layout, factors, r_c, r_r[:nb], r_r[nb:])
    K = sparse.bmat([[sparse.diags(D), market.A.T], [market.A, -sparse.diags(w)]]).toarray()
    exact = np.linalg.solve(K, np.concatenate([r_c, r_r]))
    assert definite and market.row_node.size > 0 and nb > 0
    np.testing.assert_allclose(np.concatenate([dp, dzb, dzr]), exact, rtol=1e-9, atol=1e-9 * np.abs(exact).max())


@pytest.mark.parametrize("seed", range(4))
def test_loads_and_prices_summed_along_the_tree_are_the_markets_rows(seed):
    market, layout = tree_market_of(seed)
    rng = np.random.default_rng(seed)
    p, z = rng.normal(size=market.q.size), rng.normal(size=market.rhs.size)
    np.testing.assert_allclose(tm._load(layout, p), market.A @ p, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tm._price(layout, z), market.A.T @ z, rtol=1e-12, atol=1e-12)


def test_a_newton_system_that_is_not_definite_is_reported():
    market, layout = tree_market_of(0)
    nb = market.budget_station.size
    w = np.full(market.rhs.size, -1e6)                  # W^-1 < 0: s^2 M[K, K] + W^-1_K is not definite
    assert not tm._factor(layout, np.ones(market.q.size), w[:nb], w[nb:])[1]


def clarabel_market(problem, costs):
    return nm.clear_with_clarabel(problem, costs)


@hsettings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), horizon=st.integers(1, 12))
def test_the_tree_market_clears_what_clarabel_clears(seed, horizon):
    problem, costs, _ = market_of(seed, horizon)
    tree_plan, tree_y = tm.clear_tree_market(problem, costs)
    plan, y = clarabel_market(problem, costs)
    value = float(costs.value(problem, plan).sum())
    assert abs(float(costs.value(problem, tree_plan).sum()) - value) <= 1e-8 * max(1.0, abs(value))
    network = problem.network
    assert np.all(network.loads(tree_plan) <= network.limit[:, None] * (1 + 1e-8) + 1e-8)
    model = SeparableStations(problem, MPCSettings(horizon=horizon), costs)
    dual_tree, dual = model_dual(model, network, tree_y)[0], model_dual(model, network, y)[0]
    assert abs(dual_tree - dual) <= 1e-7 * max(1.0, abs(dual))   # both optimal multipliers (they need not be equal)
    mu = tree_y * np.conj(network.direction)[:, None]             # a linear row's y is mu >= 0 along its direction
    assert np.all(mu.real >= 0.0) and np.allclose(mu.imag, 0.0, atol=1e-12)


def test_a_synthetic_tree_is_cleared_without_clarabel(monkeypatch):
    network = site_network(EnvConfig(network="tree:3,4", n_stations=60, P_ref=200.0))
    problem = network_problem(network, 3, horizon=8, tightness=0.4)
    costs = station_costs(problem, MPCSettings(horizon=8))
    monkeypatch.setattr(nm.clarabel, "DefaultSolver", None)   # any call to Clarabel fails
    plan, y = nm.clear_separable_market(problem, costs)
    assert np.abs(y).max() > 0 and np.all(network.loads(plan) <= problem.network.limit[:, None] * (1 + 1e-8))


def test_an_interior_point_that_stops_short_falls_back_to_clarabel(monkeypatch):
    problem, costs, _ = market_of(1)
    expected = clarabel_market(problem, costs)
    monkeypatch.setattr(tm, "MAX_ITERATIONS", 2)
    assert tm.clear_tree_market(problem, costs) is None
    plan, y = nm.clear_separable_market(problem, costs)
    np.testing.assert_array_equal(plan, expected[0])
    np.testing.assert_array_equal(y, expected[1])


@pytest.mark.parametrize("objective", ["deadline", "tracking"])
def test_decentralised_equals_centralised_with_the_tree_market(objective, monkeypatch):
    cleared = []
    original = tm.interior_point
    monkeypatch.setattr(tm, "interior_point", lambda market: cleared.append(1) or original(market))
    network = site_network(EnvConfig(network="tree:3,4", n_stations=48, P_ref=150.0))
    for seed in range(3):
        assert_agree(network_problem(network, seed, horizon=10, tightness=0.4), MPCSettings(horizon=10, objective=objective))
    assert cleared or objective == "tracking"      # the tracking stations report QPs: the centralised solver clears


def run_benchmark(*args: str) -> subprocess.CompletedProcess:
    """benchmarks/tree_market.py run with `args`."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "tree_market.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300)


def test_the_benchmark_script_clears_a_synthetic_tree_both_ways():
    run = run_benchmark("--stations", "200", "--network", "tree:4,5", "--repeats", "1")
    assert run.returncode == 0, run.stderr
    assert "tree interior point" in run.stdout and "Clarabel" in run.stdout
    difference = float(run.stdout.split("objective relative difference ")[1].split(";")[0])
    assert difference < 1e-8


def episode(monkeypatch, tree_market: bool) -> tuple[dict, list[dict]]:
    """A synthetic tree episode of the decentralised MPC, its markets cleared by the tree market or Clarabel."""
    from pev_env.core import ChargingCore
    from pev_env.scenarios import make_scenario
    from pev_mpc.policies import make_policy

    if not tree_market:
        monkeypatch.setattr(tm, "clear_tree_market", lambda problem, costs: None)    # Clarabel clears
    config, scenario = make_scenario("synthetic-300", 0, EnvConfig(network="tree:20,25"))
    policy = make_policy("mpc-decentralised")
    policy.reset(config, scenario, 0)
    core = ChargingCore(config, scenario)
    obs, stats = core.reset(), []
    while not core.done:
        obs = core.step(policy.act_array(obs)).observations
        stats.append(dict(policy.last_stats))
    return core.episode_metrics(), stats


def test_a_closed_loop_episode_with_the_tree_market_on_every_clearing(monkeypatch):
    cleared = []
    original = tm.interior_point
    monkeypatch.setattr(tm, "interior_point", lambda market: cleared.append(original(market)) or cleared[-1])
    metrics, stats = episode(monkeypatch, True)
    with_clarabel, _ = episode(monkeypatch, False)
    assert len(cleared) > 20 and all(out is not None for out in cleared)     # never fell back to Clarabel
    assert metrics["network_violation_steps"] == 0
    assert all(s["converged"] and s["iterations"] <= 3 for s in stats)
    assert abs(metrics["unmet_energy_kwh"] - with_clarabel["unmet_energy_kwh"]) <= 1e-3


@pytest.mark.parametrize("args, named", [(["--stations", "0"], "--stations"), (["--network", "tree:0,5"], "tree:0,5")])
def test_the_benchmark_script_rejects_bad_input_with_exit_2(args, named):
    run = run_benchmark(*args)
    assert run.returncode == 2
    assert named in run.stderr.strip().splitlines()[-1] and "Traceback" not in run.stderr
