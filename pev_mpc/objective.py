"""The MPC objectives, written once (docs/FORMULATION.md, "Objectives").

Every objective of this package is separable over stations and has the same *chain form* in
each station's SOC trajectory z_i[k] = x_i[k+1] = x0_i + c * sum_{j<=k} p_i[j] (c = eta dt_h):

    f_i(p_i) = sum_{k<d_i} node_weight[i,k] (z_i[k] - r_i)^2 + linear[i,k] p_i[k] + eps_i p_i[k]^2  + offset_i

subject to the station's own constraints p_min <= p <= p_max (k < d_i), p = 0 (k >= d_i) and
z_i[k] <= cap_i. An objective is therefore a function from (problem, settings) to
:class:`StationCosts`; everything a solver needs (value, gradient, price ceiling, strong
convexity, the cvxpy expression of the centralised QP) is computed here from those arrays, so the
station solvers, the coordinator, the centralised MPC and the checks share one definition.

- ``tracking`` (the reference formulation): node_weight = wS on every plugged step plus wT on the
  last one, linear = 0, cap = s.
- ``deadline`` (the default): linear = -c W (1 + gamma rho_i e_k), node_weight = 0 and
  cap = min(s, max(r, forced energy)). Maximising delivered energy up to the target is the same
  as minimising the energy left unmet at departure when the horizon reaches the departure; the
  bonus gamma rho_i e_k < 1 (e_k = 1 / (1 + kappa k dt_h)) breaks ties towards early delivery and
  towards the PEVs with the least laxity (rho_i = 1 / (1 + laxity_i / tau)).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import cached_property

import cvxpy as cp
import numpy as np

from pev_mpc.problem import ChargingProblem
from pev_mpc.settings import MPCSettings


_KW = 1e-3  # kW, floor of p_max in the deadline regularisation (a station rated 0 kW)


@dataclass(frozen=True, eq=False)
class StationCosts:
    """The chain-form objective of every station of one problem (see the module docstring)."""

    node_weight: np.ndarray
    """(N, H) weight of (z[k] - r)^2 (objective units per kWh^2), 0 for k >= d."""
    linear: np.ndarray
    """(N, H) cost per kW of p[k] (objective units per kW), 0 for k >= d."""
    power_reg: np.ndarray
    """(N,) eps_i (objective units per kW^2), > 0: every f_i is strongly convex."""
    cap: np.ndarray
    """(N,) SOC bound z[k] <= cap used by every solver (kWh); <= the battery cap s."""
    offset: np.ndarray
    """(N,) constant of f_i (objective units), so that the value reads in the objective's own terms."""

    def trajectory(self, problem: ChargingProblem, p: np.ndarray) -> np.ndarray:
        """(N, H) SOCs z = x[1..H] of plans p (entries beyond d ignored)."""
        return problem.x0[:, None] + problem.c * np.cumsum(np.where(problem.mask, p, 0.0), axis=1)

    def value(self, problem: ChargingProblem, p: np.ndarray) -> np.ndarray:
        """(N,) f_i(p_i) for plans p (N, H); entries beyond d_i count as 0."""
        p = np.where(problem.mask, np.asarray(p, dtype=float), 0.0)
        value = np.sum((self.linear + self.power_reg[:, None] * p) * p, axis=1) + self.offset
        if self.tracks:
            value += np.sum(self.node_weight * (self.trajectory(problem, p) - problem.r[:, None]) ** 2, axis=1)
        return value

    @cached_property
    def tracks(self) -> bool:
        """Some node weight is non-zero (else f_i is separable over the steps of p_i)."""
        return bool(np.any(self.node_weight))

    def gradient(self, problem: ChargingProblem, p: np.ndarray) -> np.ndarray:
        """(N, H) df_i/dp_i[k] (0 beyond d_i); minus this is the marginal value of power at k."""
        p = np.where(problem.mask, np.asarray(p, dtype=float), 0.0)
        dev = self.trajectory(problem, p) - problem.r[:, None]
        tail = np.cumsum((2.0 * self.node_weight * dev)[:, ::-1], axis=1)[:, ::-1]
        return problem.mask * (problem.c * tail + self.linear + 2.0 * self.power_reg[:, None] * p)

    def price_ceiling(self, problem: ChargingProblem) -> np.ndarray:
        """(H,) max over stations of the marginal value -df_i/dp_i[k] at the minimum plan.

        f_i is convex, so marginal values only fall as p grows: at any price above this ceiling every
        station draws its minimum at step k, and optimal area prices lie in [0, ceiling].
        """
        marginal = -self.gradient(problem, problem.lower_plan())
        return np.maximum(np.max(problem.mask * marginal, axis=0, initial=0.0), 0.0)

    def strong_convexity(self, problem: ChargingProblem) -> np.ndarray:
        """(N,) smallest Hessian eigenvalue mu_i of f_i in p (inf for stations without a PEV)."""
        mu = np.full(problem.n_stations, np.inf)
        plugged = np.flatnonzero(problem.d > 0)
        if plugged.size == 0:
            return mu
        rows = np.column_stack([problem.d[plugged], self.power_reg[plugged], self.node_weight[plugged]])
        _, first, group = np.unique(rows, axis=0, return_index=True, return_inverse=True)
        for g, i in enumerate(plugged[first]):  # stations with equal d and weights share their Hessian
            mu[plugged[group.ravel() == g]] = np.linalg.eigvalsh(self.hessian(problem, i))[0]
        return mu

    def hessian(self, problem: ChargingProblem, i: int) -> np.ndarray:
        """(d_i, d_i) Hessian of f_i in p_i[0..d_i-1]: 2 (c^2 L^T diag(w) L + eps I), L lower-triangular ones."""
        d = int(problem.d[i])
        L = np.tril(np.ones((d, d)))
        w = self.node_weight[i, :d]
        return 2.0 * (problem.c**2 * L.T @ (w[:, None] * L) + self.power_reg[i] * np.eye(d))

    def linear_term(self, problem: ChargingProblem, i: int) -> np.ndarray:
        """(d_i,) gradient of f_i at p_i = 0: the linear coefficient of the station QP in p_i."""
        d = int(problem.d[i])
        w = self.node_weight[i, :d]
        tail = np.cumsum((w * (problem.x0[i] - problem.r[i]))[::-1])[::-1]
        return 2.0 * problem.c * tail + self.linear[i, :d]


