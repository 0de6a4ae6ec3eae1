"""The base install (no extras): compare runs the learned controllers without torch; without their modules they
are skipped from the default list with one line, and asked for explicitly they stop with exit 2 and the hint.
Each case runs in a fresh interpreter in which the extras' modules cannot be imported."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--scenarios", "seed", "--seeds", "0", "-q", "--no-traces", "--no-plots"]


def _python(tmp_path: Path, hidden: tuple[str, ...], body: str) -> subprocess.CompletedProcess:
    """Run `body` in a fresh interpreter (this checkout) in which importing a `hidden` module (or a submodule)
    fails as if it were not installed."""
    code = ("import sys\n"
            f"HIDDEN = {hidden!r}\n"
            "class Blocker:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in HIDDEN:\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, Blocker())\n"
            + body)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


def _run(tmp_path: Path, hidden: tuple[str, ...], *argv: str) -> subprocess.CompletedProcess:
    """`pev-experiments argv` with the `hidden` modules not installed."""
    return _python(tmp_path, hidden, f"from experiments.cli.main import main\nsys.exit(main({list(argv)!r}))\n")


def test_learned_controller_runs_without_torch(tmp_path) -> None:
    done = _run(tmp_path, ("torch", "stable_baselines3"), "compare", *FAST, "--controllers", "ppo,edf", "--out",
                str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "ppo" in (tmp_path / "out" / "metrics.csv").read_text()


def test_training_without_torch_is_exit_2_with_the_hint(tmp_path) -> None:
    done = _run(tmp_path, ("torch", "stable_baselines3"), "train", "--out", str(tmp_path / "t"))
    assert done.returncode == 2 and "pip install 'pev-mpc[rl]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "t").exists()


def test_default_list_skips_a_learned_controller_that_cannot_run(tmp_path) -> None:
    hidden = ("torch", "stable_baselines3", "safetensors")
    done = _python(tmp_path, hidden, "from experiments.commands.config import CompareConfig\n"
                                     "print(','.join(CompareConfig().controllers))\n")
    assert done.returncode == 0, done.stderr
    assert "ppo" not in done.stdout.split(",") and "edf" in done.stdout
    notes = [line for line in done.stderr.splitlines() if "skipped" in line]
    assert "mappo" not in done.stdout.split(",") and "ppo, mappo" in notes[0]
    assert len(notes) == 1 and "pip install 'pev-mpc[rl]'" in notes[0]
    asked = _run(tmp_path, hidden, "compare", *FAST, "--controllers", "ppo", "--out", str(tmp_path / "out"))
    assert asked.returncode == 2 and "pip install 'pev-mpc[rl]'" in asked.stderr
