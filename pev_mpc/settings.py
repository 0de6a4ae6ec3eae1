"""MPC settings: horizon, objective weights, coordination and solver options."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

OBJECTIVES = ("deadline", "tracking")
COORDINATIONS = ("newton", "smoothed-newton", "nesterov", "gradient")
STATION_SOLVERS = ("auto", "separable", "active_set", "batch", "osqp")
CENTRAL_SOLVERS = ("CLARABEL", "OSQP")
MAX_HORIZON = 2_016
"""Longest horizon / max_horizon (steps; a week at 5 min): each station QP holds H x H matrices, so a
larger horizon would exhaust memory long before it solved."""
_INT_FIELDS = ("horizon", "max_horizon", "model_after", "model_rounds", "smoothing_after", "barrier_rounds",
               "max_iterations", "station_max_iter", "active_set_max_sweeps", "cold_start_sample")
_BOOL_FIELDS = ("horizon_to_departure",)
_STR_FIELDS = ("objective", "coordination", "station_solver", "centralised_solver")


def _require(ok: bool, field: str, value: object, allowed: str) -> None:
    if not ok:
        raise ValueError(f"MPCSettings.{field} = {value!r}: must be {allowed}")


@dataclass(frozen=True)
class MPCSettings:
    """Settings shared by the decentralised and centralised MPC.

    The objective and its weights define f_i (docs/FORMULATION.md, pev_mpc.objective); every solver
    uses them identically.
    """

    horizon: int = 24
    """Prediction horizon H (steps); the MPC policies extend it to the latest departure when
    horizon_to_departure is set."""
    objective: str = "deadline"
    """'deadline' (default: unmet energy at departure, early delivery by laxity as tie-break) or
    'tracking' (the reference formulation: wT, wS, eps)."""
    horizon_to_departure: bool = True
    """MPC policies: extend the horizon of each step's problem towards the latest departure of a
    plugged PEV (rounded up to a multiple of `horizon`, at most `max_horizon`)."""
    max_horizon: int = 48
    """Longest horizon (steps) horizon_to_departure extends to; later departures still set each
    PEV's laxity (ChargingProblem.departure)."""
    unmet_weight: float = 100.0
    """'deadline': W, cost of one kWh left unmet at departure (objective units per kWh)."""
    early_weight: float = 0.5
    """'deadline': gamma in [0, 1), the largest early-delivery bonus as a fraction of W."""
    early_decay_per_h: float = 3.0
    """'deadline': kappa (1/h); the bonus of energy delivered t hours ahead is divided by 1 + kappa t.
    Steep (3: a third of an hour halves it), so that deferring a PEV costs nearly the same whether by
    minutes or hours and the laxity decides who is served now, as in LLF (docs/FORMULATION.md)."""
    laxity_scale_h: float = 1.0
    """'deadline': tau (h); a PEV's bonus is scaled by 1 / (1 + laxity / tau)."""
    deadline_reg: float = 1e-3
    """'deadline': eps of sum_k p[k]^2 relative to c W / p_max (dimensionless); small against
    early_weight / 2, so that one PEV's bonus outranks a slightly smaller one (priority, not sharing)."""
    terminal_weight: float = 10.0
    """'tracking': wT, weight of (r - x[d])^2 (1/kWh^2)."""
    tracking_weight: float = 1.0
    """'tracking': wS, weight of sum_k (r - x[k])^2 (1/kWh^2)."""
    power_reg: float = 1e-3
    """'tracking': eps, weight of sum_k p[k]^2 (1/kW^2); > 0 makes every f_i strongly convex."""
    coordination: str = "newton"
    """Price update: 'newton' (dual Newton with locally reported price sensitivities, default),
    'smoothed-newton' ('newton' until smoothing_after steps were rejected, then a barrier continuation
    on log-barrier-smoothed station QPs followed by 'newton'; pools that cannot smooth, e.g. 'osqp',
    just continue with 'newton'), 'nesterov' (accelerated projected gradient) or 'gradient'."""
    model_after: int | None = 12
    """'newton' with station pools whose replies carry bids (the separable station QPs of the deadline
    objective): after this many rounds without convergence, the coordinator clears the market of the
    station QPs that the last replies reveal between exchanges (docs/FORMULATION.md, "Coordination");
    0: from the first reply, None: never."""
    model_rounds: int = 25
    """Cap on the coordinator's own rounds on that model market per exchange (they send no messages)."""
    smoothing_after: int = 4
    """'smoothed-newton': rejected exact Newton steps after which the barrier continuation takes over."""
    barrier_start: float = 0.25
    """'smoothed-newton': first barrier tau (objective units), as a multiple of the largest price
    ceiling (objective units per kW) times 1 kW."""
    barrier_shrink: float = 0.1
    """'smoothed-newton': barrier factor between levels (0 < . < 1)."""
    barrier_end: float = 1e-4
    """'smoothed-newton': last barrier level (relative, as barrier_start); the exact Newton follows."""
    barrier_rounds: int = 12
    """'smoothed-newton': round budget per barrier level."""
    barrier_accuracy: float = 1.0
    """'smoothed-newton': a level is solved once the Newton decrement r.step is below this times tau."""
    max_iterations: int = 200
    """Cap on coordination rounds per control step."""
    primal_tol_kw: float = 1e-4
    """Stop when the area residual (sum_i p_i - P_ref, kW; only its positive part where the price
    is zero) is below this value and ..."""
    gap_tol: float = 1e-7
    """... ('newton') the dual gap of the applied plans is certified below this value times
    max(1, |dual value|) (docs/FORMULATION.md, "Stopping") ..."""
    price_tol: float = 1e-8
    """... ('gradient', 'nesterov') the last price change, relative to max(1, largest price), is below
    this value. Warm-start prices below it (relative) start at 0."""
    step_size: float | None = None
    """Gradient/Nesterov step alpha; None derives it from the problem (1 / sum_i 1/mu_i)."""
    station_solver: str = "auto"
    """'auto' (default): 'separable' where it applies (objective 'deadline', p_min >= 0), else 'active_set';
    'separable': every station QP in closed form (pev_mpc.separable_qp; exact, no iterations);
    'active_set': all station QPs by one vectorised primal-dual active-set method, warm-started
    from the previous round's active sets (exact; unsettled stations go to the interior point);
    'batch': all station QPs in one vectorised interior-point solve (separable, exact);
    'osqp': one StationQP (OSQP) per station."""
    station_tol: float = 1e-9
    """Station QP tolerance (interior point: KKT residual and complementarity; OSQP: eps_abs/eps_rel)."""
    station_max_iter: int = 80
    """Interior-point iteration cap for the batched station solve."""
    active_set_max_sweeps: int = 30
    """Cap on active-set sweeps per round ('active_set'); stations still unsettled are solved by the
    interior point (station_max_iter)."""
    warm_extrapolation: float = 0.05
    """MPC policy: the warm start of the next step is the last prices plus their last change, each
    change limited to this fraction of the largest price (pev_mpc.coordinator.extrapolate_prices;
    0 disables: the last prices, shifted)."""
    cold_start_sample: int = 32
    """Cold control step (no warm prices) with more stations than this: prices are first coordinated
    on an evenly spaced sample of max(this, N // 8) stations (area limit scaled to the sample, itself
    cold-started the same way) and used as the warm start; 0 disables."""
    station_time_limit_s: float = 0.0
    """OSQP time limit per station solve (0 = none); a timeout is handled as a failure."""
    centralised_solver: str = "CLARABEL"
    """Solver of the coupled QP: 'CLARABEL' or 'OSQP' (eps 1e-8 and polishing)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) and f.name not in _BOOL_FIELDS or isinstance(v, (complex, str)) and \
                    f.name not in _STR_FIELDS:
                raise TypeError(f"MPCSettings.{f.name} = {v!r}: must be {'an int' if f.name in _INT_FIELDS else 'a number'}"
                                f", not {type(v).__name__}")
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"MPCSettings.{f.name} = {v!r}: must be finite")
        for name in ("horizon", "max_horizon"):
            v = getattr(self, name)
            _require(isinstance(v, int) and 1 <= v <= MAX_HORIZON, name, v, f"an int in [1, {MAX_HORIZON}]")
        _require(self.objective in OBJECTIVES, "objective", self.objective, f"one of {OBJECTIVES}")
        _require(isinstance(self.horizon_to_departure, bool), "horizon_to_departure", self.horizon_to_departure,
                 "true or false")
        for name in ("terminal_weight", "tracking_weight"):
            _require(float(getattr(self, name)) >= 0.0, name, getattr(self, name), ">= 0")
        for name in ("unmet_weight", "laxity_scale_h", "power_reg", "deadline_reg", "early_decay_per_h"):
            _require(float(getattr(self, name)) > 0.0, name, getattr(self, name), "> 0")
        _require(0.0 <= float(self.early_weight) < 1.0, "early_weight", self.early_weight, "in [0, 1)")
        _require(self.coordination in COORDINATIONS, "coordination", self.coordination, f"one of {COORDINATIONS}")
        for name in ("smoothing_after", "barrier_rounds", "model_rounds"):
            v = getattr(self, name)
            _require(isinstance(v, int) and v >= 1, name, v, "an int >= 1")
        _require(self.model_after is None or isinstance(self.model_after, int) and self.model_after >= 0,
                 "model_after", self.model_after, "None or an int >= 0")
        for name in ("barrier_start", "barrier_end", "barrier_accuracy"):
            v = getattr(self, name)
            _require(float(v) > 0.0, name, v, "> 0")
        _require(0.0 < float(self.barrier_shrink) < 1.0, "barrier_shrink", self.barrier_shrink, "in (0, 1)")
        _require(self.barrier_end <= self.barrier_start, "barrier_end", self.barrier_end,
                 f"<= barrier_start ({self.barrier_start})")
        _require(isinstance(self.max_iterations, int) and self.max_iterations >= 1,
                 "max_iterations", self.max_iterations, "an int >= 1")
        for name in ("primal_tol_kw", "price_tol", "gap_tol", "station_tol"):
            v = getattr(self, name)
            _require(float(v) > 0.0, name, v, "> 0")
        _require(self.step_size is None or float(self.step_size) > 0.0, "step_size", self.step_size, "None or > 0")
        _require(self.station_solver in STATION_SOLVERS, "station_solver", self.station_solver,
                 f"one of {STATION_SOLVERS}")
        _require(self.station_solver != "separable" or self.objective == "deadline", "station_solver",
                 self.station_solver, f"'auto', 'active_set', 'batch' or 'osqp' with objective {self.objective!r} "
                 "('separable' needs the deadline objective)")
        _require(isinstance(self.station_max_iter, int) and self.station_max_iter >= 1,
                 "station_max_iter", self.station_max_iter, "an int >= 1")
        _require(isinstance(self.active_set_max_sweeps, int) and self.active_set_max_sweeps >= 1,
                 "active_set_max_sweeps", self.active_set_max_sweeps, "an int >= 1")
        _require(float(self.warm_extrapolation) >= 0.0, "warm_extrapolation", self.warm_extrapolation, ">= 0")
        _require(isinstance(self.cold_start_sample, int) and self.cold_start_sample >= 0,
                 "cold_start_sample", self.cold_start_sample, "an int >= 0")
        _require(float(self.station_time_limit_s) >= 0.0, "station_time_limit_s", self.station_time_limit_s, ">= 0")
        _require(self.centralised_solver in CENTRAL_SOLVERS, "centralised_solver", self.centralised_solver,
                 f"one of {CENTRAL_SOLVERS}")
