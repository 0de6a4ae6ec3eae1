"""A plug-in `module:Class` in the working directory loads without PYTHONPATH, and folders of the user's named
like this package's modules (`pev_env/`, `pev_mpc/`, `experiments/`) never shadow them: with the console
script and with `python -m experiments` (except `experiments/` there, which Python itself runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
POLICY = '''
from pev_mpc.policies import EDF


class Mine(EDF):
    """EDF under another name: a user's plug-in beside them."""
'''
SHADOW = 'raise ImportError("the user\'s folder shadowed the package")\n'


@pytest.mark.parametrize("launcher", ["console-script", "python -m"])
def test_cwd_plugin_loads_and_user_folders_do_not_shadow(tmp_path, launcher) -> None:
    user = tmp_path / "work"
    user.mkdir()
    (user / "mine.py").write_text(POLICY)
    for name in ("pev_env", "pev_mpc") + (("experiments",) if launcher == "console-script" else ()):
        (user / name).mkdir()
        (user / name / "__init__.py").write_text(SHADOW)
    script = tmp_path / "bin" / "pev-experiments"  # as the installed console script: its folder is sys.path[0]
    script.parent.mkdir()
    script.write_text("import sys\nfrom experiments.cli.main import main\nsys.exit(main())\n")
    start = [sys.executable, str(script)] if launcher == "console-script" else [sys.executable, "-m", "experiments"]
    done = subprocess.run([*start, "compare", "-q", "--no-plots", "--no-traces", "--scenarios", "seed", "--seeds",
                           "0", "--workers", "1", "--controllers", "mine:Mine,edf", "--out", "out"],
                          cwd=user, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = pd.read_csv(user / "out" / "metrics.csv").set_index("controller")
    assert rows.loc["mine:Mine", "unmet_energy_kwh"] == rows.loc["edf", "unmet_energy_kwh"]
