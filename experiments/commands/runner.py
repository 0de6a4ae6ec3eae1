"""The only place that wires the plant (pev_env.ChargingCore) to controllers.

`run_episode` runs one full episode through the array API and returns the metrics row (the plant's
episode metrics plus the controller columns) and per-step traces. `run_grid` runs every
(controller, scenario, seed) key on a backend (`experiments.commands.backends`: this process, a process pool
or Ray tasks) and hands each finished result to a callback in this process; a failing run is logged
and reported, never fatal for the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from experiments.commands.backends import Backend, LocalBackend
from experiments.controllers import registry
from experiments.controllers.registry import Models
from experiments.outputs.provenance import plant_record
from pev_env.metrics import CONTROLLER_COLUMNS
from pev_env.observation import OBS_INDEX

if TYPE_CHECKING:
    from pev_env.config import EnvConfig
    from pev_mpc.settings import MPCSettings

__all__ = ["CONTROLLER_COLUMNS", "FAILURE_COLUMNS", "EpisodeResult", "Failure", "RunKey", "RunTimeout", "grid", "run_episode", "scenario_labels", "run_grid", "time_control_steps"]

log = logging.getLogger(__name__)

P_REF_INDEX = OBS_INDEX["P_ref"]
FAILURE_COLUMNS: tuple[str, ...] = ("station_fallbacks", "nonconverged_steps", "coordination_iterations_max")
"""Solver trouble per episode: station solves replaced by a fallback, steps not converged (a step with
fallbacks counts as not converged), and the most coordination rounds of any step."""


@dataclass(frozen=True)
class RunKey:
    """One cell of the comparison grid."""

    controller: str
    scenario: str
    seed: int
    name: str = ""
    """The scenario's label in results ('': `scenario_label(scenario)`; `scenario_labels` keeps the labels of one
    run distinct)."""

    @property
    def label(self) -> str:
        """Readable scenario name in results (a file spec becomes acn-<site>-<day> / csv-<stem>)."""
        from pev_env.scenarios import scenario_label

        return self.name or scenario_label(self.scenario)

    def stem(self) -> str:
        """File-name stem of this run's traces."""
        return f"{self.label}_seed{self.seed}_{self.controller}"


@dataclass(frozen=True)
class EpisodeResult:
    """Outcome of one episode: the metrics row and per-step traces."""

    row: dict[str, Any]
    """Keys (controller, scenario, seed), the plant's episode metrics, CONTROLLER_COLUMNS and FAILURE_COLUMNS."""
    trace: pd.DataFrame
    """Per step: step, time_min, area_power_kw, P_ref_kw, price, iterations, converged, fallbacks,
    p_<i>_kw per station."""
    soc: pd.DataFrame
    """Per step boundary (n_steps + 1 rows): step, time_min, soc_<j>_kwh per PEV."""
    network: pd.DataFrame
    """Per step: step, time_min, load_<j> per constraint j of the site network (in its unit, A or kW)."""
    constraints: dict[str, Any]
    """The site network (`Network.describe`): its name and, per constraint j, the `column` load_<j> with its
    name, unit, limit, station count and linearity."""
    plant: dict[str, Any]
    """The EnvConfig that ran (after the scenario derived it from the base), as a dict (`plant_record`)."""
    episode: str = ""
    """The episode's own name (`Scenario.name`): for the ACN scenarios its day, e.g. acn-caltech-2019-05-07 (a
    generated scenario's episodes share the scenario's name: the seed tells them apart)."""


def _price(stats: dict[str, Any]) -> float:
    prices = stats.get("prices")
    if prices is not None and np.size(prices):
        return float(np.ravel(prices)[0])
    return float(stats.get("price", np.nan))


def _drive(core: Any, policy: Any, obs: np.ndarray, steps: int,
           record: Callable[[np.ndarray, float], None] | None = None) -> np.ndarray:
    """Apply `policy` for `steps` steps (or until the episode ends); return the next observations.

    `record(obs, act_seconds)` is called after every act, before the plant steps.
    """
    for _ in range(steps):
        if core.done:
            break
        start = time.perf_counter()
        action = policy.act_array(obs)
        elapsed = time.perf_counter() - start
        if record is not None:
            record(obs, elapsed)
        obs = core.step(action).observations
    return obs


