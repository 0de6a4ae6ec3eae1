"""Backends of the grids: local (in process / process pool) and ray give the same rows; a killed ray run
resumes; a clear error without ray. Runs against a real local Ray instance (one per module)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from experiments.cli.main import main
from experiments.commands.backends import LocalBackend, RayBackend, make_backend, map_in_order
from experiments.errors import Terminated
from experiments.outputs.results import KEY_COLUMNS
from pev_mpc.distributed import RAY_MISSING

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--scenarios", "seed", "--seeds", "0-1", "--controllers", "edf,mpc-decentralised", "-q", "--no-traces",
        "--no-plots"]
TIMING = {"step_time_median_ms", "step_time_p95_ms"}


def rows(path: Path) -> pd.DataFrame:
    """metrics.csv in key order without the timing columns (they differ between any two runs)."""
    frame = pd.read_csv(path)
    return frame.drop(columns=sorted(TIMING & set(frame.columns))).sort_values(list(KEY_COLUMNS)).reset_index(
        drop=True)


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    path = os.environ.get("PYTHONPATH")
    # the workers inherit this environment: tests/example_policies.py is importable there (a user's plug-in
    # must be importable on the workers too: installed, or on their PYTHONPATH)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "tests"), path) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=200 * 2**20)
    yield ray
    ray.shutdown()
    if path is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = path


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pd.DataFrame:
    """The grid run in this process (local, 1 worker)."""
    out = tmp_path_factory.mktemp("local1")
    assert main(["compare", *GRID, "--backend", "local", "--workers", "1", "--out", str(out)]) == 0
    return rows(out / "metrics.csv")


def _square(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    time.sleep(0.05 * (4 - x))  # later items finish first in a pool
    return x * x


# ---- local backend and helpers (no Ray) ---------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2])
def test_local_backend_yields_every_item_once_with_errors(workers):
    done = list(LocalBackend(workers).map(_square, range(5)))
    assert sorted(d.item for d in done) == list(range(5))
    by_item = {d.item: d for d in done}
    assert isinstance(by_item[3].error, ValueError) and by_item[3].result is None
    assert [by_item[i].result for i in (0, 1, 2, 4)] == [0, 1, 4, 16]


def _stopped_in_compiled_code(stop: type[BaseException] | None) -> None:
    """What numba's dispatcher raises when a signal's exception arrives while a kernel runs (None: a
    SystemError of another cause)."""
    try:
        if stop is not None:
            raise stop()
        raise ValueError("not a stop request")
    except BaseException as exc:
        raise SystemError("CPUDispatcher(...) returned a result with an exception set") from exc


@pytest.mark.parametrize("stop", [KeyboardInterrupt, Terminated])
def test_a_stop_request_wrapped_by_compiled_code_stops_an_in_process_run(stop):
    with pytest.raises(stop):
        list(LocalBackend(1).map(_stopped_in_compiled_code, [stop, stop]))


@pytest.mark.parametrize("cause", [None, SystemExit])
def test_a_system_error_of_another_cause_is_a_failed_run(cause):
    done = list(LocalBackend(1).map(_stopped_in_compiled_code, [cause]))
    assert isinstance(done[0].error, SystemError) and done[0].result is None


def test_map_in_order_keeps_item_order_and_reports_progressively():
    seen: list[list[int]] = []
    out = map_in_order(LocalBackend(2), _square, [2, 1, 0], seen.append, "t", progress=False)
    assert out == [4, 1, 0]
    assert [len(s) for s in seen] == [1, 2, 3] and seen[-1] == out
    with pytest.raises(ValueError, match="three"):
        map_in_order(LocalBackend(1), _square, [3], seen.append, "t", progress=False)


def test_bad_backend_and_workers_are_named():
    with pytest.raises(ValueError, match="backend = 'spark'"):
        make_backend("spark")
    with pytest.raises(ValueError, match="workers = -1"):
        LocalBackend(-1)


def test_ray_backend_without_ray_fails_clearly(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the distributed extra were not installed
    with pytest.raises(SystemExit) as info:
        main(["compare", *GRID, "--backend", "ray", "--out", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert RAY_MISSING in err and "pip install -e .[distributed]" in err
    with pytest.raises(ImportError, match=r"pip install -e \.\[distributed\]"):
        RayBackend()


# ---- equivalence and resume --------------------------------------------------------------------
def test_local_pool_gives_the_same_rows(reference, tmp_path):
    assert main(["compare", *GRID, "--backend", "local", "--workers", "2", "--out", str(tmp_path)]) == 0
    pd.testing.assert_frame_equal(rows(tmp_path / "metrics.csv"), reference)


def test_ray_gives_the_same_rows(ray_session, reference, tmp_path):
    assert main(["compare", *GRID, "--backend", "ray", "--out", str(tmp_path)]) == 0
    pd.testing.assert_frame_equal(rows(tmp_path / "metrics.csv"), reference)


def test_plugin_policy_runs_on_ray_workers(ray_session, tmp_path):
    """A user's policy class by import path (tests/example_policies.py, on the driver's sys.path) on Ray."""
    grid = ["--scenarios", "seed", "--seeds", "0-1", "--controllers", "example_policies:HalfPower,edf", "-q",
            "--no-traces", "--no-plots"]
    assert main(["compare", *grid, "--backend", "ray", "--out", str(tmp_path / "ray")]) == 0
    assert main(["compare", *grid, "--workers", "1", "--out", str(tmp_path / "local")]) == 0
    pd.testing.assert_frame_equal(rows(tmp_path / "ray" / "metrics.csv"), rows(tmp_path / "local" / "metrics.csv"))


def test_ray_backend_reports_failed_runs(ray_session):
    done = {d.item: d for d in RayBackend().map(math.sqrt, [4.0, -1.0])}  # workers import math, not tests
    assert done[4.0].result == 2.0 and "math domain error" in str(done[-1.0].error)


def test_killed_ray_run_resumes_to_the_same_rows(ray_session, reference, tmp_path):
    """A CLI process on the running cluster is killed after its first rows; --resume finishes the grid."""
    address = ray_session.get_runtime_context().gcs_address
    metrics = tmp_path / "metrics.csv"
    cmd = [sys.executable, "-m", "experiments", "compare", *GRID, "--backend", "ray", "--ray-address", address,
           "--workers", "1", "--out", str(tmp_path)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (metrics.exists() and len(pd.read_csv(metrics)) >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, "the ray run ended before any row"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = pd.read_csv(metrics)
    assert 1 <= len(partial) < len(reference)  # killed midway, the finished rows are intact
    assert main(["compare", *GRID, "--backend", "ray", "--resume", "--out", str(tmp_path)]) == 0
    pd.testing.assert_frame_equal(rows(metrics), reference)


def test_tune_rows_are_the_same_on_ray(ray_session, tmp_path):
    args = ["tune", "--scenarios", "seed", "--seeds", "0", "--grid", "coordination.method=newton,nesterov",
            "--max-steps", "3", "-q"]
    assert main([*args, "--backend", "local", "--workers", "1", "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--backend", "ray", "--out", str(tmp_path / "b")]) == 0
    drop = ["step_time_median_ms", "step_time_p95_ms"]
    a, b = (pd.read_csv(tmp_path / d / "tune.csv").drop(columns=drop) for d in "ab")
    pd.testing.assert_frame_equal(a, b)
