"""Property tests of the plant over random small scenarios and random (also out-of-bounds) actions."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pev_env.config import EnvConfig
from pev_env.core import ChargingCore
from pev_env.scenario import Scenario
from pev_env.schedule import plug_schedule

TOL = 1e-9


@st.composite
def plants(draw) -> tuple[EnvConfig, Scenario, np.ndarray]:
    """(config, scenario, requests (n_steps, N)) with 1-4 stations, 1-12 steps, 0-8 PEVs."""
    n, n_steps, m = draw(st.integers(1, 4)), draw(st.integers(1, 12)), draw(st.integers(0, 8))
    p_min = draw(st.sampled_from([0.0, 1.5]))
    p_max = draw(st.floats(2.0, 22.0))
    cfg = EnvConfig(n_stations=n, n_pevs=m, p_min=p_min, p_max=p_max, P_ref=draw(st.floats(0.5, 60.0)),
                    xi=draw(st.floats(0.0, 0.5)), total_time=5.0 * n_steps,
                    shared_reward=draw(st.booleans()))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    arrival = rng.integers(0, n_steps, m)
    departure = arrival + 1 + (rng.integers(0, n_steps, m) % (n_steps - arrival))
    capacity = rng.uniform(1.0, 30.0, m)
    scenario = Scenario(arrival=arrival, departure=departure, soc_init=capacity * rng.uniform(0, 1, m),
                        soc_target=capacity * rng.uniform(0, 1, m), capacity=capacity,
                        station=np.where(rng.random(m) < 0.3, rng.integers(0, n, m), -1), n_stations=n,
                        n_steps=n_steps)
    # requests: mostly inside the bounds, some below/above, some exactly 0
    requests = rng.uniform(-3.0, p_max + 5.0, (n_steps, n)) * (rng.random((n_steps, n)) < 0.9)
    return cfg, scenario, requests


def play(cfg: EnvConfig, scenario: Scenario, requests: np.ndarray) -> ChargingCore:
    core = ChargingCore(cfg, scenario)
    for req in requests:
        core.step(req)
    assert core.done
    return core


@settings(max_examples=150, deadline=None)
@given(plants())
def test_dynamics_invariants(plant):
    cfg, sc, requests = plant
    core = play(cfg, sc, requests)
    h, occupancy = core.history, core.schedule.station_pev
    plugged = occupancy >= 0
    # free stations draw nothing; plugged ones stay within their bounds
    assert (h.applied_kw[~plugged] == 0).all()
    assert ((h.applied_kw[plugged] >= cfg.p_min) & (h.applied_kw[plugged] <= cfg.p_max)).all()
    expected_local = np.where(plugged, (requests < cfg.p_min - TOL) | (requests > cfg.p_max + TOL),
                              np.abs(requests) > TOL)
    np.testing.assert_array_equal(h.local_violation, expected_local)
    # SOC never above capacity, never decreasing
    assert (h.soc <= sc.capacity + 1e-12).all() and (np.diff(h.soc, axis=0) >= 0).all()
    # energy balance: each step adds eta * dt_h * applied to the plugged PEV, capped at capacity
    for t in range(sc.n_steps):
        gained = np.zeros(sc.n_pevs)
        on = plugged[t]
        gained[occupancy[t, on]] = cfg.eta * cfg.dt_h * h.applied_kw[t, on]
        expected = np.minimum(h.soc[t] + gained, sc.capacity)
        np.testing.assert_allclose(h.soc[t + 1], expected, rtol=0, atol=1e-12)
    # area violations recorded exactly when the sum exceeds P_ref
    area = h.applied_kw.sum(axis=1)
    np.testing.assert_allclose(h.area_power_kw, area, atol=1e-9)
    over = h.area_power_kw > cfg.P_ref + TOL
    np.testing.assert_array_equal(h.area_overload_kw > 0, over)
    np.testing.assert_allclose(h.area_overload_kw[over], h.area_power_kw[over] - cfg.P_ref)
    m = core.episode_metrics()
    assert m["area_violation_steps"] == over.sum()
    assert m["local_violation_steps"] == expected_local.sum()


@settings(max_examples=150, deadline=None)
@given(plants())
def test_unmet_energy_is_target_minus_soc_at_departure(plant):
    cfg, sc, requests = plant
    core = play(cfg, sc, requests)
    soc_at_departure = core.history.soc[sc.departure, np.arange(sc.n_pevs)]
    unmet = np.maximum(sc.soc_target - soc_at_departure, 0.0)
    table = core.pev_table()
    np.testing.assert_allclose(table["unmet_kwh"], unmet)
    never = core.schedule.station < 0
    np.testing.assert_allclose(unmet[never], sc.energy_requested[never])
    m = core.episode_metrics()
    assert np.isclose(m["unmet_energy_kwh"], unmet.sum())
    assert np.isclose(m["energy_delivered_kwh"], (soc_at_departure - sc.soc_init).sum())
    assert m["pevs_fully_served"] == int((unmet <= 1e-3).sum()) and m["pevs_never_plugged"] == never.sum()


@settings(max_examples=200, deadline=None)
@given(plants())
def test_schedule_invariants(plant):
    _, sc, _ = plant
    s = plug_schedule(sc)
    t = np.arange(sc.n_steps)[:, None]
    for pev in range(sc.n_pevs):
        steps, stations = np.nonzero(s.station_pev == pev)
        if s.station[pev] < 0:
            assert steps.size == 0 and s.waited_steps[pev] == sc.departure[pev] - sc.arrival[pev]
            continue
        # one station, contiguous from plug_step up to departure, not before arrival
        assert (stations == s.station[pev]).all()
        np.testing.assert_array_equal(steps, np.arange(s.plug_step[pev], sc.departure[pev]))
        assert s.plug_step[pev] >= sc.arrival[pev] and s.unplug_step[pev] == sc.departure[pev]
        if sc.station[pev] >= 0:
            assert s.station[pev] == sc.station[pev]
    # nobody waits for nothing: a waiting first-free PEV sees every station busy,
    # a waiting PEV with a preferred station sees that station busy
    present = (sc.arrival <= t) & (t < sc.departure)
    waiting = present & ~((s.plug_step >= 0) & (s.plug_step <= t))
    all_busy = (s.station_pev >= 0).all(axis=1)
    for step, pev in zip(*np.nonzero(waiting)):
        if sc.station[pev] < 0:
            assert all_busy[step]
        else:
            assert s.station_pev[step, sc.station[pev]] >= 0
