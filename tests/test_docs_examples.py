"""Every fenced block of README.md and docs/*.md runs here, so the documented examples cannot go stale.

- ```python: the blocks of one page run in order in one fresh interpreter (a later block uses the names of
  an earlier one, as a reader would), in a temporary folder.
- ```bash: bash runs the block with an empty PATH, so no program starts: every command it reaches is recorded
  instead (loops and variables expanded). A `pev-experiments ...` or `python -m experiments ...` command
  then runs in this process with `--dry-run` (every check: configuration, `--set` keys, scenarios built,
  controllers, models, Ray; nothing run). Any other command must be named in SKIP_COMMANDS, with the reason.
- ```yaml: parsed; a network file (a `root` node) is built into a site network.
- ```ini: parsed.
- A block without a language is text (a formula, a file tree); it must not hold a command.
- An inline `pev-experiments ...` command of the prose dry-runs too (a `...` placeholder is reported, not run).

A block that cannot run here is skipped only by a marker on a line before it, `<!-- docs-test: skip (WHY) -->`,
and every skip is reported with its reason (`pytest -ra`).
"""

from __future__ import annotations

import configparser
import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))

SKIP_COMMANDS = {
    "make": "make targets build a virtualenv and run the whole comparison or suite (CI runs `make test` itself)",
    "tensorboard": "a server that runs until stopped",
    "pip": "installs packages",
    "ray": "starts or stops a Ray cluster node",
}
"""Commands of bash blocks that are not run, by name, with the reason shown in the report."""
SKIP_RAY_CLIENT = "needs the running Ray cluster its --ray-address names (auto or HOST:PORT)"
CLI = ("pev-experiments",)
TEXT_COMMANDS = re.compile(r"^\s*(\$ |pev-experiments|python|pip |make )")

_FENCE = re.compile(r"^(\s*)(```+)\s*([\w+-]*)\s*$")
_MARKER = re.compile(r"<!--\s*docs-test:\s*skip\s*\((.+)\)\s*-->")


@dataclass(frozen=True)
class Block:
    """One fenced block: the page, the line of its opening fence, its language, its text, and the skip reason
    of its marker ('' for none)."""

    page: Path
    line: int
    lang: str
    text: str
    skip: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """The fenced blocks of one Markdown page, with the skip marker of the closest non-blank line before each."""
    lines = page.read_text(encoding="utf-8").split("\n")
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = "\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines[i + 1:j])
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = _MARKER.search(lines[k]) if k >= 0 else None
        found.append(Block(page, i + 1, lang.lower(), body, marker.group(1) if marker else ""))
        i = j + 1
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def _ids(blocks: list[Block]) -> list[str]:
    return [f"{b.where}-{b.lang or 'text'}" for b in blocks]


def test_every_block_has_a_known_kind() -> None:
    """A new kind of block needs a rule here (or a skip marker): none is ignored silently."""
    unknown = [b.where for b in ALL_BLOCKS if b.lang not in ("", "python", "bash", "yaml", "ini") and not b.skip]
    assert not unknown, f"blocks of a kind this test does not run: {unknown}"


_TEXT = [b for b in ALL_BLOCKS if b.lang == ""]