_STEP_HOOK: Callable[[int, int], None] | None = None
"""Called with (steps done, steps of the episode) after every control step of an episode run in this process
(`run_grid` moves its progress bar with it)."""


@contextlib.contextmanager
def step_progress(bar: Any) -> Iterator[None]:
    """Within the block, episodes run in this process move `bar` (whose unit is one episode) step by step."""
    global _STEP_HOOK
    moved = 0.0

    def hook(done: int, total: int) -> None:
        nonlocal moved
        if done < total:  # the last step: run_grid counts the whole episode
            bar.update(1.0 / total)
            moved += 1.0 / total

    def finished() -> None:
        nonlocal moved
        bar.n -= moved  # the fractions of the finished episode make way for its whole count
        moved = 0.0

    _STEP_HOOK, bar.episode_finished = hook, finished
    try:
        yield
    finally:
        _STEP_HOOK = None


def run_episode(policy: Any, config: Any, scenario: Any, seed: int, key: RunKey | None = None) -> EpisodeResult:
    """Run `policy` for one full episode of `scenario` and time every act."""
    from pev_env.core import ChargingCore

    core = ChargingCore(config, scenario)
    policy.reset(config, scenario, seed)
    times: list[float] = []
    iterations: list[float] = []
    fallbacks: list[int] = []
    converged: list[bool] = []
    prices: list[float] = []
    p_ref: list[float] = []

    def record(obs: np.ndarray, seconds: float) -> None:
        stats = getattr(policy, "last_stats", None) or {}
        p_ref.append(float(obs[0, P_REF_INDEX]) if obs.shape[0] else float(config.P_ref))
        times.append(seconds)
        iterations.append(float(stats.get("iterations", np.nan)))
        fallbacks.append(int(stats.get("fallbacks", 0)))
        converged.append(bool(stats.get("converged", True)) and fallbacks[-1] == 0)
        prices.append(_price(stats))
        if _STEP_HOOK is not None:
            _STEP_HOOK(len(times), config.n_steps)

    _drive(core, policy, core.reset(), config.n_steps, record)
    history = core.history
    applied, area, soc = (np.asarray(history[name]) for name in ("applied_kw", "area_power_kw", "soc"))
    steps = np.arange(len(area))
    dt = float(config.sampling_time)
    trace = pd.DataFrame({"step": steps, "time_min": steps * dt, "area_power_kw": area, "P_ref_kw": p_ref,
                          "price": prices, "iterations": iterations, "converged": converged,
                          "fallbacks": fallbacks})
    trace = pd.concat([trace, pd.DataFrame(applied, columns=[f"p_{i}_kw" for i in range(applied.shape[1])])], axis=1)
    network = core.network
    loads = pd.concat([trace[["step", "time_min"]], pd.DataFrame(
        np.asarray(history["network_load"]), columns=[f"load_{j}" for j in range(network.n_constraints)])], axis=1)
    constraints = network.describe()
    for j, item in enumerate(constraints["constraints"]):
        item["column"] = f"load_{j}"
    soc_steps = np.arange(soc.shape[0])
    soc_frame = pd.concat([pd.DataFrame({"step": soc_steps, "time_min": soc_steps * dt}),
                           pd.DataFrame(soc, columns=[f"soc_{j}_kwh" for j in range(soc.shape[1])])], axis=1)
    ms = np.asarray(times) * 1e3
    finite_iter = np.asarray(iterations)[np.isfinite(iterations)]
    row: dict[str, Any] = {}
    if key is not None:
        row.update(controller=key.controller, scenario=key.label, seed=key.seed)
    row.update(core.episode_metrics())
    row.update(
        step_time_median_ms=float(np.median(ms)) if ms.size else float("nan"),
        step_time_p95_ms=float(np.percentile(ms, 95)) if ms.size else float("nan"),
        coordination_iterations_mean=float(finite_iter.mean()) if finite_iter.size else float("nan"),
        station_fallbacks=int(sum(fallbacks)),
        nonconverged_steps=int(len(converged) - sum(converged)),
        coordination_iterations_max=int(finite_iter.max()) if finite_iter.size else 0,
    )
    return EpisodeResult(row=row, trace=trace, soc=soc_frame, network=loads, constraints=constraints,
                         plant=plant_record(config), episode=scenario.name)


