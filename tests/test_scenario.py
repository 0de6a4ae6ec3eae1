"""Scenario value object (validation error paths, immutability, CSV round trip) and named scenarios."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pev_env.config import EnvConfig
from pev_env.generators import min_feasible_area_power
from pev_env.scenario import CSV_COLUMNS, Scenario
from pev_env.scenarios import SCENARIO_NAMES, make_scenario


def _fields(**over):
    fields = dict(
        arrival=[0, 2, 5],
        departure=[3, 6, 8],
        soc_init=[1.0, 0.0, 10.5],
        soc_target=[24.0, 20.0, 24.0],
        capacity=[24.0, 24.0, 30.0],
        station=[-1, 0, 1],
        n_stations=2,
        n_steps=8,
        name="t",
    )
    fields.update(over)
    return fields


def test_valid_scenario_properties():
    s = Scenario(**_fields())
    assert s.n_pevs == 3
    assert s.arrival.dtype == np.int64 and s.soc_init.dtype == np.float64
    np.testing.assert_allclose(s.energy_requested, [23.0, 20.0, 13.5])
    np.testing.assert_array_equal(s.duration, [3, 4, 3])


def test_energy_requested_is_never_negative():
    s = Scenario(**_fields(soc_init=[10.0, 0.0, 0.0], soc_target=[5.0, 0.0, 1.0]))
    np.testing.assert_allclose(s.energy_requested, [0.0, 0.0, 1.0])


def test_arrays_are_read_only_and_copied():
    arrival = np.array([0, 2, 5])
    s = Scenario(**_fields(arrival=arrival))
    arrival[0] = 4
    assert s.arrival[0] == 0
    with pytest.raises(ValueError):
        s.arrival[0] = 1
    with pytest.raises(AttributeError):
        s.n_steps = 3  # type: ignore[misc]


def test_integral_floats_accepted_for_steps():
    s = Scenario(**_fields(arrival=[0.0, 2.0, 5.0]))
    assert s.arrival.dtype == np.int64


@pytest.mark.parametrize(
    ("over", "pattern"),
    [
        (dict(arrival=[0, 2]), r"Scenario\.departure = 'shape \(3,\)'.*length of arrival"),
        (dict(arrival=[0, 6, 5]), r"Scenario\.departure\[1\] = 6: must be > arrival\[1\] = 6"),
        (dict(departure=[3, 6, 9]), r"Scenario\.departure\[2\] = 9: .*<= n_steps = 8"),
        (dict(arrival=[-1, 2, 5]), r"Scenario\.arrival\[0\] = -1: must be >= 0"),
        (dict(arrival=[0, 2.5, 5]), r"Scenario\.arrival\[1\] = 2\.5: must be a finite integer"),
        (dict(arrival=["a", "b", "c"]), r"Scenario\.arrival = .*integer array"),
        (dict(soc_init=[1.0, -0.5, 0.0]), r"Scenario\.soc_init\[1\] = -0\.5: must be finite and >= 0 kWh"),
        (dict(soc_target=[1.0, np.nan, 0.0]), r"Scenario\.soc_target\[1\] = nan: must be finite"),
        (dict(capacity=[24.0, np.inf, 30.0]), r"Scenario\.capacity\[1\] = inf"),
        (dict(capacity=[24.0, 0.0, 30.0]), r"Scenario\.capacity\[1\] = 0\.0: must be > 0 and <= 1000000.0 kWh"),
        (dict(soc_init=[25.0, 0.0, 0.0]), r"Scenario\.soc_init\[0\] = 25\.0: must be <= capacity\[0\] = 24\.0"),
        (dict(soc_target=[24.0, 20.0, 31.0]), r"Scenario\.soc_target\[2\] = 31\.0: must be <= capacity\[2\]"),
        (dict(station=[-2, 0, 1]), r"Scenario\.station\[0\] = -2: must be -1 \(first free\) or in \[0, 2\)"),
        (dict(station=[-1, 0, 2]), r"Scenario\.station\[2\] = 2"),
        (dict(n_stations=0), r"Scenario\.n_stations = 0: must be an integer in \[1, 100000\]"),
        (dict(n_steps=8.0), r"Scenario\.n_steps = 8\.0: must be an integer in \[1, 100000\]"),
        (dict(name=3), r"Scenario\.name = 3: must be a str"),
        (dict(arrival=[[0, 2, 5]]), r"must be 1-D"),
    ],
)
def test_validation_errors_name_field_index_value_and_rule(over, pattern):
    with pytest.raises(ValueError, match=pattern):
        Scenario(**_fields(**over))


def test_equality():
    a, b = Scenario(**_fields()), Scenario(**_fields())
    assert a == b and a.equals(b)
    assert a != Scenario(**_fields(name="other"))
    assert a != Scenario(**_fields(soc_init=[1.0, 0.0, 10.0]))
    assert a != "not a scenario"


def test_empty_scenario_is_allowed():
    s = Scenario(**_fields(arrival=[], departure=[], soc_init=[], soc_target=[], capacity=[], station=[]))
    assert s.n_pevs == 0 and s.energy_requested.shape == (0,)


def test_csv_round_trip(tmp_path):
    s = Scenario(**_fields(soc_init=[0.1, 1 / 3, 10.5]))
    path = s.to_csv(tmp_path / "sub" / "s.csv")
    assert sorted(p.name for p in path.parent.iterdir()) == ["s.csv"]  # no temp file left behind
    assert path.read_text().splitlines()[0] == ",".join(CSV_COLUMNS)
    assert Scenario.from_csv(path, n_stations=2, n_steps=8, name="t") == s
    assert Scenario.from_csv(path, n_stations=2, n_steps=8).name == "s"


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_csv_round_trip_property(tmp_path_factory, data):
    n_steps = data.draw(st.integers(1, 50))
    m = data.draw(st.integers(0, 8))
    arrival = data.draw(st.lists(st.integers(0, n_steps - 1), min_size=m, max_size=m))
    departure = [data.draw(st.integers(a + 1, n_steps)) for a in arrival]
    energy = st.floats(0, 50, allow_nan=False, allow_subnormal=False)
    soc_init = data.draw(st.lists(energy, min_size=m, max_size=m))
    soc_target = data.draw(st.lists(energy, min_size=m, max_size=m))
    capacity = [max(a, b, 1.0) for a, b in zip(soc_init, soc_target, strict=True)]
    station = data.draw(st.lists(st.integers(-1, 2), min_size=m, max_size=m))
    s = Scenario(arrival, departure, soc_init, soc_target, capacity, station, 3, n_steps, "p")
    path = s.to_csv(tmp_path_factory.mktemp("csv") / "p.csv")
    assert Scenario.from_csv(path, 3, n_steps, name="p") == s


def test_csv_columns_checked(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("arrival_step,departure_step,soc_init_kwh,soc_target_kwh,capacity,extra\n0,1,0,1,2,3\n")
    with pytest.raises(ValueError, match=r"unknown columns \['capacity', 'extra'\].*missing columns "
                                         r"\['capacity_kwh', 'station'\].*expected exactly"):
        Scenario.from_csv(path, n_stations=1, n_steps=2)


def test_csv_values_validated(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(",".join(CSV_COLUMNS) + "\n3,2,0,1,2,-1\n")
    with pytest.raises(ValueError, match=r"line 2: departure_step = 2: must be > arrival_step of the row = 3"):
        Scenario.from_csv(path, n_stations=1, n_steps=4)
    path.write_text(",".join(CSV_COLUMNS) + "\n0,2,-1,1,2,-1\n")
    with pytest.raises(ValueError, match=r"line 2: soc_init_kwh = -1\.0: must be finite and >= 0 kWh"):
        Scenario.from_csv(path, n_stations=1, n_steps=4)


# ----------------------------------------------------------------------------- named scenarios
ALL_NAMES = [*SCENARIO_NAMES, "synthetic-7"]


@pytest.mark.parametrize("name", ALL_NAMES)
def test_make_scenario_consistent_and_reproducible(name):
    config, s = make_scenario(name, seed=3)
    assert (config.n_stations, config.n_pevs, config.n_steps) == (s.n_stations, s.n_pevs, s.n_steps)
    assert config.total_time == s.n_steps * config.sampling_time
    assert np.all(s.soc_target <= s.capacity) and s.capacity.max() <= config.soc_max
    again = make_scenario(name, seed=3)
    assert again[0] == config and again[1] == s


def test_make_scenario_shapes():
    assert make_scenario("seed", 0)[0] == EnvConfig()
    for name, m in (("seed-20", 20), ("seed-30", 30)):
        config, s = make_scenario(name, 0)
        assert (config.n_stations, s.n_pevs, config.total_time, s.n_steps) == (5, m, 960.0, 192)
    config, s = make_scenario("synthetic-7", 0)
    assert s.n_stations == 7 and s.name == "synthetic-7"


def test_make_scenario_keeps_base_fields():
    base = EnvConfig(p_max=11.0, xi=0.2)
    config, _ = make_scenario("seed-20", 1, base=base)
    assert (config.p_max, config.xi, config.n_stations) == (11.0, 0.2, 5)


@pytest.mark.parametrize("name", ["acn-caltech", "synthetic-12"])
def test_binding_area_limit(name):
    config, s = make_scenario(name, 0)
    least = min_feasible_area_power(s, config.p_max, config.eta, config.dt_h)
    assert config.P_ref == pytest.approx(config.area_limit_fraction * least, abs=0.05)
    assert 0 < config.P_ref < least <= s.n_stations * config.p_max <= config.P_max


def test_acn_caltech_cycles_weekdays_with_fixed_agents():
    draws = [make_scenario("acn-caltech", seed) for seed in range(6)]
    assert [s.name for _, s in draws[:5]] == [f"acn-caltech-2019-05-{d:02d}" for d in range(6, 11)]
    assert draws[5][1] == draws[0][1]
    assert {c.n_stations for c, _ in draws} == {42}  # all stations of the sample: spaces stay equal
    assert all(c.p_max == 6.6 and c.total_time >= 1440.0 for c, _ in draws)  # the days run past midnight


@pytest.mark.parametrize(
    ("name", "seed", "pattern"),
    [
        ("nope", 0, r"scenario: unknown scenario 'nope'; valid scenarios: seed, seed-20, seed-30, acn-caltech, "
                    r"acn-caltech-train, acn-caltech-eval, acn-caltech-network, acn-caltech-network-train, synthetic-N \(N >= 1\), acn:PATH:YYYY-MM-DD, csv:PATH"),
        ("synthetic-01", 0, "unknown scenario 'synthetic-01'"),
        ("synthetic-0", 0, "synthetic-N"),
        ("synthetic-x", 0, "synthetic-N"),
        ("seed", -1, r"seed = -1: must be an integer >= 0"),
        ("seed", 1.5, r"seed = 1.5"),
    ],
)
def test_make_scenario_errors(name, seed, pattern):
    with pytest.raises(ValueError, match=pattern):
        make_scenario(name, seed)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_named_scenarios_run_in_the_core(name):
    core_mod = pytest.importorskip("pev_env.core")
    config, s = make_scenario(name, seed=0)
    core = core_mod.ChargingCore(config, s)
    result = core.step(np.full(config.n_stations, config.p_max))
    assert result.applied_kw.shape == (config.n_stations,)
