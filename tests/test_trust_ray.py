"""Ray connections are bounded: a port that answers but is not Ray, a stale `ray_current_cluster` file, `auto`
without a cluster, a GCS that refuses us and ray:// end in exit 2 with one line, never in a hang or a traceback;
a Ray instance the process started is shut down when it exits."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from pev_mpc import ray_connect
from test_trust_edges import stops  # exit 2 with one line

pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[1]
FAST = ["--scenarios", "seed", "--seeds", "0", "--controllers", "edf", "-q", "--no-plots", "--backend", "ray"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def web_server():
    """`python -m http.server` in a thread: a port that answers, but not as Ray."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_web_server_is_not_taken_for_ray(web_server, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(ray_connect, "RAY_PROBE_TIMEOUT_S", 8.0)
    start = time.monotonic()
    text = stops(capsys, "compare", *FAST, "--ray-address", web_server, "--out", str(tmp_path / "out"))
    assert f"ray_address = '{web_server}': the port answers but no Ray GCS replied within 8 s" in text
    assert time.monotonic() - start < 25 and not (tmp_path / "out").exists()


def test_stale_cluster_file_and_auto_without_cluster(tmp_path, capsys, monkeypatch) -> None:
    import ray._private.services as services

    monkeypatch.setattr(services, "find_gcs_addresses", lambda: [])  # as on a machine without Ray processes
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    stale = f"127.0.0.1:{closed_port()}"
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(stale)
    assert ray_connect.resolve_address("") == "local"  # a local instance never reads the stale file
    text = stops(capsys, "compare", *FAST, "--ray-address", "auto", "--out", str(tmp_path / "out"))
    assert f"ray_address (auto found) = '{stale}': no Ray cluster answers there" in text

    def nothing(*args):
        raise ConnectionError("Could not find any running Ray instance.")

    monkeypatch.setattr(services, "get_ray_address_from_environment", nothing)
    text = stops(capsys, "compare", *FAST, "--ray-address", "auto", "--out", str(tmp_path / "out"))
    assert "ray_address = 'auto': no Ray cluster runs on this machine" in text


def test_refusing_gcs_and_ray_client_are_one_line(tmp_path, capsys, monkeypatch) -> None:
    with socket.socket() as listener:  # a port that accepts; the probe stands in for a GCS wanting a token
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        monkeypatch.setattr(ray_connect, "_PROBE", "raise RuntimeError('UNAUTHENTICATED: missing token')")
        text = stops(capsys, "compare", *FAST, "--ray-address", address, "--out", str(tmp_path / "out"))
    assert f"ray_address = '{address}': the Ray GCS there refused the connection: RuntimeError: UNAUTHENTICATED" in text
    text = stops(capsys, "compare", *FAST, "--ray-address", "ray://127.0.0.1:10001", "--out", str(tmp_path / "o"))
    assert "ray:// (Ray client) addresses are not supported" in text


@pytest.mark.parametrize("ending", ["SIGKILL"])
def test_ray_started_by_a_process_ends_with_it(ending) -> None:
    """The driver exits without ray.shutdown(), or is killed with SIGKILL: no process of its Ray session (GCS,
    raylet, agents, workers) is left."""
    tmp_path = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    script = ("import sys, time\n"
              "from pev_mpc.distributed import ensure_ray\n"
              "ray, started = ensure_ray(None, num_cpus=1)\n"
              "print(ray._private.worker.global_worker.node.get_session_dir_path(), flush=True)\n"
              "time.sleep(120 if sys.argv[1] == 'SIGKILL' else 0)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(tmp_path)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-c", script, ending], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env)
    try:
        session = proc.stdout.readline().strip()
        assert session, "the driver did not start Ray"
        if ending == "SIGKILL":
            proc.kill()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    deadline = time.monotonic() + 20
    while (left := _processes_with(session)) and time.monotonic() < deadline:
        time.sleep(0.5)
    shutil.rmtree(tmp_path, ignore_errors=True)
    assert not left, left


def _processes_with(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline[:120]}")
    return found
