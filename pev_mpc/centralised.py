"""Centralised MPC step: the coupled QP in one cvxpy problem (DPP Parameters, cached per shape).

Coupling: the area limit sum_i p[i, k] <= P_ref[k], or on a site network (`ChargingProblem.network`)
every constraint j at every step k: linear rows as |G_j| . p_k <= limit_j, the others as second-order
cones ||(Re G_j . p_k, Im G_j . p_k)|| <= limit_j. Stations with the same gains (a site's phase groups)
are summed first, q = B p (R groups, G = C B), and the rows act on q: a few sparse sums instead of J
dense rows per step keep the interior point iterations cheap (a Caltech step: 0.5 s instead of 4-7 s).
B and C are Parameters with the network's sparsity (cvxpy's `sparsity`; the compiled problem is cached per
shape and pattern), so the solver never sees the zeros of a row over the groups it does not load (a tree
of 521 rows at N = 100: 0.24 s a step instead of 9-21 s).
Network prices are the (J, H) complex multipliers y whose Lagrangian term for (j, k) is

    Re(conj(y_jk) (G_j . p_k)) - limit_j |y_jk|,

so station i pays pi_ik = sum_j Re(conj(G_ji) y_jk) per kW (`network_allocation.station_prices`); a linear row's y_jk is
mu_jk >= 0 times `Network.direction[j]`. (cvxpy's cone dual (lambda, w) enters its Lagrangian as
-(lambda limit + w . (Re, Im)), hence y = -(w_0 + i w_1).)
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
from scipy import sparse

from pev_env.network import Network
from pev_mpc.objective import CvxpyCosts, StationCosts, station_costs
from pev_mpc.problem import ChargingProblem
from pev_mpc.quiet import c_stdout_silenced
from pev_mpc.settings import MPCSettings
from pev_mpc.solution import MPCSolution

_SOLVER_OPTIONS = {
    "CLARABEL": dict(tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10, tol_ktratio=1e-8),
    "OSQP": dict(eps_abs=1e-8, eps_rel=1e-8, polishing=True, max_iter=200000),
}
_NETWORK_CLARABEL = dict(tol_gap_abs=1e-8, tol_gap_rel=1e-8, tol_feas=1e-10, tol_ktratio=1e-6)
_NETWORK_RETRY = dict(tol_gap_abs=1e-6, tol_gap_rel=1e-6, tol_feas=1e-8, tol_ktratio=1e-5)
"""Clarabel's tolerances for a second try where it failed on a network step (a step still counted as not
converged: nonconverged_steps in the results)."""
"""Clarabel on network problems: their rows are degenerate (many rows over a few phase groups) and the
gap stalls near 1e-8 of the objective; feasibility stays tight (the first move is scaled exactly anyway)."""


@dataclass(frozen=True, eq=False)
class _Model:
    problem: cp.Problem
    p: cp.Variable
    params: dict[str, cp.Parameter]
    costs: CvxpyCosts
    coupling: dict[str, cp.Constraint]
    """'area', or 'linear' and/or 'cone' (network rows)."""


_Shape = tuple[int, int] | tuple[int, int, int, int, int, bytes]
"""(N, H) for the area limit; (N, H, station groups, linear rows, cone rows, the sparsity of the network's
matrices as bytes) for a network."""
_SPARSE = ("member", "linear_gain", "cone_re", "cone_im")
"""The network's matrix Parameters: sparse (cvxpy's `sparsity`), so that the solver's KKT system holds
only the stations and groups each row loads (dense, a tree of 521 rows at N = 100 took 9-21 s a step)."""


def _coupling_parameters(shape: _Shape, sparsity: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, cp.Parameter]:
    """The Parameters of the coupling of `shape` (module doc), the matrices with these `sparsity` patterns."""
    n, H = shape[:2]
    if len(shape) == 2:
        return {"P_ref": cp.Parameter(H, name="P_ref")}
    n_groups, n_linear, n_cone = shape[2:5]
    par = {"member": cp.Parameter((n_groups, n), nonneg=True, name="member", sparsity=sparsity["member"])}
    if n_linear:
        par["linear_gain"] = cp.Parameter((n_linear, n_groups), nonneg=True, name="linear_gain",
                                          sparsity=sparsity["linear_gain"])
        par["linear_limit"] = cp.Parameter((n_linear, H), name="linear_limit")
    if n_cone:
        par["cone_re"], par["cone_im"] = (cp.Parameter((n_cone, n_groups), name=f"cone_{part}",
                                                       sparsity=sparsity[f"cone_{part}"]) for part in ("re", "im"))
        par["cone_limit"] = cp.Parameter(n_cone * H, nonneg=True, name="cone_limit")  # (j, k) at j + n_cone k
    return par


def _coupling(p: cp.Variable, par: dict[str, cp.Parameter]) -> dict[str, cp.Constraint]:
    """The coupling constraints on the plans p whose Parameters `par` holds ('groups': q = B p)."""
    if "P_ref" in par:
        return {"area": cp.sum(p, axis=0) <= par["P_ref"]}
    q = cp.Variable((par["member"].shape[0], p.shape[1]), name="q")
    coupling = {"groups": q == par["member"] @ p}
    if "linear_gain" in par:
        coupling["linear"] = par["linear_gain"] @ q <= par["linear_limit"]
    if "cone_re" in par:
        coupling["cone"] = cp.SOC(par["cone_limit"], cp.vstack([cp.vec(par["cone_re"] @ q, order="F"),
                                                                cp.vec(par["cone_im"] @ q, order="F")]), axis=0)
    return coupling


def _groups(network: Network) -> tuple[np.ndarray, np.ndarray]:
    """Stations with equal gain columns: B (R, N) one-hot membership and C (J, R) their gains, G = C B."""
    columns, group = np.unique(np.column_stack([network.gain.real.T, network.gain.imag.T]), axis=0,
                               return_inverse=True)
    J = network.n_constraints
    member = np.zeros((columns.shape[0], network.n_stations))
    member[group.ravel(), np.arange(network.n_stations)] = 1.0
    return member, columns[:, :J].T + 1j * columns[:, J:].T


def _network_values(network: Network, H: int) -> dict[str, np.ndarray]:
    """Parameter values of a network's coupling (linear rows, then cone rows, as in `_shape`)."""
    lin, cone = network.linear, ~network.linear
    member, gain = _groups(network)
    return {"member": member, "linear_gain": np.abs(gain[lin]),
            "linear_limit": np.repeat(network.limit[lin][:, None], H, axis=1),
            "cone_re": gain[cone].real, "cone_im": gain[cone].imag, "cone_limit": np.tile(network.limit[cone], H)}


