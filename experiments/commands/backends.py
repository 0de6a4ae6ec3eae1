"""Where the runs of a grid execute: `local` (this process, or a process pool over the cores) or `ray`
(one Ray task per run, on a local Ray instance or an existing cluster).

A backend maps a picklable function over a list of items and yields a `Finished(item, result, error)`
as each run completes. The caller records it in its own process (atomic, resumable result files), so
the files do not depend on the backend, only the completion order does.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import logging
import os
import re
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from tqdm import tqdm

from experiments.errors import Terminated
from experiments.learning.torch_threads import single_thread_torch
from pev_mpc.ray_connect import connect_address

__all__ = ["BACKENDS", "Backend", "Finished", "LocalBackend", "RayBackend", "check_ray_address", "check_ray_reachable",
           "make_backend", "map_in_order", "open_backend"]

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("local", "ray")
_RAY_ADDRESS = re.compile(r"^(ray://)?([A-Za-z0-9._-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})$")
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Finished:
    """One completed run: its item and either its result or the exception it raised."""

    item: Any
    result: Any = None
    error: BaseException | None = None


class Backend(Protocol):
    name: str

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Finished]: ...

    def close(self) -> None: ...


def default_workers() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_ray_address(address: str) -> None:
    """ValueError unless `address` is empty (a local instance), 'auto', HOST:PORT or ray://HOST:PORT."""
    if address and address != "auto" and not _RAY_ADDRESS.match(address):
        raise ValueError(f"ray_address = {address!r}: must be empty (a local Ray instance), auto, HOST:PORT or "
                         "ray://HOST:PORT")


def check_ray_reachable(address: str) -> None:
    """A cluster address (auto, HOST:PORT) answers as a Ray GCS within a bounded time, or ConnectionError with
    one line (`pev_mpc.ray_connect`); ray:// is refused. Empty (a local instance): nothing to check."""
    if address:
        connect_address(address)


def _init_worker(parent: int) -> None:
    """Worker initialiser: die with the driver (Linux: PR_SET_PDEATHSIG), leave Ctrl-C to the driver, and
    use one thread per worker process (the workers already use every core)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != parent:  # the driver died before prctl took effect
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the driver's handler (experiments.cli.main)
    single_thread_torch()


def _bounded(submit: Callable[[Any], Any], items: Iterable[Any], cap: int,
             pending: dict[Any, Any]) -> Callable[[], None]:
    """A refill function keeping at most `cap` submitted, unfinished runs in `pending` (handle -> item)."""
    todo = iter(items)

    def refill() -> None:
        for item in itertools.islice(todo, max(0, cap - len(pending))):
            pending[submit(item)] = item
    return refill


def _stop_request(exc: BaseException) -> BaseException | None:
    """The Ctrl-C or SIGTERM (`Terminated`) behind `exc`, if any: compiled code (the numba kernels of
    `pev_mpc.tree_market`) hands one that arrives while it runs back as a SystemError, which must stop the
    run, not be recorded as a failed one (a plugin's sys.exit stays a failed run)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (KeyboardInterrupt, Terminated)):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class LocalBackend:
    """Runs in this process (workers = 1) or in a pool of `workers` processes (0: one per core)."""

    name = "local"

    def __init__(self, workers: int = 0) -> None:
        if not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers = {workers!r}: must be an int >= 0 (0 = one per core)")
        self.workers = workers or default_workers()

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Finished]:
        items = list(items)
        if min(self.workers, len(items)) <= 1:
            for item in items:
                try:
                    result = fn(item)
                except Exception as exc:  # noqa: BLE001 - one failed run must not stop the others
                    stop = _stop_request(exc)
                    if stop is not None:
                        raise type(stop)(*stop.args) from None
                    yield Finished(item, error=exc)
                else:
                    yield Finished(item, result)
            return
        work, suspects = deque(items), deque()
        while work or suspects:  # a pool; a new one after a worker process died (BrokenProcessPool)
            alone = bool(suspects)  # the runs in flight when a worker died go again one at a time: only the
            queue = suspects if alone else work  # one that kills its worker again fails
            pool = ProcessPoolExecutor(max_workers=1 if alone else min(self.workers, len(work)),
                                       initializer=_init_worker, initargs=(os.getpid(),))
            pending: dict[Future, Any] = {}
            lost: list[Any] = []
            broken = False
            try:
                while (queue or pending) and not broken:
                    while queue and len(pending) < (1 if alone else 2 * self.workers):
                        try:
                            pending[pool.submit(fn, queue[0])] = queue[0]
                        except BrokenProcessPool:  # it broke since the last wait: the item never ran
                            broken = True
                            break
                        queue.popleft()
                    done, _ = wait(pending, return_when=FIRST_COMPLETED) if pending else (set(), set())
                    for future in done:
                        item = pending.pop(future)
                        error = future.exception()
                        if isinstance(error, BrokenProcessPool):
                            lost.append(item)
                            broken = True
                        else:
                            yield Finished(item, error=error) if error is not None else Finished(item, future.result())
            except BaseException:  # an interrupt, or the caller stopped early: stop the runs in flight
                for process in list((pool._processes or {}).values()):
                    process.terminate()
                raise
            finally:  # drop queued runs instead of finishing them
                pool.shutdown(wait=True, cancel_futures=True)
            lost += pending.values()  # in flight when the pool broke: their results are gone too
            if alone:
                yield from (Finished(item, error=RuntimeError("its worker process died (killed, out of memory or "
                                                              "os._exit)")) for item in lost)
            elif lost:
                log.warning("a worker process died; the %d run(s) in flight go again, one at a time", len(lost))
                suspects.extend(lost)

    def close(self) -> None:
        """Nothing to release (each map owns its pool)."""


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


