"""Attacker pass: bad inputs and abuse cases against the CLI and the Python API, each run from a scratch folder
outside the checkout, classified as `exit 2 one line`, `ok`, `exit 1 (recorded failure)`, `traceback`,
`hang` or `other`. Writes a Markdown table to stdout.

    python benchmarks/attack.py > benchmarks/attack_log.md      (a few minutes; PYTHONPATH = the checkout)
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CLI = [PY, "-m", "experiments"]
FAST = "--scenarios seed --seeds 0 --controllers edf -q --no-plots --workers 1"
HEADER = "arrival_step,departure_step,soc_init_kwh,soc_target_kwh,capacity_kwh,station\n"


def files(work: Path) -> None:
    """The malformed inputs the cases read."""
    (work / "ok.csv").write_text(HEADER + "0,10,1,20,24,0\n2,12,3,20,24,1\n")
    (work / "empty.csv").write_text("")
    (work / "header_only.csv").write_text(HEADER)
    (work / "missing_col.csv").write_text("arrival_step,departure_step\n0,10\n")
    (work / "neg.csv").write_text(HEADER + "5,3,1,20,24,0\n")
    (work / "nan.csv").write_text(HEADER + "0,10,nan,20,24,0\n")
    (work / "text.csv").write_text(HEADER + "zero,10,1,20,24,0\n")
    (work / "over_cap.csv").write_text(HEADER + "0,10,30,20,24,0\n")
    (work / "huge_station.csv").write_text(HEADER + "0,10,1,20,24,99999999999\n")
    (work / "huge_step.csv").write_text(HEADER + "0,99999999999999,1,20,24,0\n")
    (work / "binary.csv").write_bytes(os.urandom(2000))
    (work / "dup_header.csv").write_text("arrival_step,arrival_step,soc_init_kwh,soc_target_kwh,capacity_kwh,station\n"
                                         "0,10,1,20,24,0\n")
    (work / "first_free.csv").write_text(HEADER + "0,10,1,20,24,-1\n")
    (work / "acn_bad.json").write_text('{"_items": [{"connectionTime": "garbage"}]}')
    (work / "acn_empty.json").write_text("")
    (work / "net_bad.yaml").write_text("limits: [1, 2\n")
    (work / "net_neg.yaml").write_text("name: x\nlimits:\n  - {name: a, kw: -5, stations: all}\n")
    (work / "cfg_bad.yaml").write_text("seeds: [0, 1\n")
    (work / "cfg_list.yaml").write_text("- 1\n- 2\n")
    (work / "cfg_unknown.toml").write_text("[compare]\nbogus = 1\n")
    (work / "cfg_types.toml").write_text('[compare]\nseeds = "a-b"\n')
    (work / "cfg_env.yaml").write_text("env: {P_ref: -1}\n")
    (work / "cfg_bin.yaml").write_bytes(b"\x00\xff\xfe" * 100)
    (work / "plant_bad.yaml").write_text("P_ref: banana\n")
    (work / "plant_unknown.yaml").write_text("wattage: 3\n")
    model = work / "model_bad"
    model.mkdir(exist_ok=True)
    (model / "model.json").write_text("{not json")
    (model / "model.safetensors").write_bytes(b"\x00" * 10)
    model2 = work / "model_empty"
    model2.mkdir(exist_ok=True)
    (work / "model.zip").write_bytes(b"PK\x03\x04garbage")
    (work / "file_out").write_text("I am a file")
    ro = work / "readonly"
    ro.mkdir(exist_ok=True)
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    (work / "pol_sysexit.py").write_text("import sys\nsys.exit(3)\n")
    (work / "pol_bad.py").write_text(
        "import numpy as np\nclass Nan:\n    last_stats = {}\n    def reset(self, *a): pass\n"
        "    def act(self, obs): return {}\n    def act_array(self, obs): return np.full(obs.shape[0], np.nan)\n"
        "class Huge(Nan):\n    def act_array(self, obs): return np.full(obs.shape[0], 1e300)\n"
        "class Shape(Nan):\n    def act_array(self, obs): return np.zeros(3)\n"
        "class Complex(Nan):\n    def act_array(self, obs): return np.zeros(obs.shape[0]) + 1j\n"
        "class Exit(Nan):\n    def act_array(self, obs):\n        import sys; sys.exit(0)\n"
        "class Args:\n    def __init__(self, x): pass\n")


CLI_CASES: list[tuple[str, str]] = [
    ("--set values", "compare {F} --set mpc.policy.horizon=1e9"),
    ("--set values", "compare {F} --set mpc.policy.horizon=true"),
    ("--set values", "compare {F} --set mpc.policy.horizon=-3"),
    ("--set values", "compare {F} --set mpc.objective.unmet_weight=nan"),
    ("--set values", "compare {F} --set mpc.objective.unmet_weight=1e400"),
    ("--set values", "compare {F} --set mpc.coordination.method=magic"),
    ("--set values", "compare {F} --set mpc.policy.max_horizon=100000"),
    ("--set values", "compare {F} --set env.sampling_time=9"),
    ("--set values", "compare {F} --set env.sampling_time=0"),
    ("--set values", "compare {F} --set env.total_time=1e12"),
    ("--set values", "compare {F} --set env.P_ref=-1"),
    ("--set values", "compare {F} --set env.n_stations=1e9"),
    ("--set values", "compare {F} --set env.p_max=1,2,3"),
    ("--set values", "compare {F} --set env.xi=1"),
    ("--set values", "compare {F} --set env.network=tree:abc"),
    ("--set values", "compare {F} --set env.network=network:missing.yaml"),
    ("--set values", "compare {F} --set env.bogus=1"),
    ("--set values", "compare {F} --set nokey"),
    ("--set values", "compare {F} --set =3"),
    ("--set values", "compare {F} --set mpc=3"),
    ("options", "compare {F} --workers 1e9"),
    ("options", "compare {F} --workers -1"),
    ("options", "compare {F} --seeds 0-99999999999"),
    ("options", "compare {F} --seeds 5-1"),
    ("options", "compare {F} --seeds -1"),
    ("options", "compare {F} --run-timeout -5"),
    ("options", "compare {F} --run-timeout inf"),
    ("options", "compare {F} --resume --overwrite"),
    ("options", "compare {F} --controllers ''"),
    ("options", "compare {F} --controllers nosuch"),
    ("options", "compare {F} --reference nosuch"),
    ("options", "tune -q --grid horizon= --out t1"),
    ("options", "tune -q --grid nosuch=1,2 --out t2"),
    ("options", "tune -q --grid max_iterations=0 --out t3"),
    ("options", "scale -q --sizes 0 --out s1"),
    ("options", "scale -q --sizes 100000000 --out s2"),
    ("options", "scale -q --steps 100000 --out s3"),
    ("options", "train --timesteps -1 --out tr1"),
    ("scenarios", "compare {F} --scenarios synthetic-100000000"),
    ("scenarios", "compare {F} --scenarios synthetic-0"),
    ("scenarios", "compare {F} --scenarios synthetic-abc"),
    ("scenarios", "compare {F} --scenarios acn:nosuch.csv:2019-05-01"),
    ("scenarios", "compare {F} --scenarios acn:caltech_2019-05-01_2019-08-31.csv.gz:1999-01-01"),
    ("scenarios", "compare {F} --scenarios acn:acn_bad.json:2019-05-01"),
    ("scenarios", "compare {F} --scenarios acn:acn_empty.json:2019-05-01"),
    ("scenario CSV", "compare {F} --scenarios csv:ok.csv"),
    ("scenario CSV", "compare {F} --scenarios csv:empty.csv"),
    ("scenario CSV", "compare {F} --scenarios csv:header_only.csv"),
    ("scenario CSV", "compare {F} --scenarios csv:missing_col.csv"),
    ("scenario CSV", "compare {F} --scenarios csv:neg.csv"),
    ("scenario CSV", "compare {F} --scenarios csv:nan.csv"),
    ("scenario CSV", "compare {F} --scenarios csv:text.csv"),
    ("scenario CSV", "compare {F} --scenarios csv:over_cap.csv"),
    ("scenario CSV", "compare {F} --scenarios csv:huge_station.csv"),
    ("scenario CSV", "compare {F} --scenarios csv:huge_step.csv"),
    ("scenario CSV", "compare {F} --scenarios csv:binary.csv"),
    ("scenario CSV", "compare {F} --scenarios csv:dup_header.csv"),
    ("scenario CSV", "compare {F} --scenarios csv:first_free.csv"),
    ("scenario CSV", "compare {F} --scenarios csv:nosuch.csv"),
    ("network files", "compare {F} --set env.network=network:net_bad.yaml"),
    ("network files", "compare {F} --set env.network=network:net_neg.yaml"),
    ("config files", "compare {F} --config cfg_bad.yaml"),
    ("config files", "compare {F} --config cfg_list.yaml"),
    ("config files", "compare {F} --config cfg_unknown.toml"),
    ("config files", "compare {F} --config cfg_types.toml"),
    ("config files", "compare {F} --config cfg_env.yaml"),
    ("config files", "compare {F} --config cfg_bin.yaml"),
    ("config files", "compare {F} --config nosuch.yaml"),
    ("config files", "compare {F} --env-file plant_bad.yaml"),
    ("config files", "compare {F} --env-file plant_unknown.yaml"),
    ("config files", "compare {F} --env-file ."),
    ("model folders", "compare {F} --controllers ppo --ppo-model model_bad"),
    ("model folders", "compare {F} --controllers ppo --ppo-model model_empty"),
    ("model folders", "compare {F} --controllers ppo --ppo-model model.zip"),
    ("model folders", "compare {F} --controllers ppo --ppo-model nosuch"),
    ("model folders", "compare {F} --controllers mappo --mappo-model ok.csv"),
    ("plug-ins", "compare {F} --controllers pol_sysexit:X"),
    ("plug-ins", "compare {F} --controllers pol_bad:Nan"),
    ("plug-ins", "compare {F} --controllers pol_bad:Huge"),
    ("plug-ins", "compare {F} --controllers pol_bad:Shape"),
    ("plug-ins", "compare {F} --controllers pol_bad:Complex"),
    ("plug-ins", "compare {F} --controllers pol_bad:Exit"),
    ("plug-ins", "compare {F} --controllers pol_bad:Args"),
    ("plug-ins", "compare {F} --controllers pol_bad:"),
    ("output folders", "compare {F} --out file_out"),
    ("output folders", "compare {F} --out readonly/out"),
    ("output folders", "compare {F} --out readonly"),
    ("output folders", "compare {F} --out /proc/out"),
    ("output folders", "compare {F} --out ''"),
    ("ray", "compare {F} --backend ray --ray-address 127.0.0.1:1"),
    ("ray", "compare {F} --backend ray --ray-address ray://127.0.0.1:10001"),
    ("ray", "compare {F} --backend ray --ray-address bogus"),
    ("ray", "compare {F} --backend spark"),
]


def classify(done: subprocess.CompletedProcess | None) -> str:
    if done is None:
        return "hang (killed after 120 s)"
    text = done.stdout + done.stderr
    if done.returncode == 1 and "FAILED" in text:
        return "exit 1 (failed run recorded, its traceback in the log)"
    if "Traceback" in text:
        return "traceback"
    if done.returncode == 2:
        lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith(("WARNING", "INFO"))]
        return "exit 2 one line" if len(lines) == 1 else f"exit 2, {len(lines)} lines"
    if done.returncode == 0:
        return "ok"
    if done.returncode == 1:
        return "exit 1 (failed runs recorded)"
    return f"exit {done.returncode}"


def run(cmd: list[str], work: Path) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        return None


def message(done: subprocess.CompletedProcess | None) -> str:
    if done is None:
        return ""
    lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    return (lines[-1] if lines else "")[:160].replace("|", "\\|")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="attack-"))
    files(work)
    print("| # | category | command | outcome | last line |\n|---|---|---|---|---|")
    n = 0
    for category, args in CLI_CASES:
        n += 1
        out = f"--out o{n}" if "--out" not in args else ""
        argv = shlex.split(args.replace("{F}", FAST)) + shlex.split(out)
        done = run([*CLI, *argv], work)
        print(f"| {n} | {category} | `pev-experiments {' '.join(argv)}` | {classify(done)} | {message(done)} |",
              flush=True)
    for category, code in API_CASES:
        n += 1
        done = run([PY, "-c", API_PRELUDE + code], work)
        print(f"| {n} | {category} | `{code}` | {api_outcome(done)} | {message(done)} |", flush=True)
    (work / "readonly").chmod(stat.S_IRWXU)


API_PRELUDE = ("import numpy as np\nfrom pev_mpc import ChargingProblem, MPCSettings, DecentralisedMPC\n"
               "from pev_env import EnvConfig\nfrom pev_env.scenario import Scenario\n"
               "from pev_env.scenarios import make_scenario\nfrom pev_env.core import ChargingCore\n"
               "P = dict(x0=[1.0], r=[10.0], s=[20.0], d=[3], p_min=0.0, p_max=7.0, eta=0.9, dt_h=0.25, P_ref=10.0, "
               "horizon=4)\n")
API_CASES: list[tuple[str, str]] = [
    ("Python API", "MPCSettings(horizon=True)"),
    ("Python API", "MPCSettings(horizon=10**9)"),
    ("Python API", "MPCSettings(unmet_weight=1+1j)"),
    ("Python API", "ChargingProblem(**{**P, 'x0': np.array([1+1j])})"),
    ("Python API", "ChargingProblem(**{**P, 'horizon': True})"),
    ("Python API", "ChargingProblem(**{**P, 'P_ref': np.nan})"),
    ("Python API", "EnvConfig(n_stations=True)"),
    ("Python API", "EnvConfig(p_max=1+1j)"),
    ("Python API", "EnvConfig(sampling_time=7)"),
    ("Python API", "c, s = make_scenario('seed', 0); ChargingCore(c, s).step(np.zeros(6) + 1j)"),
    ("Python API", "Scenario(arrival=[0], departure=[2], soc_init=[1j], soc_target=[5.0], capacity=[10.0], "
                   "station=[0], n_stations=1, n_steps=4)"),
    ("Python API", "make_scenario('synthetic-100000000', 0)"),
    ("Python API", "DecentralisedMPC(settings=MPCSettings(horizon=True))"),
]


def api_outcome(done: subprocess.CompletedProcess | None) -> str:
    if done is None:
        return "hang (killed after 120 s)"
    if done.returncode == 0:
        return "accepted (silent)"
    last = message(done)
    return f"refused: {last.split(':')[0]}" if last.startswith(("ValueError", "TypeError")) else "traceback (other)"


if __name__ == "__main__":
    main()
