"""Receding-horizon MPC policies (decentralised price coordination and centralised QP).

At every step the policy builds a :class:`~pev_mpc.ChargingProblem` from the
observations alone (plus the plant model eta, dt_h from the config), solves it and
applies the first move.  Coordinates are relative to the current charge: for a
plugged station ``x0 = 0``, target ``r = soc_remain`` (kWh still missing) and cap
``s = soc_remain``.  With ``p_min = 0`` overshooting the target never lowers the
objective, so capping at the target loses nothing and needs no knowledge of the
battery capacity (which the observations do not carry).  With ``p_min > 0`` the
plant forces at least ``d * p_min * eta * dt_h`` kWh over the plugged horizon, so
the cap becomes ``s = max(r, that forced energy)`` and the QP stays feasible (the
plant saturates the battery at its capacity). ``d = min(steps_to_departure, H)``
for plugged stations and 0 for free ones; ``P_ref[k]`` is the observed area limit
for every k (raised to the sum of the plugged floors if those alone exceed it, the
only feasible choice). On a site network (``Policy.network``) the problem carries the
network instead (limits raised to the floors' loads where those alone exceed them) and
the first move is scaled onto it exactly.
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import fields
from typing import Any, ClassVar

import cvxpy as cp
import numpy as np

from pev_env.network import Network
from pev_env.scenarios.registry import check_scenario
from pev_env.schedule import plug_schedule
from pev_mpc.centralised import solve_centralised
from pev_mpc.coordinator import extrapolate_prices
from pev_mpc.decentralised import solve_decentralised
from pev_mpc.foresight import ComingPEVs, coming_pevs, with_coming
from pev_mpc.history import ArrivalHistory, day_key, station_names
from pev_mpc.network_allocation import scale_into_network
from pev_mpc.network_coordinator import READS as NETWORK_READS
from pev_mpc.policies.allocation import scale_to_budget
from pev_mpc.policies.base import Observed, Policy
from pev_mpc.pool import StationPool
from pev_mpc.problem import ChargingProblem
from pev_mpc.settings import MAX_HORIZON, Coordination, MPCSettings, Objective
from pev_mpc.solution import MPCSolution

MAX_EXCHANGE_RATIO = 10.0
"""`mpc-foresight` / `mpc-history`: the largest Network.exchange_ratio the early-delivery bonus is divided by
(a cone whose gains span half a turn has none)."""


def unread_policy_settings(settings: MPCSettings) -> tuple[str, ...]:
    """The `policy.<field>` settings `build_problem` never reads with `settings`: max_horizon without
    horizon_to_departure (the horizon is then `horizon`)."""
    return () if settings.horizon_to_departure else ("policy.max_horizon",)


def build_problem(ob: Observed, eta: float, dt_h: float, settings: MPCSettings,
                  network: Network | None = None, latest: int = 0) -> ChargingProblem:
    """The MPC problem seen from one step's observations (vectorised over stations), on `network`
    (None: the area limit).

    Horizon: settings.horizon, extended towards the latest departure (of a plugged PEV, or `latest` steps
    from now when later: a coming PEV's) when settings.horizon_to_departure, rounded up to a multiple of
    settings.horizon (so only a few problem shapes occur) and at most settings.max_horizon.
    """
    departure = ob.departure_steps()
    horizon = settings.horizon
    if settings.horizon_to_departure:
        last = max(int(departure.max(initial=0)), latest)
        horizon = max(horizon, min(horizon * -(-last // horizon), settings.max_horizon))
    d = np.minimum(departure, horizon)
    r = ob.soc_remain
    forced = np.where(ob.plugged, ob.p_min, 0.0) * eta * dt_h * d
    return ChargingProblem(
        x0=np.zeros_like(r),
        r=r,
        s=np.maximum(r, forced),
        d=d,
        p_min=ob.p_min,
        p_max=ob.p_max,
        eta=eta,
        dt_h=dt_h,
        P_ref=np.full(horizon, max(ob.P_ref, float(ob.floor_kw().sum()))),
        horizon=horizon,
        departure=departure,
        network=network if network is None else _floors_within(network, ob.floor_kw()),
    )


def _floors_within(network: Network, floor: np.ndarray) -> Network:
    """`network` with each limit raised to the floors' load where the floors alone exceed it."""
    load = network.loads(floor)
    if np.all(load <= network.limit):
        return network
    return network.with_limits(np.maximum(network.limit, load))


def safe_first_move(p0: np.ndarray, ob: Observed, eta: float, dt_h: float,
                    network: Network | None = None) -> np.ndarray:
    """Clip a planned first move to the station bounds and the PEV's need, then onto P_ref (network
    None) or the network.

    Solver tolerances can leave tiny bound or limit excesses; this guarantees
    ``floor <= a <= max(floor, need)`` per station and ``sum(a) <= P_ref``, or every
    ``|gain_j . a| <= limit_j`` (the power above the floors scaled by the largest common
    factor in [0, 1]), unless the floors alone exceed a limit.
    """
    floor = ob.floor_kw()
    upper = np.maximum(ob.need_kw(eta, dt_h), floor)
    extra = np.clip(p0, floor, upper) - floor
    if network is not None:
        return scale_into_network(network, floor, extra)
    return floor + scale_to_budget(extra, ob.P_ref - float(floor.sum()))


class _RecedingHorizon(Policy):
    """Shared receding-horizon loop: build, solve, apply the first move."""

    ignores: ClassVar[tuple[str, ...]] = ("policy.foresight", "policy.history")
    """MPCSettings this policy never reads or sets itself (a section, or section.field): `ignores_setting`."""
    network_ignores: ClassVar[tuple[str, ...]] = ()
    """MPCSettings it does not read on a site network (`Policy.network`) besides `ignores`."""

    @classmethod
    def ignores_setting(cls, key: str, network: bool = False) -> bool:
        """True when the setting `key` (section.field) has no effect on this policy, on a site network when
        `network` (the harness refuses or warns about a setting that a controller of the run would ignore)."""
        names = (*cls.ignores, *cls.network_ignores) if network else cls.ignores
        return any(key == name or key.startswith(name + ".") for name in names)

    def __init__(self, settings: MPCSettings | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else MPCSettings()

    def _act(self, ob: Observed) -> tuple[np.ndarray, dict[str, Any]]:
        eta, dt_h = self.config.eta, self.config.dt_h
        solution = self._solve(self.problem(ob))
        info = {
            "iterations": solution.iterations,
            "converged": solution.converged,
            "residual_kw": float(solution.residual_kw),
            "objective": float(solution.objective),
            "messages": int(solution.messages),
            "fallbacks": int(solution.fallbacks),
        }
        return safe_first_move(solution.p[:ob.plugged.size, 0], ob, eta, dt_h, self.network), info

    def problem(self, ob: Observed) -> ChargingProblem:
        """This step's problem (its first N columns are the stations)."""
        return build_problem(ob, self.config.eta, self.config.dt_h, self.settings, self.network)

    @abstractmethod
    def _solve(self, problem: ChargingProblem) -> Any:
        """Solve the horizon problem; return an MPCSolution."""


class DecentralisedMPC(_RecedingHorizon):
    """Stations solve their own QPs; the coordinator's prices are warm-started, shifted one step."""

    name = "mpc-decentralised"
    ignores = ("policy.foresight", "policy.history")
    network_ignores = tuple(key for key in (f"coordination.{f.name}" for f in fields(Coordination))
                            if key not in NETWORK_READS)
    """On a site network the coordination is by model-market exchanges (`pev_mpc.network_coordinator`), which
    read only its READS of the coordination section."""

    def _reset(self, config: Any, scenario: Any, seed: int | None) -> None:
        self._prices: np.ndarray | None = None   # the last step's prices ...
        self._before: np.ndarray | None = None   # ... and the step's before

    def _pool(self, problem: ChargingProblem) -> StationPool | None:
        """Where the station QPs live for this step (None: in process, `make_station_pool`)."""
        return None

    def _solve(self, problem: ChargingProblem) -> Any:
        # the last prices plus their last change (MPCSettings.warm_extrapolation); on a network the last
        # step's multipliers (J, H) as they are; solve_decentralised shifts them by one step itself
        warm = self._prices
        if warm is not None and problem.network is None:
            warm = extrapolate_prices(warm, self._before, self.settings.warm_extrapolation)
        solution = solve_decentralised(problem, self.settings, warm_prices=warm, pool=self._pool(problem))
        self._prices, self._before = np.asarray(solution.prices), self._prices
        return solution


class DecentralisedTrackingMPC(DecentralisedMPC):
    """The decentralised MPC with the reference objective: 'tracking' over the fixed horizon."""

    name = "mpc-decentralised-tracking"
    ignores = (*DecentralisedMPC.ignores, "objective.name", "policy.horizon_to_departure", "policy.max_horizon",
               *(f"objective.{f.name}" for f in fields(Objective)
                 if "tracking" not in f.metadata.get("applies", ("tracking",))))  # the deadline weights

    def __init__(self, settings: MPCSettings | None = None) -> None:
        base = settings if settings is not None else MPCSettings()
        super().__init__(base.replace(objective=base.objective.switched("tracking"), horizon_to_departure=False))


class ForesightMPC(DecentralisedMPC):
    """The decentralised MPC told the PEVs that will arrive within `settings.foresight` steps (their station,
    arrival, departure and energy, read from the episode's scenario: **not causal**), planned over a whole
    day (max_horizon one day of steps unless set). It bounds what a forecast of arrivals can be worth, as
    the offline optimum bounds the whole controller (`pev_mpc.foresight`); `coming` is where a forecast of
    one's own goes.

    On a network whose rows weigh stations unequally the early-delivery bonus is divided by the network's
    `exchange_ratio` (unless `early_weight` is set): a whole-day plan would otherwise trade a kWh left unmet
    for several kWh delivered earlier at stations that load the binding row less (docs/FORMULATION.md)."""

    name = "mpc-foresight"
    causal = False
    ignores = ("policy.history",)

    def __init__(self, settings: MPCSettings | None = None) -> None:
        super().__init__(settings)
        if self.settings.objective.name != "deadline":
            raise ValueError(f"MPCSettings.objective.name = {self.settings.objective.name!r}: {self.name} plans "
                             "PEVs still to come with the 'deadline' objective only")
        self._asked = self.settings

    def _reset(self, config: Any, scenario: Any, seed: int | None) -> None:
        super()._reset(config, scenario, seed)
        if scenario is None:
            raise ValueError(f"{type(self).__name__}.reset: scenario = None: a Scenario is required (its stations "
                             "and arrivals)")
        self._scenario, self._schedule, self._step = scenario, None, 0
        self.settings = self._asked.replace(**self._whole_day(config))

    def _whole_day(self, config: Any) -> dict[str, Any]:
        """The settings a whole-day plan changes: max_horizon one day of steps, the bonus by exchange_ratio
        (each unless given)."""
        changes: dict[str, Any] = {}
        if "max_horizon" not in self._asked.policy.given:
            day = min(MAX_HORIZON, int(np.ceil(24.0 / config.dt_h - 1e-9)))
            changes["max_horizon"] = max(day, self._asked.horizon)
        if "early_weight" not in self._asked.objective.given and self.network is not None:
            ratio = min(self.network.exchange_ratio, MAX_EXCHANGE_RATIO)
            changes["early_weight"] = self._asked.objective.early_weight / ratio
        return changes

    def coming(self, step: int, busy_until: np.ndarray) -> ComingPEVs:
        """The PEVs still to come that step `step`'s problem plans for (busy_until (N,): the step at which
        each station's PEV leaves, `step` where free): the scenario's arrivals in the next `foresight` steps.
        Override it with a forecast of your own, and the policy is causal."""
        if self._schedule is None:      # here, not at reset: a causal override never reads the scenario's arrivals
            self._schedule = plug_schedule(self._scenario)
        return coming_pevs(self._scenario, step, self.settings.foresight, busy_until, self._schedule)

    def problem(self, ob: Observed) -> ChargingProblem:
        step, self._step = self._step, self._step + 1
        busy_until = step + ob.departure_steps()
        coming = self.coming(step, busy_until)
        latest = int(coming.departure.max(initial=0))
        problem = build_problem(ob, self.config.eta, self.config.dt_h, self.settings, self.network, latest)
        return with_coming(problem, coming)


class HistoryMPC(ForesightMPC):
    """`mpc-foresight` with a causal forecast of arrivals instead of the scenario's: the expected PEVs of the
    site's other days (`settings.history`) at each free station within the next `foresight` steps
    (`pev_mpc.history.ArrivalHistory`). Of the episode it reads the stations, and its sessions only to leave
    its own day out of the history (`pev_mpc.history.day_key`)."""

    name = "mpc-history"
    causal = True  # its forecast comes from the site's other days, not from the episode
    ignores = ()

    def __init__(self, settings: MPCSettings | None = None) -> None:
        super().__init__(settings)
        check_scenario(self.settings.history, "mpc.policy.history")
        self._read: tuple[tuple[Any, ...], ArrivalHistory] | None = None
        self._history: ArrivalHistory | None = None

    def _reset(self, config: Any, scenario: Any, seed: int | None) -> None:
        super()._reset(config, scenario, seed)
        self._seen = 0
        self._plugged = np.zeros(config.n_stations, dtype=bool)
        self._departs = np.zeros(config.n_stations, dtype=np.int64)
        ids = station_names(scenario)
        key = (self.settings.history, ids, config.dt_h)
        if self._read is None or self._read[0] != key:
            self._read = key, ArrivalHistory.read(self.settings.history, ids, config)
        self._history = self._read[1].leaving_out(day_key(scenario))

    def problem(self, ob: Observed) -> ChargingProblem:
        departs = ob.departure_steps()
        began = ob.plugged & (~self._plugged | (departs >= self._departs))   # plugged in, or another PEV came
        self._seen += int(np.count_nonzero(began))
        self._plugged, self._departs = ob.plugged.copy(), departs
        return super().problem(ob)

    def coming(self, step: int, busy_until: np.ndarray) -> ComingPEVs:
        """The history's expected PEVs of the next `foresight` steps at the stations free by then, their energy
        scaled by the nowcast of the sessions seen so far (`ArrivalHistory.nowcast`)."""
        assert self._history is not None, "reset first"
        pevs = self._history.expected(step, self.settings.foresight, busy_until)
        return pevs._replace(energy_kwh=pevs.energy_kwh * self._history.nowcast(step, self._seen))


class DistributedMPC(DecentralisedMPC):
    """The decentralised MPC with its station QPs in Ray actors (`pev_mpc.distributed.StationActors`).

    actors: an existing StationActors group to use; otherwise one with n_actors shards (Ray at
    `address`, default: the running session or a local instance) starts at the first control
    step, is reused for every later step, and is stopped by :meth:`close`. Its actors reserve no
    CPU, so they are placed even when the policy itself runs in a Ray task holding every CPU.
    """

    name = "mpc-distributed"

    def __init__(self, settings: MPCSettings | None = None, n_actors: int = 2,
                 address: str | None = None, actors: Any = None) -> None:
        super().__init__(settings)
        self._n_actors, self._address = n_actors, address
        self._actors, self._owns_actors = actors, actors is None

    def _pool(self, problem: ChargingProblem) -> StationPool:
        if self._actors is None:
            from pev_mpc.distributed import StationActors

            self._actors = StationActors(self._n_actors, self._address, cpus_per_actor=0.0)
        return self._actors.pool(problem, self.settings)

    def close(self) -> None:
        """Stop the actors this policy started (and Ray, when they started it)."""
        if self._owns_actors and self._actors is not None:
            self._actors.shutdown()
            self._actors = None


class CentralisedMPC(_RecedingHorizon):
    """One QP over all stations with the area constraint or the site network's (an SOCP with cones); the same
    information as the decentralised MPC."""

    name = "mpc-centralised"
    ignores = ("coordination", "stations", "policy.foresight", "policy.history")

    def _reset(self, config: Any, scenario: Any, seed: int | None) -> None:
        self._last: MPCSolution | None = None

    def _solve(self, problem: ChargingProblem) -> Any:
        try:
            self._last = solve_centralised(problem, self.settings)
        except cp.error.SolverError:
            self._last = shifted_plan(problem, self._last)
        return self._last


def shifted_plan(problem: ChargingProblem, last: MPCSolution | None) -> MPCSolution:
    """Where the solver failed: the last step's plan shifted by one step (zeros beyond it), within this
    step's bounds; not converged and one fallback, so the step is visible in the results (the policy then
    scales the first move onto the limits)."""
    H = problem.horizon
    p = np.zeros((problem.n_stations, H))
    if last is not None and last.p.shape[0] == problem.n_stations:
        tail = last.p[:, 1:H + 1]
        p[:, :tail.shape[1]] = tail
    p = np.clip(p, problem.lower_plan(), problem.upper_plan())
    prices = np.zeros(H) if problem.network is None else np.zeros((problem.network.n_constraints, H), complex)
    return MPCSolution(p=p, prices=prices, objective=float("nan"), iterations=0, converged=False, fallbacks=1)
