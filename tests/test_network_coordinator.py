"""The decentralised MPC on a network (one multiplier per constraint and step) equals the centralised one:
random linear and phasor networks (Hypothesis), the caltech and jpl sites and nested trees; the price
convention, the projection and lost replies."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st_

from pev_env.config import EnvConfig
from pev_env.network import Network, site_network
from pev_mpc.pool import MINIMAL
from pev_mpc import ChargingProblem, MPCSettings, solve_centralised, solve_decentralised
from pev_mpc.decentralised import make_station_pool
from pev_mpc.network_allocation import dual_penalty, station_prices
from pev_mpc.network_coordinator import project_to_network, shift_multipliers

H = 12
PHASES = np.exp(1j * np.deg2rad([30.0, -90.0, 150.0]))


def network_problem(network: Network, seed: int, horizon: int = H, tightness: float = 0.5) -> ChargingProblem:
    """Random sessions on the network's stations; the limits scaled so that about `tightness` of the
    full-power load fits (the network binds)."""
    rng = np.random.default_rng(seed)
    n = network.n_stations
    p_max = rng.choice([6.6, 11.0], n)
    dep = np.where(rng.random(n) < 0.7, rng.integers(1, 3 * horizon, n), 0)
    d = np.minimum(dep, horizon)
    r = np.where(d > 0, rng.uniform(1.0, 30.0, n), 0.0)
    full = network.loads(p_max)
    limit = np.maximum(tightness * full, 1e-3 * network.limit)
    net = Network(network.name, network.names, network.gain, limit, network.units)
    return ChargingProblem(x0=np.zeros(n), r=r, s=r, d=d, p_min=0.0, p_max=p_max, eta=0.9, dt_h=5 / 60, P_ref=1e9,
                           horizon=horizon, departure=dep, network=net)


def random_network(n: int, rows: int, cones: bool, seed: int) -> Network:
    """Rows over random station subsets; cones: phasor gains (three phases, signed coefficients)."""
    rng = np.random.default_rng(seed)
    phase = PHASES[rng.integers(0, 3, n)] if cones else np.ones(n)
    coef = rng.choice([0.0, 1.0, 0.25, -1.0] if cones else [0.0, 1.0, 1.0, 0.5], (rows, n))
    coef[:, rng.integers(0, n)] = 1.0  # no empty row
    gain = coef * phase[None, :] * (1000 / 208 if cones else 1.0)
    return Network("random", tuple(f"row {j}" for j in range(rows)), gain, np.full(rows, 100.0),
                   ("A" if cones else "kW",) * rows)


def assert_agree(problem: ChargingProblem, settings: MPCSettings, warm=None):
    """Relative objective gap <= 1e-6, first move within 0.01 kW (unless the decentralised plan is the
    better one: on a flat stretch of the objective the interior point's own plan is that far off), every
    constraint held (phasor loads)."""
    dec, cen = solve_decentralised(problem, settings, warm_prices=warm), solve_centralised(problem, settings)
    assert dec.converged and cen.converged and dec.fallbacks == 0
    assert abs(dec.objective - cen.objective) / max(1.0, abs(cen.objective)) <= 1e-6
    assert np.max(np.abs(dec.p[:, 0] - cen.p[:, 0]), initial=0.0) < 0.01 or dec.objective <= cen.objective
    assert np.all(problem.network.loads(dec.p) <= problem.network.limit[:, None] * (1 + 1e-9))
    assert dec.prices.shape == (problem.network.n_constraints, problem.horizon)
    return dec, cen


@pytest.mark.parametrize("objective", ["deadline", "tracking"])
@pytest.mark.parametrize("name, kwargs", [("caltech", {"transformer_kw": 40.0}), ("caltech", {"transformer_kw": 25.0}),
                                          ("jpl", {}), ("tree:3,2", {"P_ref": 60.0})])
def test_sites_agree_with_centralised(name, kwargs, objective):
    n = {"caltech": 54, "jpl": 52}.get(name, 30)
    network = site_network(EnvConfig(network=name, n_stations=n, **kwargs))
    for seed in range(2):
        dec, _ = assert_agree(network_problem(network, seed), MPCSettings(horizon=H, objective=objective))
        assert dec.iterations <= 25


@hsettings(max_examples=25, deadline=None)
@given(n=st_.integers(1, 12), rows=st_.integers(1, 4), cones=st_.booleans(), seed=st_.integers(0, 10**6),
       tightness=st_.floats(0.05, 1.5))
def test_random_networks_agree_with_centralised(n, rows, cones, seed, tightness):
    problem = network_problem(random_network(n, rows, cones, seed), seed, tightness=tightness)
    assert_agree(problem, MPCSettings(horizon=H))


@pytest.mark.filterwarnings("ignore:Reading from a sparse CVXPY expression:RuntimeWarning")   # cvxpy's own reads
def test_the_centralised_networks_matrices_are_sparse_parameters():
    """On a tree the solver's constraint matrix holds the rows' nonzeros only (dense Parameters made the
    centralised MPC take 9-21 s a step at N = 100), and a network of the same shape with other nonzeros
    gets a model of its own."""
    import pev_mpc.centralised as centralised

    network = site_network(EnvConfig(network="tree:20,25", n_stations=100, P_ref=150.0))
    settings = MPCSettings(horizon=6)
    problem = network_problem(network, 0, horizon=6, tightness=0.4)
    solve_centralised(problem, settings)
    values = centralised._network_values(problem.network, 6)
    sparsity = centralised._sparsity(values)
    model = centralised._CACHE[centralised._shape(problem, values, sparsity)]
    dense = values["linear_gain"].size * 6                    # what dense rows alone would store
    assert model.problem.get_problem_data("CLARABEL")[0]["A"].nnz < dense / 4
    other = Network("shifted", network.names, np.roll(network.gain, 1, axis=1), network.limit, network.units)
    shifted = dataclasses.replace(problem, network=other)
    assert centralised._shape(shifted, centralised._network_values(other, 6),
                              centralised._sparsity(centralised._network_values(other, 6))) != \
        centralised._shape(problem, values, sparsity)
    assert_agree(shifted, settings)


def test_price_convention_is_the_centralised_dual():
    """pi = Re(conj(G)^T y) with the centralised multipliers: on steps strictly inside their bounds the
    stations' marginal cost plus pi is one constant per station (their budget multiplier)."""
    network = site_network(EnvConfig(network="caltech", n_stations=54, transformer_kw=25.0))
    problem = network_problem(network, 3)
    settings = MPCSettings(horizon=H)
    cen = solve_centralised(problem, settings)
    pi = station_prices(problem.network, cen.prices)
    pool = make_station_pool(problem, settings)
    lin, reg = pool.costs.linear, pool.costs.power_reg
    marginal = lin + 2 * reg[:, None] * cen.p + pi
    free = (cen.p > problem.lower_plan() + 1e-3) & (cen.p < problem.upper_plan() - 1e-3)
    spread = [np.ptp(marginal[i, free[i]]) for i in range(problem.n_stations) if free[i].sum() > 1]
    assert spread and max(spread) < 1e-3 * max(1.0, float(np.abs(pi).max()))
    assert dual_penalty(problem.network, cen.prices) >= 0.0


def test_warm_start_from_the_last_step_and_lost_replies():
    """A shifted warm start converges in fewer rounds; a reply lost once is asked again (still converged),
    a station that never answers leaves the step unconverged."""
    network = site_network(EnvConfig(network="caltech", n_stations=54, transformer_kw=40.0))
    problem = network_problem(network, 5)
    settings = MPCSettings(horizon=H)
    cold, _ = assert_agree(problem, settings)
    warm, _ = assert_agree(problem, settings, warm=np.concatenate([cold.prices[:, :1], cold.prices], axis=1))
    assert warm.iterations <= cold.iterations
    assert shift_multipliers(cold.prices, problem.network, H + 3).shape == (network.n_constraints, H + 3)
    assert np.all(shift_multipliers(None, problem.network, H) == 0)

    class Lossy:
        capabilities = MINIMAL

        def __init__(self, pool, losses):
            self.pool, self.losses, self.n_stations, self.horizon = pool, losses, pool.n_stations, pool.horizon

        def respond(self, prices, want_sensitivity=False):
            rep = self.pool.respond(prices, want_sensitivity)
            if self.losses == 0:
                return rep
            self.losses -= 1
            answered = rep.answered.copy()
            answered[np.flatnonzero(problem.d > 0)[0]] = False
            return dataclasses.replace(rep, answered=answered)

    once = solve_decentralised(problem, settings, pool=Lossy(make_station_pool(problem, settings), 1))
    assert once.converged and once.missing_replies == 1
    never = solve_decentralised(problem, dataclasses.replace(settings, max_iterations=6),
                                pool=Lossy(make_station_pool(problem, settings), 10**9))
    assert not never.converged and never.missing_replies >= 5


def test_a_model_market_the_solver_cannot_clear_ends_the_step_unconverged(monkeypatch):
    """Clarabel failing on the model market is no traceback: the step ends on the replies so far, projected
    onto the network, reported not converged with the solver's status."""
    import pev_mpc.network_coordinator as nc
    from pev_mpc.network_market import MarketError

    def fail(*args, **kwargs):
        raise MarketError("network model market: Clarabel status NumericalError")

    monkeypatch.setattr(nc, "clear_separable_market", fail)
    network = site_network(EnvConfig(network="caltech", n_stations=54, transformer_kw=25.0))
    problem = network_problem(network, 1)
    out = solve_decentralised(problem, MPCSettings(horizon=H))
    assert not out.converged and out.iterations == 1
    assert "NumericalError" in out.history["market_error"]
    assert np.all(problem.network.loads(out.p) <= problem.network.limit[:, None] * (1 + 1e-9))


def test_with_limits_keeps_the_structure_and_checks_the_limits():
    network = site_network(EnvConfig(network="tree:3,2", n_stations=30, P_ref=60.0))
    _ = network._sparse, network.sparse_gain
    wider = network.with_limits(network.limit * 2.0)
    assert np.array_equal(wider.limit, network.limit * 2.0) and wider.gain is network.gain
    assert wider.linear is network.linear and wider.__dict__["sparse_gain"] is network.sparse_gain
    assert np.array_equal(network.limit, site_network(EnvConfig(network="tree:3,2", n_stations=30, P_ref=60.0)).limit)
    p = np.full(30, 3.0)
    assert np.allclose(wider.overload(p), network.loads(p) - 2.0 * network.limit)
    for bad in (network.limit[:-1], -network.limit, np.full(network.n_constraints, np.nan)):
        with pytest.raises(ValueError, match="limits"):
            network.with_limits(bad)


@hsettings(max_examples=40, deadline=None)
@given(n=st_.integers(1, 10), rows=st_.integers(1, 4), cones=st_.booleans(), seed=st_.integers(0, 10**6))
def test_projection_holds_every_constraint_and_only_lowers(n, rows, cones, seed):
    network = random_network(n, rows, cones, seed)
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 20, (n, 5))
    lower = np.minimum(rng.uniform(0, 1, (n, 5)), p) * (rng.random((n, 5)) < 0.3)
    out = project_to_network(p, lower, network)
    feasible_lower = np.all(network.overload(lower) <= 0, axis=0)
    assert np.all(network.overload(out)[:, feasible_lower] <= 0)
    assert np.all(out <= p + 1e-12) and np.all(out >= lower - 1e-12)
    untouched = np.all(network.overload(p) <= 0, axis=0)
    assert np.array_equal(out[:, untouched], p[:, untouched])