def tracking_costs(problem: ChargingProblem, settings: MPCSettings) -> StationCosts:
    """f_i = wT (r - x[d])^2 + wS sum_{k=1..d} (r - x[k])^2 + eps sum_k p[k]^2 (the reference formulation)."""
    mask = problem.mask
    last = np.zeros(mask.shape)
    plugged = np.flatnonzero(problem.d > 0)
    last[plugged, problem.d[plugged] - 1] = 1.0
    weight = mask * settings.tracking_weight + last * settings.terminal_weight
    zeros = np.zeros(problem.n_stations)
    return StationCosts(node_weight=weight, linear=np.zeros(mask.shape),
                        power_reg=np.full(problem.n_stations, settings.power_reg),
                        cap=problem.s.copy(), offset=zeros)


def laxity_steps(problem: ChargingProblem) -> np.ndarray:
    """(N,) laxity of each PEV in steps: steps from its arrival to its departure minus the steps it needs at
    p_max (>= 0)."""
    need = np.maximum(problem.r - problem.x0, 0.0)
    rate = problem.c * problem.p_max
    steps_needed = np.divide(need, rate, out=np.zeros_like(need), where=rate > 0)
    return np.where(problem.d > 0, np.maximum(problem.departure - problem.arrival - steps_needed, 0.0), 0.0)


def deadline_costs(problem: ChargingProblem, settings: MPCSettings) -> StationCosts:
    """f_i = W (cap_i - x_i[d_i]) - W gamma c sum_k rho_i e_k p_i[k] + eps sum_k p_i[k]^2,
    e_k = 1 / (1 + kappa k dt_h), eps_i = deadline_reg c W / p_max_i (each station's own, so a station's
    costs never depend on the other stations).

    With the horizon reaching the departure, W (cap - x[d]) is W times the energy left unmet at
    departure (cap = the target unless the plant forces more). The bonus is < W per kWh, so it
    only ranks plans that leave the same energy unmet: earlier delivery first, and among PEVs the
    least laxity first (rho_i = 1 / (1 + laxity_i / tau), tau = laxity_scale_h; kappa = early_decay_per_h).
    """
    mask, c, H = problem.mask, problem.c, problem.horizon
    forced = problem.x0 + c * problem.p_min * (problem.d - problem.arrival)
    cap = np.where(problem.d > 0, np.minimum(problem.s, np.maximum(problem.r, forced)), problem.s)
    rho = 1.0 / (1.0 + laxity_steps(problem) * problem.dt_h / settings.laxity_scale_h)
    early = 1.0 / (1.0 + settings.early_decay_per_h * problem.dt_h * np.arange(H))
    unit = c * settings.unmet_weight
    linear = -unit * mask * (1.0 + settings.early_weight * rho[:, None] * early[None, :])
    offset = np.where(problem.d > 0, settings.unmet_weight * (cap - problem.x0), 0.0)
    reg = settings.deadline_reg * unit / np.maximum(problem.p_max, _KW)
    return StationCosts(node_weight=np.zeros(mask.shape), linear=linear, power_reg=reg, cap=cap, offset=offset)


