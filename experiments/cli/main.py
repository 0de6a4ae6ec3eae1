"""Command line: `pev-experiments {compare,train,evaluate,tune,scale}` (also `python -m experiments`).

Every command writes into `--out`, locked while it runs; a folder that holds results needs `--overwrite`
(or, for compare/evaluate, `--resume`). `pev-experiments --version` prints the package version.

Precedence: built-in defaults < config file (--config, YAML or TOML, flat or a [<command>] section)
< --set KEY=VALUE < the dedicated options (--seeds, --out, ...). A dotted key sets one item of a
mapping key: `--set mpc.policy.horizon=48` (the MPC settings of compare/evaluate/scale, in sections:
objective, coordination, stations, centralised, policy), `--set env.P_ref=40` (the
base plant, an EnvConfig field, of compare/evaluate/tune/scale; on top of `--env-file plant.yaml`).

`--dry-run` does every check of the configuration (experiments.cli.preflight included; not the output folder) and
prints what the command would run, without running or writing anything.

Exit codes: 0 ok; 1 some runs failed (the others are kept); 2 bad input, found before any work starts
(a bad key or value, a scenario that cannot be built, an output folder that is busy, holds results without
--resume/--overwrite or cannot be written, rows that would mix settings), one line naming the problem;
130 interrupted (Ctrl-C; finished rows are kept); 143 terminated (SIGTERM; as Ctrl-C, the lock removed).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import textwrap
import threading
from typing import Any, NoReturn

from experiments.cli.loader import load_config, parse_assignments
from experiments.cli.plan import describe
from experiments.cli.preflight import preflight
from experiments.commands.backends import BACKENDS
from experiments.commands.config import CONFIGS
from experiments.controllers import registry
from experiments.errors import Terminated, UsageError
from experiments.learning.torch_threads import single_thread_torch
from experiments.outputs.provenance import package_version

log = logging.getLogger("experiments")

_COMMON: tuple[tuple[str, str, str], ...] = (
    ("--scenarios", "LIST", "comma-separated scenarios: {scenarios} (an ACN-Data file's day), csv:PATH"),
    ("--seeds", "SEEDS", "scenario seeds: integers and inclusive ranges, e.g. 0-4,10"),
    ("--controllers", "LIST", ""),  # from the registry: controllers_help
    ("--out", "DIR", "output directory"),
)


def controllers_help() -> str:
    """Help of --controllers: every name of the registry (policies, learned controllers, installed plug-ins)."""
    from experiments.controllers.registry import TRAINING_SEED_MARK, controller_names, is_causal

    names = [n if is_causal(n) else f"{n} (reads the future: a bound)" for n in controller_names()]
    return (f"comma-separated controllers: {', '.join(names)}, or your own policy classes as "
            f"module:ClassName (a module in the working directory or installed); a learned controller given several model folders (--set "
            f"models.ppo=DIR1,DIR2 or a glob) runs once per folder as ppo{TRAINING_SEED_MARK}0, "
            f"ppo{TRAINING_SEED_MARK}1, ...")


_HELP = {
    "compare": "run every controller on every scenario x seed; write metrics.csv, summary.md, traces, plots",
    "train": "train IPPO or MAPPO (one shared station policy) on training seeds and days",
    "evaluate": "run saved learned models (plus optional controllers) in compare's format on held-out seeds",
    "tune": "sweep decentralised-MPC solver settings against the centralised optimum; CSV + Pareto plot",
    "scale": "time per control step and memory against the number of stations; CSV + log-log plot",
}
_NO_CONTROLLERS = ("train", "tune")
"""Commands without a choice of controller (one learner; the tuned decentralised MPC)."""
_TRUE: dict[str, Any] = {"action": "store_const", "const": True}
_RUN_TIMEOUT = ("--run-timeout", "run_timeout", "seconds one run may take; a run over it is recorded as failed and "
                                                "the grid goes on (default 0: no limit)", {"metavar": "SECONDS"})
# command -> extra options: (flag, config key, help, argparse kwargs)
_EXTRA: dict[str, tuple[tuple[str, str, str, dict[str, Any]], ...]] = {
    "compare": (
        ("--resume", "resume", "keep the complete rows in OUT/metrics.csv made with the same settings and skip "
                               "them", _TRUE),
        ("--reference", "reference", "controller of the paired differences in summary.md (default: "
                                     "offline-optimal when it runs)", {"metavar": "CONTROLLER"}),
        ("--ppo-model", "ppo_model", "model folder (model.json + model.safetensors) written by train (default: the "
                                     "reference model shipped in the package)", {"metavar": "DIR"}),
        ("--mappo-model", "mappo_model", "model folder of mappo written by train --algo mappo (default: the shipped "
                                         "reference model)", {"metavar": "DIR"}),
        ("--trust-model", "trust_model", "accept a model file holding pickled objects (a Stable-Baselines3 model.zip; "
                                         "loading it can run any code): only for files you made", _TRUE),
        _RUN_TIMEOUT,
        ("--no-traces", "traces", "do not write per-step traces", {"action": "store_const", "const": False}),
        ("--no-plots", "plots", "do not write plots", {"action": "store_const", "const": False}),
    ),
    "train": (
        ("--algo", "algo", "ippo (PPO, parameter sharing, Stable-Baselines3), mappo (centralised critic, "
                           "TorchRL) or mappo-lagrangian (MAPPO with a learned overload multiplier)",
         {"choices": ("ippo", "mappo", "mappo-lagrangian")}),
        ("--action-mode", "action_mode", "raw, safe (learned order, feasibility layer), safe-rate or residual "
                                         "(LLF's key + the action)", {"metavar": "MODE"}),
        ("--timesteps", "timesteps", "training budget in station-samples", {"metavar": "N"}),
        ("--seed", "seed", "seed of the learner", {"metavar": "N"}),
    ),
    "tune": (
        ("--grid", "grid", "MPCSettings SECTION.FIELD=v1,v2, e.g. policy.horizon=12,24 (repeatable); replaces the "
                           "default grid", {"action": "append", "metavar": "SECTION.FIELD=V1,V2"}),
        ("--max-steps", "max_steps", "control steps per episode (0 = full episode)", {"metavar": "N"}),
        _RUN_TIMEOUT,
    ),
    "scale": (
        ("--sizes", "sizes", "comma-separated numbers of stations", {"metavar": "LIST"}),
        ("--steps", "steps", "timed control steps per size", {"metavar": "N"}),
        ("--centralised-max", "centralised_max", "largest size run for the centralised MPC", {"metavar": "N"}),
        _RUN_TIMEOUT,
    ),
}
_EXTRA["evaluate"] = _EXTRA["compare"]
# where the runs execute (experiments.commands.backends) and the plant they run: compare, evaluate, tune, scale
_EXECUTION: tuple[tuple[tuple[str, ...], str, str, dict[str, Any]], ...] = (
    (("--backend",), "backend", "local (process pool on this machine) or ray (Ray tasks)", {"choices": BACKENDS}),
    (("--workers", "--jobs"), "workers", "local: worker processes (0 = one per core, 1 = in this process; "
                                         "scale defaults to 1); ray: runs in flight (0 = 2 x cluster CPUs)", {"metavar": "N"}),
    (("--ray-address",), "ray_address", "existing Ray cluster: auto, or HOST:PORT of its GCS (ray:// is not "
                                        "supported; default: start a local Ray instance)", {"metavar": "ADDRESS"}),
    (("--env-file",), "env_file", "YAML/TOML file of EnvConfig fields: the base plant of every scenario "
                                  "(--set env.FIELD=VALUE overrides one field)", {"metavar": "FILE"}),
)


class _Formatter(argparse.HelpFormatter):
    """Help lines wrapped between words only: a name like mpc-decentralised is never split at its hyphen."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line (exit 2), pointing at --help instead of printing the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-parser per command."""
    parser = _Parser(prog="pev-experiments", description=__doc__.split("\n")[0], formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command, help_text in _HELP.items():
        p = sub.add_parser(command, help=help_text, description=help_text, formatter_class=_Formatter)
        p.add_argument("--config", metavar="FILE", help="YAML or TOML file with keys of this command")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config key (repeatable); a dotted key sets one "
                       "item of a mapping, e.g. mpc.policy.horizon=48 (compare, evaluate, scale), grid.policy.horizon=12,24 (tune) or "
                       "env.P_ref=40 (the plant, an EnvConfig field)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        p.add_argument("--dry-run", action="store_true", help="check everything (configuration, scenarios, "
                       "controllers, models, Ray), print what would run, run and write nothing")
        p.add_argument("--overwrite", dest="opt_overwrite", help="replace the results already in OUT", **_TRUE)
        names = {"scenarios": ", ".join(registry.scenario_names()[:-1])}
        for flag, metavar, text in _COMMON:
            if flag == "--controllers" and command in _NO_CONTROLLERS:
                continue
            text = controllers_help() if flag == "--controllers" else text.format(**names)
            p.add_argument(flag, metavar=metavar, help=_with_default(text, command, flag[2:]))
        for flag, key, text, kwargs in _EXTRA.get(command, ()):
            p.add_argument(flag, dest=f"opt_{key}", help=_with_default(text, command, key), **kwargs)
        if command != "train":
            for flags, key, text, kwargs in _EXECUTION:
                p.add_argument(*flags, dest=f"opt_{key}", help=_with_default(text, command, key), **kwargs)
    return parser


def _with_default(text: str, command: str, key: str) -> str:
    """`text` with the configuration's default of `key` appended, unless the text already names it."""
    fields = {f.name: f for f in dataclasses.fields(CONFIGS[command])}
    if key not in fields or "default" in text:
        return text
    f = fields[key]
    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
    if isinstance(value, bool) or value in ("", None):
        return text
    shown = _ranges(value) if isinstance(value, (tuple, list)) else value
    if isinstance(value, dict):
        shown = " ".join(f"{k}={','.join(map(str, v))}" for k, v in value.items())
    return f"{text} (default: {shown})".replace("%", "%%")


def _ranges(values: tuple[Any, ...] | list[Any]) -> str:
    """Comma-separated values, runs of consecutive integers as inclusive ranges (1000-1099)."""
    parts: list[list[Any]] = []
    for v in values:
        if parts and isinstance(v, int) and isinstance(parts[-1][-1], int) and v == parts[-1][-1] + 1:
            parts[-1].append(v)
        else:
            parts.append([v])
    return ",".join(f"{p[0]}-{p[-1]}" if len(p) > 2 else ",".join(map(str, p)) for p in parts)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = parse_assignments(args.set)
    for flag, _, _ in _COMMON:
        key = flag.lstrip("-")
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    for name, value in vars(args).items():
        if name.startswith("opt_") and value is not None:
            values[name[4:]] = value
    if isinstance(values.get("grid"), list):
        values["grid"] = _grid(values["grid"])
    return values


def _grid(items: list[str]) -> dict[str, list[str]]:
    """The --grid options as SECTION.FIELD -> values; a field given twice is refused (one would be dropped)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, values = _grid_item(item)
        if key in grid:
            raise ValueError(f"--grid {item!r}: {key} is already given ({key}={','.join(grid[key])}); "
                             f"list every value once: --grid {key}=v1,v2,...")
        grid[key] = values
    return grid


def _grid_item(item: str) -> tuple[str, list[str]]:
    key, sep, values = item.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise ValueError(f"--grid {item!r}: must be SECTION.FIELD=v1,v2,...")
    return key.strip(), [v.strip() for v in values.split(",")]


def _run(command: str, cfg: Any, argv: list[str], progress: bool) -> int:
    if command in ("compare", "evaluate"):
        from experiments.commands.compare import compare

        title = "Controller comparison" if command == "compare" else "Evaluation of saved learned models"
        return compare(cfg, argv=argv, progress=progress, title=title)
    if command == "train":
        if cfg.algo.startswith("mappo"):
            from experiments.learning.marl import train_mappo as train
        else:
            from experiments.learning.rl import train
        path = train(cfg, progress=progress, argv=argv)
        from experiments.learning.rl import saved_line

        print(saved_line(path))
        return 0
    if command == "tune":
        from experiments.commands.tune import tune

        return tune(cfg, argv=argv, progress=progress)
    from experiments.commands.scale import scale

    return scale(cfg, argv=argv, progress=progress)


def _terminate(_signum: int, _frame: Any) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code (0 ok, 1 failed runs, 2 bad input, 130 Ctrl-C,
    143 SIGTERM)."""
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() else None
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except (KeyboardInterrupt, Terminated) as exc:
        what, code = ("terminated (SIGTERM)", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
        print(f"pev-experiments: {what}; finished results are kept (compare: --resume goes on)", file=sys.stderr)
        return code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # no command: the main job
        argv = [*argv, "compare"]
        args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    prefix = f"pev-experiments {args.command}"
    try:
        cfg = load_config(CONFIGS[args.command], args.config, _overrides(args))
        preflight(cfg)
    except (ValueError, ImportError, ConnectionError) as exc:
        parser.exit(2, f"{prefix}: error: {exc}\n")
    if args.dry_run:
        print(describe(cfg))
        return 0
    single_thread_torch()
    try:
        return _run(args.command, cfg, ["pev-experiments", *argv], progress=not args.quiet)
    except UsageError as exc:
        parser.exit(2, f"{prefix}: error: {exc}\n")
