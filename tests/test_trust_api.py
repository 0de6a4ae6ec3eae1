"""The Python API refuses complex numbers and booleans where real numbers or ints belong (numpy would cast them
with at most a warning: the imaginary part dropped, True read as 1), naming the argument."""

from __future__ import annotations

import numpy as np
import pytest

from pev_env.core import ChargingCore
from pev_env.scenario import Scenario
from pev_env.scenarios import make_scenario
from pev_mpc import ChargingProblem, MPCSettings

PROBLEM = dict(x0=[1.0, 2.0], r=[10.0, 10.0], s=[20.0, 20.0], d=[3, 3], p_min=0.0, p_max=7.0, eta=0.9, dt_h=0.25,
               P_ref=10.0, horizon=4)


@pytest.mark.parametrize(("bad", "error", "message"), [
    ({"horizon": True}, TypeError, r"ChargingProblem.horizon = True: must be an int >= 1, not bool"),
    ({"x0": np.array([1 + 1j, 2.0])}, TypeError, r"ChargingProblem.x0 holds complex values"),
    ({"r": [10.0, 10 + 0j]}, TypeError, r"ChargingProblem.r holds complex values"),
    ({"P_ref": 10 + 0j}, TypeError, r"ChargingProblem.P_ref holds complex values"),
    ({"eta": 0.9 + 0j}, TypeError, r"ChargingProblem.eta holds complex values"),
    ({"p_max": np.array([True, True])}, TypeError, r"ChargingProblem.p_max holds boolean values"),
])
def test_charging_problem_refuses_complex_and_bool(bad, error, message) -> None:
    assert ChargingProblem(**PROBLEM).horizon == 4
    with pytest.raises(error, match=message):
        ChargingProblem(**{**PROBLEM, **bad})


@pytest.mark.parametrize(("bad", "error", "message"), [
    ({"horizon": True}, TypeError, r"MPCSettings.policy.horizon = True: must be an int, not bool"),
    ({"max_iterations": False}, TypeError, r"MPCSettings.coordination.max_iterations = False: must be an int, not bool"),
    ({"unmet_weight": 100 + 0j}, TypeError, r"MPCSettings.objective.unmet_weight = \(100\+0j\): must be a number, not complex"),
    ({"horizon": 10**9}, ValueError, r"MPCSettings.policy.horizon = 1000000000: must be an int in \[1, 2016\]"),
])
def test_mpc_settings_refuse_bool_complex_and_huge(bad, error, message) -> None:
    with pytest.raises(error, match=message):
        MPCSettings(**bad)


def test_plant_and_scenario_refuse_complex() -> None:
    config, scenario = make_scenario("seed", 0)
    core = ChargingCore(config, scenario)
    with pytest.raises(ValueError, match=r"requested_kw .*complex"):
        core.step(np.zeros(config.n_stations) + 0j)
    with pytest.raises(ValueError, match=r"Scenario.soc_init = .*must be real numbers"):
        Scenario(arrival=[0], departure=[2], soc_init=[1 + 1j], soc_target=[5.0], capacity=[10.0], station=[0],
                 n_stations=1, n_steps=4)


def test_plant_refuses_text_actions() -> None:
    config, scenario = make_scenario("seed", 0)
    core = ChargingCore(config, scenario)
    for text in (np.array(["1"] * config.n_stations), np.array(["1"] * config.n_stations, dtype=object)):
        with pytest.raises(ValueError, match=r"requested_kw .*text"):
            core.step(text)


def test_nan_warm_prices_are_refused() -> None:
    from pev_mpc.decentralised import solve_decentralised

    problem = ChargingProblem(**PROBLEM)
    with pytest.raises(ValueError, match=r"warm_prices = .*must be finite"):
        solve_decentralised(problem, MPCSettings(), warm_prices=np.full(4, np.nan))


def test_network_units_are_checked() -> None:
    from pev_env.network import Network, NetworkError

    with pytest.raises(NetworkError, match=r"units = \('MW',\): must be a sequence of 'A' or 'kW'"):
        Network("mine", ("row",), np.ones((1, 2)), np.array([5.0]), ("MW",))
    with pytest.raises(NetworkError, match=r"units = 'kW'"):
        Network("mine", ("row",), np.ones((1, 2)), np.array([5.0]), "kW")


def test_a_site_network_gets_the_same_plant_however_it_is_built() -> None:
    """Built directly, as make_scenario builds it: an unset P_ref is no constraint on a site network."""
    from pev_env.config import EnvConfig

    derived, scenario = make_scenario("seed", 0, base=EnvConfig(network="caltech"))
    direct = ChargingCore(EnvConfig(network="caltech"), scenario)
    assert direct.config == derived and "area" not in direct.network.names
    assert "area" in ChargingCore(EnvConfig(network="caltech", P_ref=20.0), scenario).network.names


def test_a_policy_on_a_site_network_needs_the_scenario() -> None:
    from pev_env.config import EnvConfig
    from pev_mpc.policies import make_policy

    config, scenario = make_scenario("acn-caltech", 0, base=EnvConfig(network="caltech", transformer_kw=40.0))
    with pytest.raises(ValueError, match=r"LLF.reset: network 'caltech' places each station by the scenario's "
                                         r"station ids: pass the scenario"):
        make_policy("llf").reset(config)
    make_policy("llf").reset(config, scenario)
