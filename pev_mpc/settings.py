"""MPC settings in sections: the objective, the coordination, the station solvers, the centralised solver and
the receding-horizon policy (`MPCSettings.objective`, `.coordination`, `.stations`, `.centralised`, `.policy`).

A field that applies to one objective or coordination method only (its metadata `applies`) is refused when
given with another one. Which fields were given is recorded per section (`Section.given`): defaults never
count. Flat keywords (`MPCSettings(horizon=48)`, `settings.replace(terminal_weight=...)`) go to their section,
and flat attributes (`settings.horizon`) read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, ClassVar, TypeVar

OBJECTIVES = ("deadline", "tracking")
COORDINATIONS = ("newton", "smoothed-newton", "nesterov", "gradient")
STATION_SOLVERS = ("auto", "separable", "active_set", "batch", "osqp")
CENTRAL_SOLVERS = ("CLARABEL", "OSQP")
MAX_HORIZON = 2_016
"""Longest horizon / max_horizon (steps; a week at 5 min): each station QP holds H x H matrices, so a
larger horizon would exhaust memory long before it solved."""
_INT_FIELDS = ("horizon", "max_horizon", "foresight", "model_after", "model_rounds", "smoothing_after",
               "barrier_rounds", "max_iterations", "station_max_iter", "active_set_max_sweeps", "cold_start_sample")
_BOOL_FIELDS = ("horizon_to_departure",)
_STR_FIELDS = ("objective", "coordination", "station_solver", "centralised_solver", "history")

S = TypeVar("S", bound="Section")


def _path(field: str) -> str:
    """The sectioned name of a flat field ('horizon' -> 'policy.horizon'), as config files and `--set` write it."""
    return ".".join(FLAT[field]) if field in FLAT and field not in SECTIONS else field


def _require(ok: bool, field: str, value: object, allowed: str) -> None:
    if not ok:
        raise ValueError(f"MPCSettings.{_path(field)} = {value!r}: must be {allowed}")


def _only(*choices: str) -> dict[str, tuple[str, ...]]:
    """Field metadata: the field applies to these values of its section's selector only."""
    return {"applies": choices}


