"""-q is quiet: no solver banner or per-solve line reaches stdout or stderr (OSQP 1.x prints "Polishing not
needed" from C even with verbose=False)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pev_mpc.quiet import c_stdout_silenced

ROOT = Path(__file__).resolve().parents[1]


def test_silenced_block_drops_descriptor_writes_and_restores(capfd) -> None:
    os.write(1, b"before\n")
    with c_stdout_silenced():
        os.write(1, b"solver noise\n")
        with c_stdout_silenced():  # nested: free
            os.write(1, b"more noise\n")
    os.write(1, b"after\n")
    assert capfd.readouterr().out == "before\nafter\n"


def test_quiet_compare_with_osqp_solvers_prints_only_the_summary(tmp_path) -> None:
    cmd = [sys.executable, "-m", "experiments", "compare", "-q", "--scenarios", "seed", "--seeds", "0",
           "--controllers", "mpc-decentralised,mpc-centralised", "--set", "mpc.stations.station_solver=osqp",
           "--set", "mpc.centralised.centralised_solver=OSQP", "--set", "env.total_time=60", "--workers", "1", "--no-plots",
           "--no-traces", "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode in (0, 1), done.stderr
    text = done.stdout + done.stderr
    for banner in ("Polishing", "OSQP v", "CLARABEL", "problem:", "iter "):
        assert banner not in text, text[:2000]
    assert "# Controller comparison" in done.stdout
