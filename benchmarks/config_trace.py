"""How far a reader follows the configuration through the code: the files, stays and returns (issue 21).

Runs `pev-experiments compare` in this process (one run, `--workers 1`) under `sys.setprofile` and records, in
call order, every call of a Python function defined in the checkout's packages (experiments/, pev_mpc/, pev_env/;
left out: comprehensions, lambdas, module bodies and the dunder methods Python calls implicitly, all but
`__init__` and `__post_init__`) that handles the followed object, until the followed use:

* `compare`: calls that receive the configuration (an argument, `self` included) or return it, until the first
  episode starts (`run_episode`). The configuration is any dataclass instance of a module named `*config` or
  `*settings` (the command's config, `EnvConfig`, `MPCSettings` and its sections).
* `model_after` value: with `--set mpc.coordination.model_after=4`, calls that receive or return the setting
  itself: a string naming `model_after` (argv), a mapping or sequence holding one, the `argparse.Namespace`,
  the settings section that has the field (`Coordination`), until the coordinator reads it (the first call
  into pev_mpc/coordinator.py).
* `model_after` carried: the same, also counting calls that receive an object holding that section (the
  command's config, `MPCSettings`): every file the value passes through on its way.

Each path is measured in three views (`VIEWS`): all such calls; the harness's (a call inside pev_env or pev_mpc
only where experiments/ calls into it); hand-offs (those, without the object's own methods other than its
construction). A stay is a maximal run of consecutive recorded calls in one file; a return is a stay in a file
that an earlier stay already left. Usage: `python benchmarks/config_trace.py [--list] [--root CHECKOUT]`
(`--root` measures another checkout, e.g. an export of the commit before the grouping).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import io
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("experiments", "pev_mpc", "pev_env")
SETTING = "mpc.coordination.model_after=4"


def _repo_file(filename: str) -> str | None:
    try:
        rel = Path(filename).resolve().relative_to(ROOT)
    except ValueError:
        return None
    return rel.as_posix() if rel.parts[0] in PACKAGES else None


def _is_config(value: Any) -> bool:
    module = type(value).__module__ or ""
    return dataclasses.is_dataclass(value) and not isinstance(value, type) and module.endswith(("config", "settings"))


def _has_setting(value: Any, carried: bool = False, depth: int = 4) -> bool:
    """Whether `value` is the setting (text, mapping, sequence, namespace, its settings section); `carried`:
    or a configuration object holding that section."""
    if depth < 0:
        return False
    if isinstance(value, str):
        return "model_after" in value
    if isinstance(value, Mapping):
        return any(_has_setting(k, carried, depth - 1) or _has_setting(v, carried, depth - 1)
                   for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_setting(v, carried, depth - 1) for v in value)
    if isinstance(value, argparse.Namespace):
        return _has_setting(vars(value), carried, depth - 1)
    if _is_config(value):
        fields = dataclasses.fields(value)
        if any(f.name == "model_after" for f in fields):
            return getattr(value, "model_after") == 4
        return carried and any(_has_setting(getattr(value, f.name, None), carried, depth - 1) for f in fields)
    return False


def _carries_setting(value: Any) -> bool:
    return _has_setting(value, carried=True)


def _implicit(name: str) -> bool:
    return name.startswith("__") and name.endswith("__") and name not in ("__init__", "__post_init__")


@dataclasses.dataclass
class Call:
    """One call: its file and function, the file it was called from, and how it met the followed object."""

    file: str
    qualname: str
    name: str
    caller: str
    met: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    """Followed object -> how the call met it: 'self', 'args', 'return'."""
    pinned: bool = False


class Recorder:
    """The profile function: one `Call` a repository call, noting for each followed object (`wanted`: name ->
    test) how it met it; the first call (the entry point) and the call at which `stop(file, function)` first
    holds are kept whatever they receive; recording stops at that call."""

    def __init__(self, wanted: dict[str, Callable[[Any], bool]], stop: Callable[[str, str], bool]) -> None:
        self.wanted, self.stop = wanted, stop
        self.calls: list[Call] = []
        self.open: dict[int, Call] = {}
        self.stopped = False

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            file = _repo_file(code.co_filename)
            if file is None or code.co_name.startswith("<") or _implicit(code.co_name):
                return
            names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
            method = bool(names) and names[0] == "self"
            call = Call(file, code.co_qualname, code.co_name, _repo_file(frame.f_back.f_code.co_filename) or "",
                        pinned=not self.calls)
            for key, wanted in self.wanted.items():
                met = call.met.setdefault(key, set())
                if method and wanted(frame.f_locals.get(names[0])):
                    met.add("self")
                if any(wanted(frame.f_locals.get(n)) for n in names[method:]):
                    met.add("args")
            self.calls.append(call)
            self.open[id(frame)] = call
            if self.stop(file, code.co_name):
                call.pinned = self.stopped = True
                sys.setprofile(None)
        elif event == "return":
            call = self.open.pop(id(frame), None)
            if call is not None:
                for key, wanted in self.wanted.items():
                    if wanted(arg):
                        call.met[key].add("return")


VIEWS: dict[str, str] = {
    "all": "every call that receives (self included) or returns the followed object",
    "harness": "those made from experiments/ code: a call inside pev_env or pev_mpc counts only where the harness "
               "calls into it (its API)",
    "hand-off": "harness calls that take the object as an argument or return it; its own methods (self) only "
                "when they build it (__init__, __post_init__)",
}


def kept(call: Call, key: str, view: str) -> bool:
    """Whether `call` is on the path of the followed object `key` in `view` (`VIEWS`)."""
    if call.pinned:
        return True
    if view != "all" and not (call.file.startswith("experiments/") or call.caller.startswith("experiments/")):
        return False
    met = call.met[key]
    if view == "hand-off":
        return bool(met - {"self"}) or "self" in met and call.name in ("__init__", "__post_init__")
    return bool(met)


def measure(path: list[tuple[str, str]]) -> dict[str, int]:
    """Distinct files, stays (runs of consecutive calls in one file) and returns to a file already left."""
    stays = [file for i, (file, _) in enumerate(path) if i == 0 or path[i - 1][0] != file]
    returns = sum(1 for i, file in enumerate(stays) if file in stays[:i])
    return {"calls": len(path), "files": len(set(stays)), "stays": len(stays), "returns": returns}


def _main_function() -> Callable[[list[str]], int]:
    try:  # the grouped layout (experiments/cli/main.py); before it, experiments/cli.py
        return importlib.import_module("experiments.cli.main").main
    except ModuleNotFoundError:
        return importlib.import_module("experiments.cli").main


def trace(extra: list[str], wanted: dict[str, Callable[[Any], bool]], stop: Callable[[str, str], bool]) -> Recorder:
    """Run one compare under the recorder."""
    main = _main_function()
    recorder = Recorder(wanted, stop)
    with tempfile.TemporaryDirectory() as out:
        argv = ["compare", "--scenarios", "seed", "--seeds", "0", "--workers", "1", "--out", out, "-q", *extra]
        sys.setprofile(recorder)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the summary
                main(argv)
        finally:
            sys.setprofile(None)
    if not recorder.stopped:
        raise SystemExit("config_trace: the followed use was never reached")
    return recorder


def report(title: str, recorder: Recorder, key: str, listing: bool) -> None:
    """Print the measures of each view of the followed object `key` (and with `listing` the path of each)."""
    print(title)
    for view in VIEWS:
        path = [(c.file, c.qualname) for c in recorder.calls if kept(c, key, view)]
        print(f"  {view:9s} " + ", ".join(f"{k} {v}" for k, v in measure(path).items()))
        if listing:
            print("    files: " + ", ".join(dict.fromkeys(file for file, _ in path)))
            for i, (file, name) in enumerate(path):
                if i == 0 or path[i - 1][0] != file:
                    print(f"    {file}: {name}")


def cli() -> None:
    global ROOT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print every recorded call")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    args = parser.parse_args()
    ROOT, listing = args.root.resolve(), args.list
    sys.path.insert(0, str(ROOT))
    for view, text in VIEWS.items():
        print(f"{view}: {text}")
    report("compare configuration (argv -> first episode)",
           trace(["--controllers", "edf"], {"config": _is_config}, lambda file, name: name == "run_episode"),
           "config", listing)
    recorder = trace(["--controllers", "mpc-decentralised", "--set", SETTING],
                     {"value": _has_setting, "carried": _carries_setting},
                     lambda file, name: file == "pev_mpc/coordinator.py")
    for key in ("value", "carried"):
        report(f"--set {SETTING}, {key} (argv -> coordinator)", recorder, key, listing)


if __name__ == "__main__":
    cli()
