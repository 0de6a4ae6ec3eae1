"""`min_feasible_area_power` in memory linear in the sessions, bit-identical to the (T+1)^2 grid it replaced, and
the sizes bounded before anything is allocated (issue 20, item 11)."""

from __future__ import annotations

import resource
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pev_env import acn
from pev_env.config import EnvConfig
from pev_env.generators import min_feasible_area_power, synthetic
from pev_env.limits import MAX_STATIONS, MAX_STEPS
from pev_env.scenario import Scenario
from pev_env.scenarios import make_scenario


def grid_reference(scenario: Scenario, p_max: float | np.ndarray, eta: float, dt_h: float) -> float:
    """The previous implementation: densities of every window on a (T+1, T+1) grid."""
    if scenario.n_pevs == 0:
        return 0.0
    rating = np.broadcast_to(np.asarray(p_max, dtype=np.float64), (scenario.n_stations,))
    session_p_max = np.where(scenario.station >= 0, rating[scenario.station], rating.max())
    energy = np.minimum(scenario.energy_requested, eta * session_p_max * dt_h * scenario.duration)
    size = scenario.n_steps + 1
    grid = np.zeros((size, size))
    np.add.at(grid, (scenario.arrival, scenario.departure), energy)
    inside = np.cumsum(np.cumsum(grid[::-1], axis=0)[::-1], axis=1)
    span = np.arange(size)[None, :] - np.arange(size)[:, None]
    density = np.divide(inside, eta * dt_h * span, out=np.zeros_like(inside), where=span > 0)
    return float(density.max())


def _same_on(spec: str, seeds: range) -> None:
    for seed in seeds:
        config, scenario = make_scenario(spec, seed)
        args = (scenario, config.station_p_max, config.eta, config.dt_h)
        assert min_feasible_area_power(*args) == grid_reference(*args), (spec, seed)


def test_identical_on_the_shipped_week():
    _same_on("acn-caltech", range(5))
    for day in acn.session_days(acn.load_acn_sessions()):  # the weekend too
        scenario = Scenario.from_acn(day=day)
        assert min_feasible_area_power(scenario, scenario.p_max, 0.9, 5 / 60) == grid_reference(
            scenario, scenario.p_max, 0.9, 5 / 60)


def test_identical_on_days_of_the_month_files():
    for spec in ("acn-caltech-train", "acn-caltech-eval"):
        _same_on(spec, range(0, 87, 9))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_identical_on_random_sessions(data):
    n_steps = data.draw(st.integers(1, 60))
    m = data.draw(st.integers(0, 25))
    arrival = np.array(data.draw(st.lists(st.integers(0, n_steps - 1), min_size=m, max_size=m)), dtype=np.int64)
    stay = np.array(data.draw(st.lists(st.integers(1, n_steps), min_size=m, max_size=m)), dtype=np.int64)
    n_stations = data.draw(st.integers(1, 4))
    energies = st.floats(0.0, 80.0, allow_nan=False)
    capacity = np.full(m, 80.0)
    scenario = Scenario(arrival=arrival, departure=np.minimum(arrival + stay, n_steps),
                        soc_init=np.array(data.draw(st.lists(energies, min_size=m, max_size=m))),
                        soc_target=np.array(data.draw(st.lists(energies, min_size=m, max_size=m))),
                        capacity=capacity, n_stations=n_stations, n_steps=n_steps,
                        station=np.array(data.draw(st.lists(st.integers(-1, n_stations - 1), min_size=m, max_size=m)),
                                         dtype=np.int64))
    p_max = np.array(data.draw(st.lists(st.floats(1.0, 50.0), min_size=n_stations, max_size=n_stations)))
    eta, dt_h = data.draw(st.floats(0.5, 1.0)), data.draw(st.sampled_from([1 / 60, 5 / 60, 0.25, 1.0]))
    assert min_feasible_area_power(scenario, p_max, eta, dt_h) == grid_reference(scenario, p_max, eta, dt_h)


def test_a_long_stay_needs_memory_linear_in_the_sessions():
    """A 90-day episode (25,920 steps): the grid asked 5 x 5.4 GB; the sweep needs a few kB beyond Python."""
    code = ("import resource, numpy as np; from pev_env.scenario import Scenario; "
            "from pev_env.generators import min_feasible_area_power as f; "
            "s = Scenario(arrival=[0, 10, 20], departure=[25920, 300, 40], soc_init=[0.0] * 3, "
            "soc_target=[50.0] * 3, capacity=[60.0] * 3, station=[0, 1, 2], n_stations=3, n_steps=25920); "
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; f(s, 6.6, 0.9, 5 / 60); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    grown_kib = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert grown_kib < 50_000
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0


@pytest.mark.parametrize("fields, message", [
    ({"n_steps": MAX_STEPS + 1}, rf"Scenario.n_steps = {MAX_STEPS + 1}: must be an integer in \[1, {MAX_STEPS}\]"),
    ({"n_stations": 10**12}, rf"Scenario.n_stations = {10**12}: must be an integer in \[1, {MAX_STATIONS}\]"),
])
def test_sizes_are_bounded_before_allocating(fields, message):
    base = {"arrival": [0], "departure": [1], "soc_init": [0.0], "soc_target": [1.0], "capacity": [60.0],
            "station": [0], "n_stations": 1, "n_steps": 1}
    with pytest.raises(ValueError, match=message):
        Scenario(**{**base, **fields})


def test_huge_specs_are_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match=rf"synthetic: n_stations = 100000000: must be in \[1, {MAX_STATIONS}\]"):
        make_scenario("synthetic-100000000", 0)
    with pytest.raises(ValueError, match=rf"synthetic: n_steps = .*: must be in \[2, {MAX_STEPS}\]"):
        synthetic(2, MAX_STEPS + 1, 0)
    path = tmp_path / "s.csv"
    path.write_text("arrival_step,departure_step,soc_init_kwh,soc_target_kwh,capacity_kwh,station\n"
                    "0,10,0,10,60,999999999999\n")
    with pytest.raises(ValueError, match=rf"station = 999999999999: must be -1 \(first free\) or in \[0, {MAX_STATIONS}\)"):
        make_scenario(f"csv:{path}", 0)
    path.write_text("arrival_step,departure_step,soc_init_kwh,soc_target_kwh,capacity_kwh,station\n"
                    "0,10,0,1e300,1e300,0\n")
    with pytest.raises(ValueError, match=r"line 2: capacity_kwh = 1e\+300: must be > 0 and <= 1000000.0 kWh"):
        make_scenario(f"csv:{path}", 0)
    with pytest.raises(ValueError, match=rf"Scenario.n_steps = 200000000000: must be an integer in \[1, {MAX_STEPS}\]"):
        make_scenario("seed", 0, EnvConfig(total_time=1e12))  # before the seed's PEVs are drawn
    with pytest.raises(ValueError, match=rf"EnvConfig.n_stations = 1000000000: must be <= {MAX_STATIONS}"):
        EnvConfig(n_stations=10**9)