class Section:
    """Base of the settings sections (frozen dataclasses, eq=False: equality and hash are here): records the
    fields given to the constructor (`given`; defaults never count) and refuses a given field that does not
    apply to the selector's value. Compared with a string (code written for the flat settings, e.g.
    `settings.coordination == "newton"`) it raises TypeError rather than answering False."""

    selector: ClassVar[str] = ""
    """The field whose value decides which fields apply ('' for none)."""
    choices: ClassVar[tuple[str, ...]] = ()
    """The selector's valid values (an invalid one is reported by MPCSettings, before applicability)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        self = super().__new__(cls)
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        object.__setattr__(self, "_given", frozenset(names[:len(args)]) | frozenset(kwargs))
        return self

    @property
    def given(self) -> frozenset[str]:
        """The fields given to the constructor (set by the user), defaults left out."""
        return self._given  # type: ignore[attr-defined,no-any-return]

    def updated(self: S, **changes: Any) -> S:
        """This section with `changes`: the fields given stay given, the changed ones join them (use it, not
        dataclasses.replace, which counts every field as given)."""
        return type(self)(**{**{name: getattr(self, name) for name in self.given}, **changes})

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            section = SECTION_NAMES[type(self)]
            raise TypeError(f"MPCSettings.{section} is a section, not {other!r}: compare "
                            f"{section}.{self.selector or '<field>'}")
        return type(other) is type(self) and self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        """Computed once (a section is immutable; the objective's cost cache hashes the settings at every
        lookup) and never pickled: another process hashes strings differently."""
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash((type(self).__name__, self._values()))
            object.__setattr__(self, "_hash", cached)
        return cached  # type: ignore[no-any-return]

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_hash"}

    def __post_init__(self) -> None:
        choice = getattr(self, self.selector, None)
        if choice not in self.choices:
            return
        section = SECTION_NAMES[type(self)]
        for f in fields(self):  # type: ignore[arg-type]
            applies = f.metadata.get("applies")
            if f.name in self.given and applies and choice not in applies:
                raise ValueError(f"MPCSettings.{section}.{f.name} = {getattr(self, f.name)!r}: applies to "
                                 f"{section}.{self.selector} {' or '.join(map(repr, applies))} only, not {choice!r}")


DEADLINE, TRACKING = _only("deadline"), _only("tracking")


@dataclass(frozen=True, eq=False)
class Objective(Section):
    """The objective f_i and its weights (docs/FORMULATION.md, pev_mpc.objective); every solver uses them
    identically. A weight of the other objective is refused."""

    selector: ClassVar[str] = "name"
    choices: ClassVar[tuple[str, ...]] = OBJECTIVES

    name: str = "deadline"
    """'deadline' (default: unmet energy at departure, early delivery by laxity as tie-break) or
    'tracking' (the reference formulation: wT, wS, eps)."""
    unmet_weight: float = field(default=100.0, metadata=DEADLINE)
    """'deadline': W, cost of one kWh left unmet at departure (objective units per kWh)."""
    early_weight: float = field(default=0.5, metadata=DEADLINE)
    """'deadline': gamma in [0, 1), the largest early-delivery bonus as a fraction of W."""
    early_decay_per_h: float = field(default=3.0, metadata=DEADLINE)
    """'deadline': kappa (1/h); the bonus of energy delivered t hours ahead is divided by 1 + kappa t.
    Steep (3: a third of an hour halves it), so that deferring a PEV costs nearly the same whether by
    minutes or hours and the laxity decides who is served now, as in LLF (docs/FORMULATION.md)."""
    laxity_scale_h: float = field(default=1.0, metadata=DEADLINE)
    """'deadline': tau (h); a PEV's bonus is scaled by 1 / (1 + laxity / tau)."""
    deadline_reg: float = field(default=1e-3, metadata=DEADLINE)
    """'deadline': eps of sum_k p[k]^2 relative to c W / p_max (dimensionless); small against
    early_weight / 2, so that one PEV's bonus outranks a slightly smaller one (priority, not sharing)."""
    terminal_weight: float = field(default=10.0, metadata=TRACKING)
    """'tracking': wT, weight of (r - x[d])^2 (1/kWh^2)."""
    tracking_weight: float = field(default=1.0, metadata=TRACKING)
    """'tracking': wS, weight of sum_k (r - x[k])^2 (1/kWh^2)."""
    power_reg: float = field(default=1e-3, metadata=TRACKING)
    """'tracking': eps, weight of sum_k p[k]^2 (1/kW^2); > 0 makes every f_i strongly convex."""

    def switched(self, name: str) -> Objective:
        """The objective `name` with the weights given here that apply to it (a policy that fixes its
        objective, e.g. mpc-decentralised-tracking, drops the others)."""
        keep = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name in self.given and name in f.metadata.get("applies", (name,))}
        return Objective(**{**keep, "name": name})


SMOOTHED = _only("smoothed-newton")