@pytest.mark.parametrize("block", _TEXT, ids=_ids(_TEXT))
def test_text_blocks_hold_no_command(block: Block) -> None:
    commands = [line for line in block.text.split("\n") if TEXT_COMMANDS.match(line)]
    assert not commands, f"{block.where}: a command in a block without a language (tag it bash): {commands}"


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with what the documented commands read that no earlier documented command writes here
    (a `train` is only dry-run): the stand-ins below. The commands run with it as working directory."""
    from pev_env.schedule import plug_schedule
    from pev_env.scenarios import make_scenario

    models = resources.files("experiments.controllers") / "models"
    stand_ins = {  # documented model folder -> the shipped reference model standing in for it
        "results/ppo": "ppo", "results/mappo": "mappo", "results/ppo-price": "ppo-price",
        **{f"{kind}-{s}": model for s in (1, 2) for kind, model in (("ippo", "ppo"), ("mappo", "mappo"),
                                                                     ("ppo-price", "ppo-price"))},
        **{f"runs/ppo-{s}": "ppo" for s in range(5)}, **{f"runs/mappo-{s}": "mappo" for s in range(3)},
        **{f"{root}ppo-residual-{s}": "ppo-residual" for s in range(5) for root in ("runs/", "results/learned/models/")},
        **{f"results/learned/models/{kind}-{s}": kind for s in range(5)
           for kind in ("ppo", "ppo-safe", "mappo-safe", "mappo-lagrangian")},
    }
    for folder, model in stand_ins.items():
        with resources.as_file(models / model) as src:
            shutil.copytree(src, tmp_path / folder)
    scenario = make_scenario("seed", 0)[1]  # your own sessions (csv:), each at the station it plugs into
    sessions = pd.read_csv(scenario.to_csv(tmp_path / "my_sessions.csv"))
    sessions["station"] = plug_schedule(scenario).station
    sessions.to_csv(tmp_path / "my_sessions.csv", index=False)
    (tmp_path / "plant.yaml").write_text("xi: 0.05\nsampling_time: 5\n")  # a plant file (--env-file)
    (tmp_path / "my_package").mkdir()  # your own policy class (package.module:ClassName)
    (tmp_path / "my_package" / "__init__.py").write_text("")
    (tmp_path / "my_package" / "policies.py").write_text(
        "from pev_mpc.policies.heuristics import LLF\n\n\nclass MyPolicy(LLF):\n    \"\"\"A policy of yours.\"\"\"\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield tmp_path
    for name in [m for m in sys.modules if m == "my_package" or m.startswith("my_package.")]:
        del sys.modules[name]


# ------------------------------------------------------------------------------------------------ python
_PYTHON_PAGES = sorted({b.page for b in ALL_BLOCKS if b.lang == "python"})
_RUNNER = """
import sys
for where, source in BLOCKS:
    print(f"--- {where}", flush=True)
    exec(compile(source, where, "exec"), NS)
"""


@pytest.mark.parametrize("page", _PYTHON_PAGES, ids=[str(p.relative_to(ROOT)) for p in _PYTHON_PAGES])
def test_python_blocks_run(page: Path, workdir: Path) -> None:
    """The page's Python blocks, in order, in one fresh interpreter (the skipped ones reported)."""
    blocks = [b for b in ALL_BLOCKS if b.page == page and b.lang == "python"]
    todo = [(b.where, b.text) for b in blocks if not b.skip]
    skipped = [f"{b.where} ({b.skip})" for b in blocks if b.skip]
    if not todo:
        pytest.skip(f"every Python block skipped by its marker: {'; '.join(skipped)}")
    script = f"BLOCKS = {todo!r}\nNS = {{'__name__': '__main__'}}\n{_RUNNER}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{page.name}: a Python block failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    if skipped:
        print(f"skipped by marker: {'; '.join(skipped)}")


# ------------------------------------------------------------------------------------------------ bash
_RECORDER = r"""
command_not_found_handle() { local IFS=$'\x1f'; printf '%s\x1e' "$*" >> "$DOCS_TEST_LOG"; return 0; }
PATH=/docs-test-no-programs
"""


def recorded_commands(block: Block, workdir: Path) -> list[list[str]]:
    """The commands the bash block reaches, as argv lists (bash expands loops, variables and continuations;
    no program runs: PATH is empty and every command lands in the recorder)."""
    log = workdir / ".docs-test-commands"
    log.write_text("")
    done = subprocess.run(["bash", "-c", _RECORDER + block.text], cwd=workdir, capture_output=True, text=True,
                          env={"DOCS_TEST_LOG": str(log), "HOME": str(workdir)}, timeout=60)
    assert done.returncode == 0, f"{block.where}: bash could not read the block: {done.stderr}"
    return [entry.split("\x1f") for entry in log.read_text().split("\x1e") if entry]


def cli_args(argv: list[str]) -> list[str] | None:
    """The arguments of a `pev-experiments` / `python -m experiments` command, None for another command."""
    if argv[0] in CLI:
        return argv[1:]
    if argv[0].startswith("python") and argv[1:3] == ["-m", "experiments"]:
        return argv[3:]
    return None