class RayBackend:
    """One Ray task (1 CPU) per run; at most `workers` runs in flight (0: twice the cluster's CPUs).

    address: None or "" starts a local Ray instance (or reuses the session already initialised in this
    process); "auto" joins the cluster this machine belongs to; HOST:PORT the cluster whose GCS is there (checked
    with a bounded probe, `pev_mpc.ray_connect`; ray:// client addresses are refused).
    On a cluster, this checkout's packages (pev_env, pev_mpc, experiments) are shipped to the workers
    (runtime_env py_modules), so the nodes need only the dependencies installed.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int = 0, **init_kwargs: Any) -> None:
        from pev_mpc.distributed import ensure_ray, import_ray

        if not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers = {workers!r}: must be an int >= 0 (0 = twice the cluster's CPUs)")
        import_ray()  # fail early with the install hint
        if address:
            import experiments
            import pev_env
            import pev_mpc

            init_kwargs.setdefault("runtime_env", {"py_modules": [pev_env, pev_mpc, experiments]})
        self._ray, self._started = ensure_ray(address or None, **init_kwargs)
        cpus = int(self._ray.cluster_resources().get("CPU", 1))
        self.workers = workers or max(1, 2 * cpus)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Finished]:
        ray = self._ray
        task = ray.remote(num_cpus=1)(_call)
        fn_ref = ray.put(fn)
        pending: dict[Any, Any] = {}
        refill = _bounded(lambda item: task.remote(fn_ref, item), items, self.workers, pending)
        try:
            refill()
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    item = pending.pop(ref)
                    try:
                        yield Finished(item, ray.get(ref))
                    except ray.exceptions.RayError as exc:  # the run raised, or its worker died
                        yield Finished(item, error=exc)
                refill()
        finally:  # also on an interrupt: stop the runs still in flight
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        """Stop Ray if this backend started it."""
        if self._started:
            self._ray.shutdown()
            self._started = False


def make_backend(name: str, workers: int = 0, ray_address: str | None = None) -> Backend:
    """The backend called `name` ('local' or 'ray'); errors name the value and the allowed ones."""
    if name == "local":
        return LocalBackend(workers)
    if name == "ray":
        return RayBackend(ray_address, workers)
    raise ValueError(f"backend = {name!r}: must be one of {BACKENDS}")


def _indexed(fn: Callable[[Any], Any], job: tuple[int, Any]) -> Any:
    return fn(job[1])


def map_in_order(backend: Backend, fn: Callable[[Any], Any], items: Iterable[Any],
                 on_update: Callable[[list[Any]], None], desc: str, progress: bool = True) -> list[Any]:
    """Results of fn over items, in item order; after every finished run, on_update(results so far, in
    item order) (e.g. rewrite a CSV). The first failed run raises its exception."""
    jobs = list(enumerate(items))
    finished: dict[int, Any] = {}
    with tqdm(total=len(jobs), desc=f"{desc} ({backend.name})", unit="run", disable=not progress) as bar:
        for done in backend.map(partial(_indexed, fn), jobs):
            if done.error is not None:
                raise done.error
            finished[done.item[0]] = done.result
            on_update([finished[i] for i in sorted(finished)])
            bar.update()
    return [finished[i] for i in sorted(finished)]


@contextlib.contextmanager
def open_backend(cfg: Any) -> Iterator[Backend]:
    """The backend of a run configuration (fields backend, workers, ray_address), closed afterwards."""
    backend = make_backend(cfg.backend, cfg.workers, cfg.ray_address)
    try:
        yield backend
    finally:
        backend.close()