@dataclass(frozen=True, eq=False)
class Coordination(Section):
    """How the area coordinator finds the prices: the method, its stopping rule and its warm start. An
    option of another method is refused."""

    selector: ClassVar[str] = "method"
    choices: ClassVar[tuple[str, ...]] = COORDINATIONS

    method: str = "newton"
    """Price update: 'newton' (dual Newton with locally reported price sensitivities, default),
    'smoothed-newton' ('newton' until smoothing_after steps were rejected, then a barrier continuation
    on log-barrier-smoothed station QPs followed by 'newton'; the station solvers that cannot smooth,
    'separable' (what 'auto' is with the deadline objective) and 'osqp', run Newton alone, without the
    model market, and the harness refuses it there), 'nesterov' (accelerated projected gradient) or
    'gradient'."""
    max_iterations: int = 200
    """Cap on coordination rounds per control step. On a site network a step also stops after 12 model
    exchanges (`network_coordinator.MAX_EXCHANGES`), 13 rounds without lost replies, so a larger cap changes
    nothing there."""
    primal_tol_kw: float = 1e-4
    """Stop when the area residual (sum_i p_i - P_ref, kW; only its positive part where the price
    is zero) is below this value and ..."""
    gap_tol: float = 1e-7
    """... ('newton') the dual gap of the applied plans is certified below this value times
    max(1, |dual value|) (docs/FORMULATION.md, "Stopping") ..."""
    price_tol: float = 1e-8
    """... ('gradient', 'nesterov') the last price change, relative to max(1, largest price), is below
    this value. Warm-start prices below it (relative) start at 0."""
    step_size: float | None = field(default=None, metadata=_only("gradient", "nesterov"))
    """'gradient' / 'nesterov': step alpha; None derives it from the problem (1 / sum_i 1/mu_i)."""
    model_after: int | None = field(default=12, metadata=_only("newton"))
    """'newton': after this many rounds without convergence, the coordinator clears a model market itself:
    with station pools whose replies carry bids (the separable station QPs of the deadline objective), the
    market of the station QPs that the last replies reveal, between exchanges; with pools whose replies are
    their QPs' exact optima but carry no bids (the tracking objective's active-set stations, also through
    Ray; not OSQP's), once, the market of the station QPs reported once
    (docs/FORMULATION.md, "Coordination"); 0: from the first reply, None: never (Newton alone)."""
    model_rounds: int = field(default=25, metadata=_only("newton"))
    """'newton': cap on the coordinator's own rounds on that model market per exchange (they send no
    messages)."""
    smoothing_after: int = field(default=4, metadata=SMOOTHED)
    """'smoothed-newton': rejected exact Newton steps after which the barrier continuation takes over."""
    barrier_start: float = field(default=0.25, metadata=SMOOTHED)
    """'smoothed-newton': first barrier tau (objective units), as a multiple of the largest price
    ceiling (objective units per kW) times 1 kW."""
    barrier_shrink: float = field(default=0.1, metadata=SMOOTHED)
    """'smoothed-newton': barrier factor between levels (0 < . < 1)."""
    barrier_end: float = field(default=1e-4, metadata=SMOOTHED)
    """'smoothed-newton': last barrier level (relative, as barrier_start); the exact Newton follows."""
    barrier_rounds: int = field(default=12, metadata=SMOOTHED)
    """'smoothed-newton': round budget per barrier level."""
    barrier_accuracy: float = field(default=1.0, metadata=SMOOTHED)
    """'smoothed-newton': a level is solved once the Newton decrement r.step is below this times tau."""
    warm_extrapolation: float = 0.05
    """MPC policy: the warm start of the next step is the last prices plus their last change, each
    change limited to this fraction of the largest price (pev_mpc.coordinator.extrapolate_prices;
    0 disables: the last prices, shifted)."""
    cold_start_sample: int = 32
    """Cold control step (no warm prices) with more stations than this: prices are first coordinated
    on an evenly spaced sample of max(this, N // 8) stations (area limit scaled to the sample, itself
    cold-started the same way) and used as the warm start; 0 disables."""


@dataclass(frozen=True, eq=False)
class Stations(Section):
    """How the decentralised MPC solves the station QPs of a coordination round."""

    station_solver: str = "auto"
    """'auto' (default): 'separable' where it applies (objective 'deadline', p_min >= 0), else 'active_set';
    'separable': every station QP in closed form (pev_mpc.separable_qp; exact, no iterations);
    'active_set': all station QPs by one vectorised primal-dual active-set method, warm-started
    from the previous round's active sets (exact; unsettled stations go to the interior point);
    'batch': all station QPs in one vectorised interior-point solve (separable, exact);
    'osqp': one StationQP (OSQP) per station."""
    station_tol: float = 1e-9
    """Station QP tolerance (interior point: KKT residual and complementarity; OSQP: eps_abs/eps_rel). This and
    the fields below are read by the solvers named (`pev_mpc.decentralised.SOLVER_READS`), never by 'separable'
    (closed form; what 'auto' is with the deadline objective)."""
    station_max_iter: int = 80
    """Interior-point iteration cap for the batched station solve ('batch', 'active_set')."""
    active_set_max_sweeps: int = 30
    """Cap on active-set sweeps per round ('active_set', and the active-set model of the reported market of
    'batch': `pev_mpc.decentralised.reported_market`); stations still unsettled are solved by the interior point
    (station_max_iter)."""
    station_time_limit_s: float = 0.0
    """OSQP time limit per station solve (0 = none; 'osqp', and the OSQP last resort of 'batch' and
    'active_set'); a timeout is handled as a failure."""


