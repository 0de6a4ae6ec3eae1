"""Full episodes of every policy on the `seed` scenario (ChargingCore array API and PettingZoo dicts)."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from pev_env import EnvConfig, PEVChargeEnv, Scenario
from pev_env.core import ChargingCore
from pev_env.scenarios import make_scenario
from pev_mpc.policies import POLICIES, make_policy

SEEDS = (0, 1, 2)
RESPECT_P_REF = ("edf", "llf", "equal-share", "mpc-decentralised", "mpc-decentralised-tracking", "mpc-centralised",
                 "mpc-foresight", "offline-optimal")
MPC = ("mpc-decentralised", "mpc-centralised")
UNMET_TOL_KWH = 1e-3
IN_PROCESS = sorted(set(POLICIES) - {"mpc-distributed", "mpc-history"})
"""mpc-distributed needs Ray (tests/test_distributed_mpc.py), mpc-history a site's other days (tests/test_history.py)."""


def run_episode(name: str, scenario_name: str, seed: int) -> dict:
    """Episode metrics of policy `name` on a named scenario, through the array API."""
    return run_scenario(name, *make_scenario(scenario_name, seed))


def run_scenario(name: str, config: EnvConfig, scenario: Scenario) -> dict:
    """Episode metrics of policy `name` on (config, scenario), through the array API."""
    core = ChargingCore(config, scenario)
    policy = make_policy(name)
    policy.reset(config, scenario)
    obs = core.reset()
    iterations = []
    while not core.done:
        obs = core.step(policy.act_array(obs)).observations
        iterations.append(policy.last_stats["iterations"])
    return {**core.episode_metrics(), "iterations": iterations}


@functools.cache
def seed_metrics(name: str, seed: int) -> dict:
    return run_episode(name, "seed", seed)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", IN_PROCESS)
def test_full_episode_is_clean(name, seed):
    m = seed_metrics(name, seed)
    assert m["local_violation_steps"] == 0
    if name in RESPECT_P_REF:
        assert m["area_violation_steps"] == 0
        assert m["area_overload_kwh"] == 0.0
    assert 0.0 <= m["unmet_energy_kwh"] <= m["energy_requested_kwh"] + 1e-9


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mpc", MPC)
def test_mpc_no_worse_than_deadline_heuristics(mpc, seed):
    """On `seed` the area limit (31.5 kW) binds nearly always and MPC matches EDF/LLF."""
    unmet = seed_metrics(mpc, seed)["unmet_energy_kwh"]
    assert unmet <= seed_metrics("edf", seed)["unmet_energy_kwh"] + UNMET_TOL_KWH
    assert unmet <= seed_metrics("llf", seed)["unmet_energy_kwh"] + UNMET_TOL_KWH


@pytest.mark.parametrize("seed", SEEDS)
def test_default_mpc_coordinates_in_few_rounds(seed):
    """The round goals on `seed`: at most 25 rounds in any step and 6 on average. Seed 2 had steps of
    27, 28 and 32 rounds before the model market (MPCSettings.model_after)."""
    iterations = seed_metrics("mpc-decentralised", seed)["iterations"]
    assert max(iterations) <= 25 and np.mean(iterations) <= 6


@pytest.mark.parametrize("scenario, seed", [("seed-20", 0), ("seed-20", 2), ("seed-20", 10)])
def test_deadline_mpc_between_offline_bound_and_llf(scenario, seed):
    """Closed loop from the start (arrivals, departures): the default MPC respects the limit, takes at
    most 25 rounds in any step, leaves no more energy unmet than LLF and stays within 0.5 % of the
    offline bound. Seed 10 has a step that crept to the cap without the longer smoothed steps on
    nearly linear stretches, and one that stalled there at a 1e-6 kW overload without the
    residual-judged steps below the noise of the dual value (area_newton.judge); seed 0 had a
    39-round step before the model market (MPCSettings.model_after)."""
    mpc = run_episode("mpc-decentralised", scenario, seed)
    llf = run_episode("llf", scenario, seed)["unmet_energy_kwh"]
    bound = run_episode("offline-optimal", scenario, seed)["unmet_energy_kwh"]
    assert mpc["area_violation_steps"] == 0 and max(mpc["iterations"]) <= 25
    assert bound - 1e-6 <= mpc["unmet_energy_kwh"] <= llf + UNMET_TOL_KWH
    assert mpc["unmet_energy_kwh"] <= 1.005 * bound + UNMET_TOL_KWH