def _sparsity(values: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The entries of the network's matrices (`_network_values`) that can be nonzero (a cone's real and
    imaginary parts share one pattern)."""
    cone = np.nonzero((values["cone_re"] != 0) | (values["cone_im"] != 0))
    return {"member": np.nonzero(values["member"]), "linear_gain": np.nonzero(values["linear_gain"]),
            "cone_re": cone, "cone_im": cone}


def _shape(problem: ChargingProblem, values: dict[str, np.ndarray],
           sparsity: dict[str, tuple[np.ndarray, np.ndarray]]) -> _Shape:
    n, H, network = problem.n_stations, problem.horizon, problem.network
    if network is None:
        return n, H
    n_linear = int(network.linear.sum())
    pattern = b"|".join(np.concatenate(sparsity[name]).astype(np.int64).tobytes() for name in _SPARSE)
    return n, H, values["member"].shape[0], n_linear, network.n_constraints - n_linear, pattern


def _build(shape: _Shape, sparsity: dict[str, tuple[np.ndarray, np.ndarray]]) -> _Model:
    """The QP (SOCP on a network with cones) in (p, e), e[i, k] = energy added after step k (in kWh per
    unit of c); every datum, c and the objective's weights included, enters as a Parameter."""
    n, H = shape[:2]
    par = {name: cp.Parameter((n, H), name=name) for name in ("lo", "hi", "room")}
    par["c"] = cp.Parameter(nonneg=True, name="c")
    par.update(_coupling_parameters(shape, sparsity))
    p, e = cp.Variable((n, H), name="p"), cp.Variable((n, H), name="e")
    costs = CvxpyCosts.create(n, H)
    coupling = _coupling(p, par)
    constraints = [e[:, 0] == par["c"] * p[:, 0], p >= par["lo"], p <= par["hi"], e <= par["room"],
                   *coupling.values()]
    if H > 1:
        constraints.append(e[:, 1:] == e[:, :-1] + par["c"] * p[:, 1:])
    objective, definitions = costs.expression(p, e)
    return _Model(cp.Problem(cp.Minimize(objective), constraints + definitions), p, par, costs, coupling)


_CACHE: dict[_Shape, _Model] = {}


def _model(problem: ChargingProblem, values: dict[str, np.ndarray],
           sparsity: dict[str, tuple[np.ndarray, np.ndarray]], reuse: bool) -> _Model:
    key = _shape(problem, values, sparsity)
    if not reuse:
        return _build(key, sparsity)
    if key not in _CACHE:
        _CACHE[key] = _build(key, sparsity)
    return _CACHE[key]