def skip_reason(argv: list[str]) -> str:
    """Why a recorded command is not run ('' when it runs)."""
    name = Path(argv[0]).name
    if name in SKIP_COMMANDS:
        return SKIP_COMMANDS[name]
    args = cli_args(argv) or []
    for flag, value in zip(args, args[1:]):
        if flag == "--ray-address":
            return SKIP_RAY_CLIENT
    return ""


def run_cli(args: list[str]) -> tuple[int, str]:
    """`pev-experiments ARGS` in this process: the exit code and what it printed."""
    from experiments.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse and the checks exit with 2
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue()


_BASH = [b for b in ALL_BLOCKS if b.lang == "bash"]


@pytest.mark.parametrize("block", _BASH, ids=_ids(_BASH))
def test_bash_blocks_pass_the_dry_run(block: Block, workdir: Path) -> None:
    """Every documented command of the experiments CLI passes every check of its --dry-run; any other command
    is skipped by name (SKIP_COMMANDS) with its reason, never silently."""
    if block.skip:
        pytest.skip(f"{block.where}: {block.skip}")
    commands = recorded_commands(block, workdir)
    assert commands, f"{block.where}: no command in the block"
    skipped, checked = [], 0
    for argv in commands:
        shown = shlex.join(argv)
        reason = skip_reason(argv)
        if reason:
            skipped.append(f"`{shown}`: {reason}")
            continue
        args = cli_args(argv)
        assert args is not None, (f"{block.where}: `{shown}` is neither the experiments CLI nor in SKIP_COMMANDS; "
                                  "add a `<!-- docs-test: skip (WHY) -->` marker or a rule")
        code, printed = run_cli([*args, "--dry-run"])
        assert code == 0, f"{block.where}: `{shown} --dry-run` exited {code}:\n{printed}"
        assert "dry run, checks passed" in printed, printed
        checked += 1
    print(f"{block.where}: {checked} commands dry-run; skipped: {skipped}")
    if not checked:
        pytest.skip(f"{block.where}: every command skipped by name: {'; '.join(skipped)}")


_INLINE = re.compile(r"`((?:pev-experiments|python -m experiments) [^`]+)`")
INLINE = sorted({(page.relative_to(ROOT).as_posix(), m.group(1)) for page in PAGES
                 for m in _INLINE.finditer(page.read_text(encoding="utf-8"))})


@pytest.mark.parametrize("page, command", INLINE, ids=[f"{p}:{c[:60]}" for p, c in INLINE])
def test_inline_commands_pass_the_dry_run(page: str, command: str, workdir: Path) -> None:
    """The commands quoted in the prose: `--version` runs, the others pass their dry run."""
    if "..." in command:
        pytest.skip(f"{page}: `{command}` is a placeholder")
    args = cli_args(shlex.split(command))
    assert args is not None
    dry = [] if args == ["--version"] else ["--dry-run"]
    code, printed = run_cli([*args, *dry])
    assert code == 0, f"{page}: `{command} --dry-run` exited {code}:\n{printed}"


# ------------------------------------------------------------------------------------------------ data
_DATA = [b for b in ALL_BLOCKS if b.lang in ("yaml", "ini")]


@pytest.mark.parametrize("block", _DATA, ids=_ids(_DATA))
def test_data_blocks_parse(block: Block, workdir: Path) -> None:
    """YAML blocks parse, and a network file builds a site network over its stations; ini blocks parse."""
    if block.skip:
        pytest.skip(f"{block.where}: {block.skip}")
    if block.lang == "ini":
        parser = configparser.ConfigParser()
        parser.read_string(block.text)
        assert parser.sections(), block.where
        return
    data = yaml.safe_load(block.text)
    assert isinstance(data, dict), block.where
    if "root" in data:
        from pev_env.config import EnvConfig
        from pev_env.network import site_network

        path = workdir / "network.yaml"
        path.write_text(block.text)
        n = len(re.findall(r"\bCA-\d+", block.text))
        network = site_network(EnvConfig(n_stations=n, n_pevs=n, network=f"network:{path}"))
        nodes = re.findall(r"name:\s*(\S+)", block.text)
        assert all(any(row.split()[0] == node for row in network.names) for node in nodes), (nodes, network.names)