@dataclass(frozen=True, eq=False)
class Centralised(Section):
    """How the centralised MPC solves the coupled QP."""

    centralised_solver: str = "CLARABEL"
    """Solver of the coupled QP: 'CLARABEL' or 'OSQP' (eps 1e-8 and polishing); also of the decentralised MPC's
    centralised QP of the reported station QPs (`pev_mpc.decentralised.unread_centralised_settings`)."""


@dataclass(frozen=True, eq=False)
class Policy(Section):
    """The receding-horizon policy: the horizon of each control step's problem."""

    horizon: int = 24
    """Prediction horizon H (steps); the MPC policies extend it to the latest departure when
    horizon_to_departure is set."""
    horizon_to_departure: bool = True
    """MPC policies: extend the horizon of each step's problem towards the latest departure of a
    plugged PEV (rounded up to a multiple of `horizon`, at most `max_horizon`)."""
    max_horizon: int = 48
    """Longest horizon (steps) horizon_to_departure extends to; later departures still set each
    PEV's laxity (ChargingProblem.departure). `mpc-foresight`: one day of steps unless set."""
    foresight: int = 48
    """`mpc-foresight` and `mpc-history` only: the steps ahead in which they plan the PEVs that will arrive
    (`mpc-foresight`: told them by the scenario, not causal; `mpc-history`: forecast from other days); the
    other policies ignore it."""
    history: str = "acn-caltech-train"
    """`mpc-history` only: the scenario whose days (each distinct episode one day) are the site's other days
    it forecasts arrivals from (`pev_mpc.history`); the other policies ignore it."""


SECTIONS: dict[str, type[Section]] = {"objective": Objective, "coordination": Coordination, "stations": Stations,
                                      "centralised": Centralised, "policy": Policy}
"""Section name (the MPCSettings field, the key in config files and `--set mpc.<section>.<field>`) -> class."""
SECTION_NAMES: dict[type[Section], str] = {cls: name for name, cls in SECTIONS.items()}
FLAT: dict[str, tuple[str, str]] = {
    **{f.name: (section, f.name) for section, cls in SECTIONS.items() for f in fields(cls)  # type: ignore[arg-type]
       if f.name != cls.selector},
    **{section: (section, cls.selector) for section, cls in SECTIONS.items() if cls.selector}}
"""Flat keyword (the settings before sections) -> (section, field): `MPCSettings(horizon=48)`."""
MOVED: dict[str, str] = {flat: f"{section}.{name}" for flat, (section, name) in FLAT.items()}
"""Flat key of a config file or `--set` -> its sectioned key (refused there, naming it; 'objective' and
'coordination' only when given one value rather than their section)."""


def _assemble(sections: dict[str, Any], flat: dict[str, Any]) -> dict[str, Section]:
    """The sections of MPCSettings: `sections` (name -> Section, None for its defaults, or for 'objective' /
    'coordination' the selector's value) with the flat keywords `flat` applied to theirs."""
    changes: dict[str, dict[str, Any]] = {}
    for name, value in sections.items():
        if isinstance(value, str) and SECTIONS[name].selector:  # objective='tracking', coordination='gradient'
            flat = {name: value, **flat}
            sections[name] = None
    for key, value in flat.items():
        if key not in FLAT:
            raise TypeError(f"MPCSettings got an unexpected keyword argument {key!r}")
        section, name = FLAT[key]
        changes.setdefault(section, {})[name] = value
    out: dict[str, Section] = {}
    for name, cls in SECTIONS.items():
        value = sections.get(name)
        value = cls() if value is None else value
        _require(isinstance(value, cls), name, value, f"a {cls.__name__} section or None")
        out[name] = value.updated(**changes[name]) if name in changes else value
    return out


