"""Distributed station agents: the station QPs live in Ray actors, the area coordinator stays local.

Each actor owns a shard of stations (a contiguous index range) and builds their local solver
(BatchStations or one StationQP per station, per ``settings.station_solver``) from its shard of the
problem data. Per coordination round the coordinator puts the prices (H floats) into the object
store once, every actor solves its shard for them, and the coordinator gathers the shards' plans
(N_shard x H), values, failure flags and, for the dual Newton update, the shard's summed price
sensitivity (H x H). The actors persist across control steps; only the problem data is re-sent.

    with StationActors(n_actors=2) as actors:
        sol = solve_decentralised(problem, settings, pool=actors.pool(problem, settings))

Ray is an optional dependency (the ``distributed`` extra), imported only when actors are started.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import numpy as np

from pev_mpc.decentralised import POOLS, make_station_pool, station_solver
from pev_mpc.pool import Bids, PoolCapabilities, StationPool, StationReplies, ask_pool, check_request
from pev_mpc.problem import ChargingProblem
from pev_mpc.ray_connect import connect_address
from pev_mpc.settings import MPCSettings

RAY_MISSING = ("the distributed mode needs Ray, which is not installed: "
               "install the distributed extra: pip install -e .[distributed]")

QUIET_RAY_INIT: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
"""ray.init keyword arguments used when this module starts a local Ray instance."""


def import_ray() -> ModuleType:
    """The ray module, or ImportError telling how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(RAY_MISSING) from exc
    return ray


def ensure_ray(address: str | None = None, **init_kwargs: Any) -> tuple[ModuleType, bool]:
    """Connect to Ray: reuse a running session, else ray.init(address) (None: start a local instance, never a
    stale cluster's address). A cluster address is checked first with a bounded probe
    (`pev_mpc.ray_connect.connect_address`: ConnectionError with one line instead of a hang).

    Returns (ray, started) where started tells whether this call initialised Ray.
    """
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    resolved = connect_address(address)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(address=resolved, **{**QUIET_RAY_INIT, **init_kwargs})  # Ray shuts down at exit, and its local
    return ray, True  # instance shares the driver's fate (tests/test_trust_ray.py)


def shard_bounds(n_stations: int, n_shards: int) -> list[tuple[int, int]]:
    """Contiguous, near-equal, non-empty [lo, hi) index ranges covering 0..n_stations-1."""
    if n_shards < 1:
        raise ValueError(f"n_shards = {n_shards!r}: must be an int >= 1")
    edges = np.linspace(0, n_stations, min(n_shards, max(n_stations, 1)) + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]


class StationShard:
    """One shard of station agents (runs inside a Ray actor; plain object otherwise)."""

    def __init__(self) -> None:
        self._pool: StationPool | None = None

    def load(self, problem: ChargingProblem, settings: MPCSettings) -> int:
        """Build this shard's local solver for a new control step; returns its number of stations."""
        self._pool = make_station_pool(problem, settings)
        return problem.n_stations

    def respond(self, prices: np.ndarray, want_sensitivity: bool, barrier: float = 0.0,
                smoothing: np.ndarray | None = None, exact: bool = False) -> StationReplies:
        """The shard's replies to the broadcast prices (barrier > 0: smoothed replies; smoothing: the
        smoothed sensitivity; exact: the exact one too; see StationPool)."""
        if self._pool is None:
            raise RuntimeError("StationShard.respond() needs a prior load()")
        return ask_pool(self._pool, prices, want_sensitivity, barrier, smoothing, exact)


def merge_replies(parts: list[StationReplies | None], bounds: list[tuple[int, int]], n_stations: int,
                  horizon: int, want_sensitivity: bool) -> StationReplies:
    """Assemble shard replies (None: the shard did not answer) into one StationReplies."""
    p, value = np.zeros((n_stations, horizon)), np.zeros(n_stations)
    answered, failed = np.zeros(n_stations, dtype=bool), np.zeros(n_stations, dtype=bool)
    sens = np.zeros((horizon, horizon)) if want_sensitivity else None
    for rep, (lo, hi) in zip(parts, bounds):
        if rep is None:
            continue
        p[lo:hi], value[lo:hi] = rep.p, rep.value
        answered[lo:hi], failed[lo:hi] = rep.answered, rep.failed
        if sens is not None:
            sens += rep.sensitivity
    complete = [rep for rep in parts if rep is not None]
    complete = complete if len(complete) == len(parts) else []  # exact sensitivities and bids: all shards or none
    exact = bids = None
    if want_sensitivity and complete and all(rep.exact_sensitivity is not None for rep in complete):
        exact = sum(rep.exact_sensitivity for rep in complete)
    if complete and all(rep.bids is not None for rep in complete):
        bids = Bids(level=np.concatenate([rep.bids.level for rep in complete]),
                    compliance=np.concatenate([rep.bids.compliance for rep in complete]),
                    multiplier=np.concatenate([rep.bids.multiplier for rep in complete]))
    return StationReplies(p=p, value=value, answered=answered, failed=failed, sensitivity=sens,
                          exact_sensitivity=exact, bids=bids)


