"""benchmarks/causal_bound.py: the non-anticipative lower bound on any causal controller's worst gap."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from pev_env.config import EnvConfig
from pev_env.network import Network
from pev_env.scenario import Scenario

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "causal_bound.py"
ROWS = {"V": [0], "X or Y": [1, 2], "X or Z1": [1, 3], "Y or Z2": [2, 4]}
"""Stations 0-4 = V, X, Y, Z1, Z2; each row's limit is 1 kW, each station's rating 1 kW."""


@pytest.fixture(scope="module")
def bound():
    spec = importlib.util.spec_from_file_location("causal_bound", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def _network() -> Network:
    gain = np.zeros((len(ROWS), 5), dtype=complex)
    for j, stations in enumerate(ROWS.values()):
        gain[j, stations] = 1.0
    return Network("two futures", tuple(ROWS), gain, np.ones(len(ROWS)), ("kW",) * len(ROWS))


def _day(newcomer: int) -> Scenario:
    """Hourly steps. V (step 0 only) needs 2 kWh: 1 kWh is unmet in any plan. X and Y, plugged both steps, need
    1 kWh each and share one row; at step 1 a newcomer needing 1 kWh arrives at Z1 (on X's row) or Z2 (on Y's)."""
    return Scenario(arrival=[0, 0, 0, 1], departure=[1, 2, 2, 2], soc_init=[0.0] * 4, soc_target=[2.0, 1.0, 1.0, 1.0],
                    capacity=[2.0] * 4, station=[0, 1, 2, newcomer], n_stations=5, n_steps=2, name=f"Z{newcomer - 2}")


CONFIG = EnvConfig(n_stations=5, n_pevs=4, p_max=1.0, xi=0.0, sampling_time=60.0, total_time=120.0, P_ref=5.0)


def test_two_futures_that_need_opposite_first_moves_bound_every_causal_controller_at_half(bound) -> None:
    """At step 0 a causal controller splits the X-or-Y row's 1 kW as a to X and 1 - a to Y without knowing the
    newcomer; with it at Z1, X can take only what Z1 leaves at step 1, so a plan leaves 1 + (1 - a) kWh, with it
    at Z2, 1 + a; each day alone leaves 1 kWh. The best split, a = 1/2, leaves 50 % more than the optimum on both."""
    network = _network()
    first = bound.day_model(CONFIG, network, _day(3))
    other = bound.day_model(CONFIG, network, _day(4), first, tau=1)
    assert first.optimum == pytest.approx(1.0, abs=1e-6) and other.optimum == pytest.approx(1.0, abs=1e-6)
    z, unmet, accurate = bound.causal_bound([first, other])
    assert accurate
    assert z == pytest.approx(0.5, abs=1e-5)
    assert unmet == pytest.approx([1.5, 1.5], abs=1e-5)


def test_a_day_told_apart_from_the_start_costs_nothing(bound) -> None:
    """tau = 0: nothing is shared, each day keeps its own optimum (z* = 0)."""
    network = _network()
    first = bound.day_model(CONFIG, network, _day(3))
    z, _, _ = bound.causal_bound([first, bound.day_model(CONFIG, network, _day(4), first, tau=0)])
    assert z == pytest.approx(0.0, abs=1e-5)


def test_a_day_plugged_differently_before_tau_is_refused(bound) -> None:
    network = _network()
    first = bound.day_model(CONFIG, network, _day(3))
    with pytest.raises(RuntimeError, match="plugged differently from D before tau = 2"):
        bound.day_model(CONFIG, network, _day(4), first, tau=2)


def test_splice_keeps_the_day_before_the_step_and_the_other_days_free_stations_after(bound) -> None:
    day = Scenario(arrival=[0, 3, 5], departure=[6, 8, 9], soc_init=[0.0] * 3, soc_target=[1.0] * 3,
                   capacity=[2.0] * 3, station=[0, 1, 2], n_stations=3, n_steps=9)
    other = Scenario(arrival=[1, 4, 4, 7], departure=[2, 10, 6, 8], soc_init=[0.0] * 4, soc_target=[1.5] * 4,
                     capacity=[2.0] * 4, station=[2, 0, 1, 1], n_stations=3, n_steps=10)
    spliced, tau = bound.splice(day, other, 4)
    # day's PEVs arriving before step 4 (stations 0 and 1), then other's from step 4 on at stations free by
    # then: station 0 is busy until 6 (left out), station 1 until 8 (the arrival at 4 left out, at 7 too)
    assert spliced.arrival.tolist() == [0, 3] and spliced.station.tolist() == [0, 1]
    assert tau == 5        # day's next arrival (other's from step 4 are all left out)
    spliced, tau = bound.splice(day, other, 1)
    # station 0 is busy until 6: other's PEV arriving there at 4 is left out; its own PEVs at 1 follow each other
    assert spliced.arrival.tolist() == [0, 1, 4, 7] and spliced.station.tolist() == [0, 2, 1, 1]
    assert tau == 1 and spliced.n_steps == 8


@pytest.mark.parametrize("argv, message", [(["--hours", "9-8"], "--hours: invalid hour_range value: '9-8'"),
                                           (["--hours", "6-24"], "invalid hour_range value: '6-24'"),
                                           (["--futures", "88"], "--futures 88 / --joint 30: allowed 1-87"),
                                           (["--joint", "0"], "--futures 15 / --joint 0: allowed 1-87")])
def test_bad_arguments_exit_2_with_one_line(bound, capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as stop:
        bound.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and message in err[-1]