def warm_up_step(start_step: int, n_steps: int, steps: int) -> int:
    """The step of the untimed warm-up act of `time_control_steps`: `start_step`, earlier when `steps` timed steps
    and the warm-up would not fit after it (timing starts one step later)."""
    return max(min(start_step, n_steps - steps - 1), 0)


def time_control_steps(policy: Any, config: Any, scenario: Any, seed: int, start_step: int,
                       steps: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Seconds per act and `last_stats` for `steps` steps from `start_step` (earlier steps request 0 kW).

    The first act is a warm-up and is not returned (so `steps + 1` acts run).
    """
    from pev_env.core import ChargingCore

    core = ChargingCore(config, scenario)
    policy.reset(config, scenario, seed)
    obs = core.reset()
    zeros = np.zeros(config.n_stations)
    for _ in range(warm_up_step(start_step, config.n_steps, steps)):
        obs = core.step(zeros).observations
    times: list[float] = []
    stats: list[dict[str, Any]] = []

    def record(_obs: np.ndarray, seconds: float) -> None:
        times.append(seconds)
        stats.append(dict(getattr(policy, "last_stats", None) or {}))

    _drive(core, policy, obs, steps + 1, record)
    return np.asarray(times[1:]), stats[1:]


class ControllerCache:
    """One controller instance per name in a process (learned models are loaded once); reset per episode.

    models: (learned controller, model folder) pairs (a controller not listed runs its shipped reference
    model); mpc: the `MPCSettings` of the MPC controllers (None: their defaults); the others ignore it.
    """

    def __init__(self, models: Models = (), mpc: MPCSettings | None = None) -> None:
        self.models = dict(models)
        self.mpc = mpc
        self._made: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self._made:
            self._made[name] = registry.make_controller(name, models=self.models, mpc=self.mpc)
        return self._made[name]


def run_key(key: RunKey, cache: ControllerCache, env: EnvConfig | None = None) -> EpisodeResult:
    """Build the scenario of `key` on the base plant `env` (None: the EnvConfig defaults) and run its
    controller for one episode."""
    from pev_env.scenarios import make_scenario

    config, scenario = make_scenario(key.scenario, key.seed, base=env)
    return run_episode(cache.get(key.controller), config, scenario, key.seed, key)


_CACHES: dict[tuple[Models, MPCSettings | None], ControllerCache] = {}


class RunTimeout(RuntimeError):
    """A run went over its time limit (its message holds MARK)."""

    MARK = "over the run timeout of"


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Raise RunTimeout in the block after `seconds` (0: no limit). SIGALRM: only in a process's main thread
    (elsewhere the block runs without a limit), and a call into C (a solver) is interrupted when it returns."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        raise RunTimeout(f"{what}: {RunTimeout.MARK} {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_cached(key: RunKey, models: Models = (), mpc: MPCSettings | None = None,
               env: EnvConfig | None = None, timeout: float = 0.0) -> EpisodeResult:
    """`run_key` with this process's controller cache (one per set of learned models and MPCSettings): what
    the backends run (picklable: `models` is a tuple of string pairs, `mpc` and `env` frozen dataclasses or
    None). A run over `timeout` seconds (0: none) raises RunTimeout; a controller that calls sys.exit raises
    RuntimeError: both are failed runs, never the end of the grid."""
    cache_key = (models, mpc)
    if cache_key not in _CACHES:
        _CACHES[cache_key] = ControllerCache(models, mpc)
    try:
        with time_limit(timeout, key.stem()):
            return run_key(key, _CACHES[cache_key], env)
    except SystemExit as exc:
        raise RuntimeError(f"{key.stem()}: the controller called sys.exit({exc.code!r})") from None


@dataclass(frozen=True)
class Failure:
    """A run that raised: its key and the formatted traceback."""

    key: RunKey
    error: str


def scenario_labels(specs: Iterable[str]) -> dict[str, str]:
    """spec -> its label in results, distinct within `specs`: specs sharing a label (csv:d1/s.csv, csv:d2/s.csv)
    get '-' and 8 hex digits of the sha256 of their resolved files (or of the spec) appended."""
    from pev_env.scenarios import resolve, scenario_label

    labels = {spec: scenario_label(spec) for spec in specs}
    shared = {label for label, count in Counter(labels.values()).items() if count > 1}
    for spec in [s for s, label in labels.items() if label in shared]:
        family, args = resolve(spec)
        where = "\0".join(str(p) for p in family.files(args)) or spec
        labels[spec] = f"{labels[spec]}-{hashlib.sha256(where.encode()).hexdigest()[:8]}"
    return labels


def distinct_seeds(spec: str, label: str, seeds: Sequence[int], before: Sequence[int] = ()) -> tuple[list[int], str]:
    """The first seed of each distinct episode of `spec` that `before` (seeds of rows already there) and then
    `seeds` draw (`pev_env.scenarios.scenario_episodes`), in that order, and a note naming `label` when some
    repeat ('' when none does)."""
    from pev_env.scenarios import scenario_episodes

    asked = [*before, *(s for s in seeds if s not in before)]
    first: dict[int, int] = {}
    for seed, episode in zip(asked, scenario_episodes(spec, asked)):
        first.setdefault(episode, int(seed))
    kept = list(first.values())
    if len(kept) == len(asked):
        return kept, ""
    earlier = f" with the {len(before)} of the results already there" if before else ""
    return kept, (f"{label}: the {len(asked)} seeds{earlier} draw {len(kept)} distinct episode(s), each run once "
                  f"(seeds {_ranges(kept)})")


def grid(controllers: Iterable[str], scenarios: Iterable[str], seeds: Iterable[int],
         done: Mapping[str, Iterable[int]] | None = None) -> tuple[list[RunKey], list[str]]:
    """All keys, ordered scenario -> seed -> controller (so every seed finishes for all controllers together), and
    one note per scenario whose seeds draw repeated episodes: each distinct episode runs once, under its first
    seed (`pev_env.scenarios.scenario_episodes`), so repeats never pass for independent samples. `done`: label ->
    the seeds of rows already in the results (`--resume`); they come first, so a new seed that draws one of their
    episodes is not run again."""
    seeds, controllers = [int(s) for s in seeds], list(controllers)
    labels = scenario_labels(scenarios)
    keys: list[RunKey] = []
    notes: list[str] = []
    for spec, label in labels.items():
        kept, note = distinct_seeds(spec, label, seeds, sorted({int(s) for s in (done or {}).get(label, ())}))
        notes += [note] if note else []
        keys += [RunKey(c, spec, seed, label) for seed in kept if seed in seeds for c in controllers]
    return keys, notes


def _ranges(values: list[int]) -> str:
    """'0-4, 7' for [0, 1, 2, 3, 4, 7] (sorted)."""
    parts: list[str] = []
    for value in sorted(values):
        if parts and value == int(parts[-1].rpartition("-")[2]) + 1:
            parts[-1] = f"{parts[-1].partition('-')[0]}-{value}"
        else:
            parts.append(str(value))
    return ", ".join(parts)


def run_grid(
    keys: list[RunKey],
    on_result: Callable[[RunKey, EpisodeResult], None],
    models: Models = (),
    backend: Backend | None = None,
    progress: bool = True,
    mpc: MPCSettings | None = None,
    env: EnvConfig | None = None,
    timeout: float = 0.0,
) -> list[Failure]:
    """Run every key on `backend` (default: this process), calling `on_result` in this process as each
    finishes; return the failures. `mpc`: MPCSettings of the MPC controllers (None: their defaults);
    `env`: the base plant of every scenario (None: the EnvConfig defaults); `timeout`: seconds per run (0: no
    limit)."""
    failures: list[Failure] = []
    backend = LocalBackend(1) if backend is None else backend
    fn = partial(run_cached, models=models, mpc=mpc, env=env, timeout=timeout)
    in_process = isinstance(backend, LocalBackend) and min(backend.workers, len(keys)) <= 1
    with tqdm(total=len(keys), desc=f"episodes ({backend.name})", unit="ep", disable=not progress or not keys,
              bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} [{elapsed}<{remaining}{postfix}]") as bar, \
            (step_progress(bar) if in_process and progress else contextlib.nullcontext()):
        for done in backend.map(fn, keys):
            getattr(bar, "episode_finished", lambda: None)()
            if done.error is not None:
                text = "".join(traceback.format_exception(done.error))
                log.error("run %s failed:\n%s", done.item, text)
                failures.append(Failure(done.item, text))
            else:
                on_result(done.item, done.result)
            bar.set_postfix_str(done.item.stem())
            bar.update()
    return failures