OBJECTIVES = {"deadline": deadline_costs, "tracking": tracking_costs}
"""Objective name (MPCSettings.objective) -> its chain-form costs."""


_COSTS: "weakref.WeakKeyDictionary[ChargingProblem, dict[MPCSettings, StationCosts]]" = weakref.WeakKeyDictionary()


def station_costs(problem: ChargingProblem, settings: MPCSettings) -> StationCosts:
    """The costs of settings.objective for problem, computed once per (problem, settings): both are
    immutable, and the pool, the coordinator and the objective of one step share them."""
    per_problem = _COSTS.setdefault(problem, {})
    if settings not in per_problem:
        costs = OBJECTIVES[settings.objective.name](problem, settings)
        for name in ("node_weight", "linear", "power_reg", "cap", "offset"):
            getattr(costs, name).setflags(write=False)
        per_problem[settings] = costs
    return per_problem[settings]


def objective_value(problem: ChargingProblem, settings: MPCSettings, p: np.ndarray) -> float:
    """sum_i f_i(p_i): the objective both MPCs minimise."""
    return float(station_costs(problem, settings).value(problem, p).sum())


@dataclass(frozen=True, eq=False)
class CvxpyCosts:
    """cvxpy Parameters of the chain-form objective for an (N, H) problem, and its expression.

    DPP: every weight is a Parameter, so new weights or a new objective need no recompilation.
    """

    sqrt_weight: cp.Parameter
    weighted_target: cp.Parameter
    linear: cp.Parameter
    sqrt_power_reg: cp.Parameter

    @classmethod
    def create(cls, n: int, H: int) -> "CvxpyCosts":
        return cls(sqrt_weight=cp.Parameter((n, H), nonneg=True, name="sqrt_weight"),
                   weighted_target=cp.Parameter((n, H), name="weighted_target"),
                   linear=cp.Parameter((n, H), name="linear"),
                   sqrt_power_reg=cp.Parameter((n, H), nonneg=True, name="sqrt_power_reg"))

    def expression(self, p: cp.Variable, e: cp.Variable) -> tuple[cp.Expression, list[cp.Constraint]]:
        """sum_i f_i - offset in p (kW) and e = cumulative energy added (kWh), z = x0 + e, with the
        constraints that define its auxiliary variables: the weighted residuals u, v and the linear cost
        enter the objective with constant coefficients, so the Parameters only scale constraint rows
        (cvxpy keeps that parametrisation sparse; Parameters in a QP objective are expanded densely,
        which at N = 1,000, H = 48 asks for 120 GB)."""
        u, v = cp.Variable(p.shape, name="tracking_residual"), cp.Variable(p.shape, name="scaled_power")
        linear = cp.Variable(name="linear_cost")
        constraints = [u == cp.multiply(self.sqrt_weight, e) - self.weighted_target,
                       v == cp.multiply(self.sqrt_power_reg, p), linear == cp.sum(cp.multiply(self.linear, p))]
        return cp.sum_squares(u) + linear + cp.sum_squares(v), constraints

    def assign(self, problem: ChargingProblem, costs: StationCosts) -> None:
        """Set the Parameters to the costs of problem."""
        sw = np.sqrt(costs.node_weight)
        self.sqrt_weight.value = sw
        self.weighted_target.value = sw * (problem.r - problem.x0)[:, None]
        self.linear.value = costs.linear
        self.sqrt_power_reg.value = np.broadcast_to(np.sqrt(costs.power_reg)[:, None], costs.linear.shape).copy()