def _network_prices(model: _Model, network: Network, H: int) -> np.ndarray:
    """(J, H) complex multipliers y of the network rows (module doc)."""
    y = np.zeros((network.n_constraints, H), dtype=np.complex128)
    if "linear" in model.coupling:
        mu = np.maximum(np.asarray(model.coupling["linear"].dual_value, dtype=float), 0.0)
        y[network.linear] = mu * network.direction[network.linear][:, None]
    if "cone" in model.coupling:
        _, w = model.coupling["cone"].dual_value
        y[~network.linear] = -(w[0] + 1j * w[1]).reshape((-1, H), order="F")
    return y


def solve_centralised(problem: ChargingProblem, settings: MPCSettings, reuse: bool = True,
                      costs: StationCosts | None = None) -> MPCSolution:
    """Minimise sum_i f_i subject to all constraints in one QP (SOCP); prices are the coupling duals:
    (H,) area prices, or (J, H) complex network prices (module doc) when problem.network is set.

    reuse=True keeps one compiled cvxpy problem per shape (N, H, the network's linear and cone row counts
    and the pattern of its nonzeros) and only updates its Parameters (data, objective and weights);
    reuse=False rebuilds and recompiles it (as ad-hoc scripts do). Raises InfeasibleProblemError if the
    constraints admit no plan, ValueError for cone rows with a QP-only solver (OSQP). costs: the stations'
    costs (default: settings.objective's; the network coordinator passes a model's).
    """
    start = time.perf_counter()
    problem.check_feasible()
    costs = station_costs(problem, settings) if costs is None else costs
    H, network, solver = problem.horizon, problem.network, settings.centralised_solver
    if problem.n_stations == 0:
        prices = np.zeros(H) if network is None else np.zeros((network.n_constraints, H), dtype=np.complex128)
        return MPCSolution(p=np.zeros((0, H)), prices=prices, objective=0.0, iterations=0, converged=True,
                           solve_time_s=time.perf_counter() - start)
    if network is not None and not network.is_linear and solver == "OSQP":
        raise ValueError(f"MPCSettings.centralised.centralised_solver = 'OSQP' cannot solve network {network.name!r} (second-order "
                         "cones); use CLARABEL")
    mask = problem.mask
    room = costs.cap - problem.x0
    values = {"lo": problem.lower_plan(), "hi": problem.upper_plan(),
              # the cap binds only while plugged (a free station's SOC may exceed its cap)
              "room": np.where(mask, room[:, None], np.maximum(room, 0.0)[:, None]),
              "c": problem.c}
    values.update({"P_ref": problem.P_ref} if network is None else _network_values(network, H))
    sparsity = {} if network is None else _sparsity(values)
    model = _model(problem, values, sparsity, reuse)
    for name, value in values.items():
        if name in sparsity and name in model.params:
            rows, cols = sparsity[name]
            model.params[name].value_sparse = sparse.coo_array((value[rows, cols], (rows, cols)), shape=value.shape)
        elif name in model.params:
            model.params[name].value = value
    model.costs.assign(problem, costs)
    options = _NETWORK_CLARABEL if network is not None and solver == "CLARABEL" else _SOLVER_OPTIONS[solver]
    try:
        with warnings.catch_warnings(), c_stdout_silenced():  # inaccurate: reported (converged False); OSQP prints
            warnings.filterwarnings("ignore", message="Solution may be inaccurate", category=UserWarning)
            # cvxpy reads its own sparse Parameters this way while it builds the solver's data
            warnings.filterwarnings("ignore", message="Reading from a sparse CVXPY expression", category=RuntimeWarning)
            model.problem.solve(solver=solver, **options)
        converged = model.problem.status == cp.OPTIMAL
    except cp.error.SolverError:
        if network is None or solver != "CLARABEL":
            raise
        model.problem.solve(solver=solver, **_NETWORK_RETRY)  # reported as a non-converged step
        converged = False
    status = model.problem.status
    if model.p.value is None:
        raise RuntimeError(f"centralised QP not solved: solver {solver} returned status {status!r}")
    p = np.clip(model.p.value, values["lo"], values["hi"])
    if network is None:
        prices = np.maximum(np.asarray(model.coupling["area"].dual_value, dtype=float).reshape(H), 0.0)
    else:
        prices = _network_prices(model, network, H)
    stats = model.problem.solver_stats
    return MPCSolution(p=p, prices=prices, objective=float(costs.value(problem, p).sum()),
                       iterations=int(stats.num_iters or 0), converged=converged, residual_kw=0.0, messages=0,
                       solve_time_s=time.perf_counter() - start)