@hsettings(max_examples=30, deadline=None)
@given(seed=st_.integers(0, 10**6), squeeze=st_.floats(0.0, 1.0))
def test_cleared_rows_fitted_to_budgets(seed, squeeze):
    """A cleared plan past a station's budget (a model that left the budget out, or the interior point's
    residue on a budget at the edge) is scaled down by that station to its budget above `lower`; rows within
    their budget are unchanged. Without this the candidate was dropped and such steps ran to the cap."""
    from pev_mpc.network_coordinator import fit_budgets
    from pev_mpc.objective import station_costs

    problem = network_problem(random_network(8, 2, True, seed), seed)
    costs = station_costs(problem, MPCSettings(horizon=H))
    rng = np.random.default_rng(seed)
    lower = problem.lower_plan()
    plan = np.where(problem.mask, rng.uniform(0.0, 1.0, lower.shape) * problem.upper_plan(), 0.0)
    plan = np.maximum(plan, lower)
    budget = problem.x0 + problem.c * plan.sum(axis=1)
    costs = dataclasses.replace(costs, cap=np.where(rng.random(8) < 0.5, budget * squeeze, costs.cap))
    out = fit_budgets(plan, lower, problem, costs)
    energy = problem.x0 + problem.c * np.where(problem.mask, out, 0.0).sum(axis=1)
    floor = problem.x0 + problem.c * np.where(problem.mask, lower, 0.0).sum(axis=1)
    assert np.all(energy <= np.maximum(costs.cap, floor) + 1e-9 * np.maximum(1.0, np.abs(costs.cap)))
    assert np.all(out <= plan + 1e-12) and np.all(out >= np.minimum(lower, plan) - 1e-12)
    kept = budget <= costs.cap
    assert np.array_equal(out[kept], plan[kept])