@dataclass(frozen=True, init=False)
class MPCSettings:
    """Settings shared by the decentralised and centralised MPC, in sections (docs/controllers.md, "Settings").

    `MPCSettings(policy=Policy(horizon=48))` or, flat, `MPCSettings(horizon=48)`,
    `MPCSettings(objective="tracking", terminal_weight=1000.0)`; `settings.replace(...)` takes either.
    """

    MOVED_KEYS: ClassVar[dict[str, str]] = MOVED

    objective: Objective = field(default_factory=Objective)
    """The objective and its weights."""
    coordination: Coordination = field(default_factory=Coordination)
    """The coordination method of the decentralised MPC, its stopping rule and warm start."""
    stations: Stations = field(default_factory=Stations)
    """The station QP solvers of the decentralised MPC."""
    centralised: Centralised = field(default_factory=Centralised)
    """The solver of the centralised MPC."""
    policy: Policy = field(default_factory=Policy)
    """The receding-horizon policy (horizon)."""

    def __init__(self, objective: Objective | str | None = None, coordination: Coordination | str | None = None,
                 stations: Stations | None = None, centralised: Centralised | None = None,
                 policy: Policy | None = None, **flat: Any) -> None:
        given = {"objective": objective, "coordination": coordination, "stations": stations,
                 "centralised": centralised, "policy": policy}
        self._fill(_assemble(given, flat))

    def _fill(self, sections: dict[str, Section]) -> None:
        for name, value in sections.items():
            object.__setattr__(self, name, value)
        self.__post_init__()

    def replace(self, **changes: Any) -> MPCSettings:
        """These settings with `changes`: sections (name -> Section) or flat keywords, which update the current
        section (`coordination='newton', max_iterations=5` keeps the other coordination fields). Use it rather
        than dataclasses.replace, which rebuilds a section from its defaults when given its selector's value."""
        sections: dict[str, Any] = {name: getattr(self, name) for name in SECTIONS}
        flat = {}
        for key, value in changes.items():
            if key in SECTIONS and isinstance(value, Section):
                sections[key] = value
            else:
                flat[key] = value
        new = object.__new__(type(self))
        new._fill(_assemble(sections, flat))
        return new

    def __post_init__(self) -> None:
        for key in FLAT:
            v = getattr(self, key)
            if isinstance(v, bool) and key not in _BOOL_FIELDS or isinstance(v, (complex, str)) and \
                    key not in _STR_FIELDS:
                raise TypeError(f"MPCSettings.{_path(key)} = {v!r}: must be "
                                f"{'an int' if key in _INT_FIELDS else 'a number'}, not {type(v).__name__}")
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"MPCSettings.{_path(key)} = {v!r}: must be finite")
        for name in ("horizon", "max_horizon"):
            v = getattr(self, name)
            _require(isinstance(v, int) and 1 <= v <= MAX_HORIZON, name, v, f"an int in [1, {MAX_HORIZON}]")
        _require(isinstance(self.history, str) and self.history != "", "history", self.history,
                 "a scenario name (the site's other days)")
        _require(isinstance(self.foresight, int) and 0 <= self.foresight <= MAX_HORIZON, "foresight", self.foresight,
                 f"an int in [0, {MAX_HORIZON}]")
        _require(self.objective.name in OBJECTIVES, "objective.name", self.objective.name, f"one of {OBJECTIVES}")
        _require(isinstance(self.horizon_to_departure, bool), "horizon_to_departure", self.horizon_to_departure,
                 "true or false")
        for name in ("terminal_weight", "tracking_weight"):
            _require(float(getattr(self, name)) >= 0.0, name, getattr(self, name), ">= 0")
        for name in ("unmet_weight", "laxity_scale_h", "power_reg", "deadline_reg", "early_decay_per_h"):
            _require(float(getattr(self, name)) > 0.0, name, getattr(self, name), "> 0")
        _require(0.0 <= float(self.early_weight) < 1.0, "early_weight", self.early_weight, "in [0, 1)")
        _require(self.coordination.method in COORDINATIONS, "coordination.method", self.coordination.method, f"one of {COORDINATIONS}")
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
        _require(self.station_solver != "separable" or self.objective.name == "deadline", "station_solver",
                 self.station_solver, f"'auto', 'active_set', 'batch' or 'osqp' with objective {self.objective.name!r} "
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


def _forward(flat: str, section: str, name: str) -> property:
    """Read-only attribute `flat` of MPCSettings: the field `name` of its section `section`."""
    return property(attrgetter(f"{section}.{name}"), doc=f"The same as `{section}.{name}` (flat access).")


for _flat, (_section, _name) in FLAT.items():
    if _flat not in SECTIONS:
        setattr(MPCSettings, _flat, _forward(_flat, _section, _name))
