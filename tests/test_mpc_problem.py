"""ChargingProblem / MPCSettings: validation, infeasibility reporting, objective definition."""

import numpy as np
import pytest

from pev_mpc import OBJECTIVES, objective_value, station_costs, ChargingProblem, InfeasibleProblemError, MPCSettings, solve_centralised, solve_decentralised

H = 6


def make(**over):
    kw = dict(x0=[2.0, 10.0], r=[24.0, 24.0], s=[24.0, 24.0], d=[4, 6], p_min=0.0, p_max=22.0, eta=0.9,
              dt_h=5 / 60, P_ref=np.full(H, 30.0), horizon=H)
    kw.update(over)
    return ChargingProblem(**kw)


@pytest.mark.parametrize("field, value, match", [
    ("horizon", -1, "horizon"),
    ("horizon", 0, "horizon"),
    ("d", [-1, 2], "d"),
    ("d", [1, H + 1], "d"),
    ("d", [1.5, 2], "d"),
    ("P_ref", np.full(H - 1, 30.0), "P_ref"),
    ("P_ref", [30.0] * (H - 1) + [np.nan], "P_ref"),
    ("x0", [np.nan, 1.0], "x0"),
    ("r", [1.0, np.inf], "r"),
    ("x0", [25.0, 1.0], "x0"),
    ("p_max", -1.0, "p_max"),
    ("eta", 1.5, "eta"),
    ("dt_h", 0.0, "dt_h"),
    ("s", [1.0, 2.0, 3.0], "s"),
])
def test_validation_names_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        make(**{field: value})


def test_settings_validation():
    for kw in ({"horizon": 0}, {"power_reg": 0.0}, {"coordination": "magic"}, {"max_iterations": 0},
               {"station_solver": "x"}, {"centralised_solver": "ECOS"}, {"terminal_weight": -1.0},
               {"station_solver": "separable", "objective": "tracking"}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            MPCSettings(**kw)
    assert MPCSettings().terminal_weight == 10.0 and MPCSettings().power_reg == 1e-3


def test_normalisation_and_readonly():
    pr = make(p_max=[11.0, 22.0], P_ref=np.arange(H + 3, dtype=float))
    assert pr.p_min.shape == (2,) and pr.P_ref.shape == (H,) and pr.d.dtype.kind == "i"
    with pytest.raises(ValueError):
        pr.x0[0] = 1.0


@pytest.mark.parametrize("over, reason", [
    ({"x0": [23.9, 10.0], "p_min": 5.0}, "battery cap"),            # p_min > 0 with a (nearly) full battery
    ({"P_ref": np.full(H, -1.0)}, "P_ref < 0"),
    ({"p_min": 20.0, "P_ref": np.full(H, 30.0), "x0": [0.0, 0.0]}, "forced"),
])
@pytest.mark.parametrize("solve", [solve_centralised, solve_decentralised])
def test_infeasible_is_reported(over, reason, solve):
    pr = make(**over)
    with pytest.raises(InfeasibleProblemError, match=reason):
        solve(pr, MPCSettings(horizon=H))


def test_objective_matches_definition():
    st = MPCSettings(horizon=H, objective="tracking", terminal_weight=7.0, tracking_weight=1.5, power_reg=0.01)
    pr = make()
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 22, (2, H)) * pr.mask
    expected = 0.0
    for i in range(2):
        x = [pr.x0[i]]
        for k in range(H):
            x.append(x[-1] + pr.eta * pr.dt_h * p[i, k])
        d = pr.d[i]
        expected += (st.terminal_weight * (pr.r[i] - x[d]) ** 2
                     + st.tracking_weight * sum((pr.r[i] - x[k]) ** 2 for k in range(1, d + 1))
                     + st.power_reg * np.sum(p[i] ** 2))
    assert objective_value(pr, st, p) == pytest.approx(expected, rel=1e-12)


def test_no_pev_station_contributes_constant_only():
    pr = make(d=[0, 3])
    st = MPCSettings(horizon=H)
    sol = solve_decentralised(pr, st)
    assert np.all(sol.p[0] == 0.0) and np.all(sol.p[1, 3:] == 0.0)


def test_price_ceiling_bounds_optimal_prices():
    pr = make(x0=[0.0, 0.0, 1.0], r=[24.0] * 3, s=[24.0] * 3, d=[6, 6, 5], P_ref=np.full(H, 5.0))
    for st in (MPCSettings(horizon=H, objective=o) for o in OBJECTIVES):
        sol = solve_centralised(pr, st)
        assert np.all(sol.prices <= station_costs(pr, st).price_ceiling(pr) + 1e-6)