class RayStations:
    """A StationPool whose stations live in Ray actors (one shard per actor), for one control step.

    Built by :meth:`StationActors.pool`. A shard whose actor has died, or that does not reply within
    ``timeout_s`` (None: wait), is reported as not answered; the coordinator then keeps those
    stations' last plans. Errors raised inside a shard's solver propagate.
    """

    def __init__(self, actors: list, problem: ChargingProblem, settings: MPCSettings,
                 timeout_s: float | None = None) -> None:
        self._ray = import_ray()
        self.n_stations, self.horizon = problem.n_stations, problem.horizon
        self.timeout_s = timeout_s
        self.capabilities: PoolCapabilities = POOLS[station_solver(problem, settings)].capabilities  # the shards'
        self.bounds = shard_bounds(problem.n_stations, len(actors))
        self.actors = actors[: len(self.bounds)]
        # calls from one caller to an actor run in order, so loading needs no round trip of its own
        for a, (lo, hi) in zip(self.actors, self.bounds):
            a.load.remote(problem.subset(np.arange(lo, hi)), settings)

    def respond(self, prices: np.ndarray, want_sensitivity: bool = False, *, barrier: float = 0.0,
                smoothing: np.ndarray | None = None, exact: bool = False) -> StationReplies:
        """Broadcast prices (one object-store put; per-station prices (N, H): each shard its rows), gather
        every shard's replies (StationPool protocol)."""
        check_request(self, barrier, smoothing, exact)
        ray = self._ray
        prices = np.asarray(prices, dtype=float)
        shared = ray.put(prices) if prices.ndim == 1 else None
        refs = [a.respond.remote(prices[lo:hi] if shared is None else shared, want_sensitivity, barrier, smoothing, exact)
                for a, (lo, hi) in zip(self.actors, self.bounds)]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=self.timeout_s)
        done = set(ready)
        parts: list[StationReplies | None] = []
        for r in refs:
            try:
                parts.append(ray.get(r) if r in done else None)
            except ray.exceptions.RayActorError:
                parts.append(None)
        return merge_replies(parts, self.bounds, self.n_stations, self.horizon, want_sensitivity)


class StationActors:
    """A fixed set of Ray actors hosting station shards, reused across control steps.

    n_actors: number of shards (default: the cluster's CPUs / cpus_per_actor). address: Ray address
    (None: reuse the running session or start a local instance; "auto" or "ray://host:10001": an
    existing cluster). init_kwargs go to ray.init when this object starts Ray; it then shuts Ray
    down again in :meth:`shutdown`.
    """

    def __init__(self, n_actors: int | None = None, address: str | None = None, cpus_per_actor: float = 1.0,
                 **init_kwargs: Any) -> None:
        if n_actors is not None and (not isinstance(n_actors, int) or n_actors < 1):
            raise ValueError(f"StationActors.n_actors = {n_actors!r}: must be None or an int >= 1")
        if not cpus_per_actor >= 0:
            raise ValueError(f"StationActors.cpus_per_actor = {cpus_per_actor!r}: must be >= 0")
        self._ray, self._started = ensure_ray(address, **init_kwargs)
        if n_actors is None:
            cpus = float(self._ray.cluster_resources().get("CPU", 1.0))
            n_actors = max(1, int(cpus // cpus_per_actor)) if cpus_per_actor > 0 else 1
        remote = self._ray.remote(StationShard).options(num_cpus=cpus_per_actor)
        self.actors = [remote.remote() for _ in range(n_actors)]

    @property
    def n_actors(self) -> int:
        return len(self.actors)

    def pool(self, problem: ChargingProblem, settings: MPCSettings, timeout_s: float | None = None) -> RayStations:
        """The StationPool of this control step's problem, sharded over the actors."""
        return RayStations(self.actors, problem, settings, timeout_s)

    def shutdown(self) -> None:
        """Kill the actors (and stop Ray if this object started it)."""
        for a in self.actors:
            self._ray.kill(a)
        self.actors = []
        if self._started:
            self._ray.shutdown()
            self._started = False

    def __enter__(self) -> "StationActors":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