@pytest.mark.parametrize("seed", SEEDS)
def test_offline_optimal_is_a_lower_bound(seed):
    bound = seed_metrics("offline-optimal", seed)["unmet_energy_kwh"]
    for name in RESPECT_P_REF:
        assert bound <= seed_metrics(name, seed)["unmet_energy_kwh"] + 1e-6, name


@pytest.mark.parametrize("seed", (0, 1))
def test_offline_optimal_bound_when_policies_differ(seed):
    """A looser area limit (50 kW) than `seed`'s, where the controllers' unmet energies differ."""
    config, scenario = make_scenario("seed", seed, EnvConfig(P_ref=50.0))
    unmet = {name: run_scenario(name, config, scenario)["unmet_energy_kwh"]
             for name in ("offline-optimal", "edf", "llf", "equal-share", "mpc-centralised")}
    assert len({round(v, 3) for v in unmet.values()}) > 1  # the comparison is not vacuous
    assert all(unmet["offline-optimal"] <= v + 1e-6 for v in unmet.values()), unmet


def test_uncontrolled_overloads_the_area():
    m = seed_metrics("uncontrolled", 0)
    assert m["area_violation_steps"] > 0
    assert m["unmet_energy_kwh"] <= seed_metrics("offline-optimal", 0)["unmet_energy_kwh"] + 1e-6


def test_offline_optimal_bound_on_acn():
    bound = run_episode("offline-optimal", "acn-caltech", 0)
    edf = run_episode("edf", "acn-caltech", 0)
    assert bound["area_violation_steps"] == 0
    assert bound["unmet_energy_kwh"] <= edf["unmet_energy_kwh"] + 1e-6


@pytest.mark.parametrize("name", IN_PROCESS)
def test_pettingzoo_episode_matches_array_api(name):
    config, scenario = make_scenario("seed", 0)
    env = PEVChargeEnv(config=config, scenario=scenario)
    policy = make_policy(name)
    policy.reset(env.config, scenario, 0)
    observations, _ = env.reset(seed=0)
    while env.agents:
        actions = policy.act(observations)
        assert set(actions) == set(env.agents)
        assert all(a.shape == (1,) and a.dtype == np.float32 for a in actions.values())
        observations, *_ = env.step(actions)
    m = env.core.episode_metrics()
    reference = seed_metrics(name, 0)
    assert m["local_violation_steps"] == 0
    if name in RESPECT_P_REF:
        assert m["area_violation_steps"] == 0
    # float32 actions: the same episode up to rounding
    assert m["unmet_energy_kwh"] == pytest.approx(reference["unmet_energy_kwh"], abs=1e-3)


def test_heldout_day_whose_step_once_hit_the_round_cap():
    """acn-caltech-eval seed 43 (a held-out Caltech day): one step used to creep for 200 rounds, a bid
    jump that a budget-bound station did not follow; the stall safeguard hands back to the smoothed
    steps. Every step now converges well below the cap, at the offline optimum."""
    mpc = run_episode("mpc-decentralised", "acn-caltech-eval", 43)
    assert mpc["area_violation_steps"] == 0 and max(mpc["iterations"]) <= 60
    bound = run_episode("offline-optimal", "acn-caltech-eval", 43)["unmet_energy_kwh"]
    assert mpc["unmet_energy_kwh"] <= 1.001 * bound + UNMET_TOL_KWH
