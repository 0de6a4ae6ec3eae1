"""Run configurations of the subcommands: frozen dataclasses loaded from YAML/TOML plus CLI overrides.

Every key is validated in one place (`load_config`): an unknown key lists the valid keys, a bad value
names the key, the value and what is allowed. Controller and scenario names are checked against the
registries (`experiments.registry`).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from experiments import registry

DEFAULT_SCENARIOS: tuple[str, ...] = ("seed", "seed-20", "acn-caltech")
DEFAULT_EVAL_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
REFERENCE_DIR = Path("results") / "reference"
REFERENCE_MODEL = REFERENCE_DIR / "ppo" / "model.zip"


def _names_ok(section: str, key: str, names: tuple[str, ...], check: Any) -> None:
    if not names:
        raise ValueError(f"{section}.{key} = (): must name at least one")
    for name in names:
        check(name, f"{section}.{key}")


def _positive(section: str, key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{section}.{key} = {value!r}: must be {'>= 0' if allow_zero else '> 0'}")


@dataclass(frozen=True)
class Execution:
    """Where the runs of a grid execute (`experiments.backends`): shared by compare, tune and scale."""

    backend: str = "local"
    """'local' (this machine: a process pool, or this process with workers = 1) or 'ray' (Ray tasks)."""
    workers: int = 0
    """local: worker processes (0 = one per core; 1 = this process, the cleanest step times);
    ray: runs in flight at once (0 = twice the cluster's CPUs)."""
    ray_address: str = ""
    """Ray cluster address ('auto', 'ray://host:10001'); empty: start a local Ray instance."""

    def _check_execution(self, section: str) -> None:
        from experiments.backends import BACKENDS

        if self.backend not in BACKENDS:
            raise ValueError(f"{section}.backend = {self.backend!r}: allowed values: {', '.join(BACKENDS)}")
        _positive(section, "workers", self.workers, allow_zero=True)


@dataclass(frozen=True)
class CompareConfig(Execution):
    """`compare` / `evaluate`: every controller on every scenario x seed, full episodes."""

    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    """Scenario names (`pev_env.scenarios`), e.g. seed, seed-20, acn-caltech, synthetic-50."""
    seeds: tuple[int, ...] = DEFAULT_EVAL_SEEDS
    """Scenario seeds, the same for every controller (PPO trains on seeds >= 1000, so these are held out)."""
    controllers: tuple[str, ...] = registry.DEFAULT_CONTROLLERS
    """Controller names (`experiments.registry.controller_names()`)."""
    out: str = str(Path("results") / "compare")
    """Output directory (metrics.csv, summary.md, traces/, plots/)."""
    resume: bool = False
    """Keep rows of an earlier run in `out` and skip their (controller, scenario, seed) keys."""
    traces: bool = True
    """Write per-step traces (area power, P_ref, prices, per-station power, SOC) as CSV."""
    plots: bool = True
    """Write PNG plots."""
    ppo_model: str = str(REFERENCE_MODEL)
    """Saved PPO model (.zip written by `train`); trained on the fly with `ppo_fallback_steps` if missing."""
    ppo_fallback_steps: int = 20_000
    """Training budget (environment steps over all stations) when the PPO model is missing."""

    def __post_init__(self) -> None:
        _names_ok("compare", "scenarios", self.scenarios, registry.check_scenario)
        _names_ok("compare", "controllers", self.controllers, registry.check_controller)
        if not self.seeds:
            raise ValueError("compare.seeds = (): must list at least one seed")
        _positive("compare", "ppo_fallback_steps", self.ppo_fallback_steps)
        self._check_execution("compare")


@dataclass(frozen=True)
class EvaluateConfig(CompareConfig):
    """`evaluate`: a saved PPO model (plus optional other controllers) in compare's format."""

    controllers: tuple[str, ...] = ("ppo",)
    out: str = str(Path("results") / "evaluate")


@dataclass(frozen=True)
class TrainConfig:
    """`train`: PPO with parameter sharing (one policy, every station one sample)."""

    scenarios: tuple[str, ...] = ("seed", "seed-20")
    """Scenario families trained on simultaneously (one plant per name)."""
    seeds: tuple[int, ...] = tuple(range(1000, 1100))
    """Scenario seeds drawn in turn for training episodes (disjoint from the evaluation seeds 0..4)."""
    seed: int = 0
    """Seed of the learner (torch, PPO sampling)."""
    timesteps: int = 60_000
    """Training budget in station-steps (samples)."""
    out: str = str(Path("results") / "ppo")
    """Output directory: model.zip, normalizer.npz, train_config.json, training_log.csv."""
    learning_rate: float = 3e-4
    n_steps: int = 128
    """Rollout length per plant (samples per update = n_steps x total stations)."""
    batch_size: int = 256
    n_epochs: int = 5
    gamma: float = 0.98
    ent_coef: float = 0.0
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and value networks."""

    def __post_init__(self) -> None:
        _names_ok("train", "scenarios", self.scenarios, registry.check_scenario)
        if not self.seeds:
            raise ValueError("train.seeds = (): must list at least one seed")
        for key in ("timesteps", "learning_rate", "n_steps", "batch_size", "n_epochs"):
            _positive("train", key, getattr(self, key))
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"train.gamma = {self.gamma!r}: must be in (0, 1]")
        _positive("train", "ent_coef", self.ent_coef, allow_zero=True)
        if not self.net_arch or min(self.net_arch) <= 0:
            raise ValueError(f"train.net_arch = {self.net_arch!r}: must be positive layer sizes")


@dataclass(frozen=True)
class TuneConfig(Execution):
    """`tune`: sweep of decentralised-MPC solver settings against the centralised optimum."""

    scenarios: tuple[str, ...] = ("seed",)
    seeds: tuple[int, ...] = (0,)
    controllers: tuple[str, ...] = ("mpc-decentralised",)
    """The tuned controller (a decentralised MPC) ; the reference is always the centralised QP."""
    grid: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    """MPCSettings field -> values; the cartesian product is swept (empty = the built-in default grid)."""
    max_steps: int = 0
    """Control steps per episode (0 = full episode)."""
    out: str = str(Path("results") / "tune")

    def __post_init__(self) -> None:
        _names_ok("tune", "scenarios", self.scenarios, registry.check_scenario)
        _names_ok("tune", "controllers", self.controllers, registry.check_controller)
        if not self.seeds:
            raise ValueError("tune.seeds = (): must list at least one seed")
        _positive("tune", "max_steps", self.max_steps, allow_zero=True)
        self._check_execution("tune")
        from experiments.tune import settings_grid

        settings_grid(self.grid)  # validates setting names and values


@dataclass(frozen=True)
class ScaleConfig(Execution):
    """`scale`: time per control step and memory against the number of stations."""

    sizes: tuple[int, ...] = (10, 30, 100, 300, 1000)
    """Numbers of stations (synthetic-N scenarios)."""
    controllers: tuple[str, ...] = ("mpc-decentralised", "mpc-centralised")
    centralised_max: int = 300
    """Largest size run for the centralised MPC (larger sizes are skipped and reported)."""
    steps: int = 5
    """Timed control steps per size (after one warm-up step)."""
    scenarios: tuple[str, ...] = ("synthetic",)
    """Scenario family; `synthetic` is the only scalable one (synthetic-N)."""
    seeds: tuple[int, ...] = (0,)
    out: str = str(Path("results") / "scale")
    workers: int = 1
    """As in compare, but 1 by default: the step times are the result, and parallel runs share the cores."""

    def __post_init__(self) -> None:
        if self.scenarios != ("synthetic",):
            raise ValueError(f"scale.scenarios = {self.scenarios!r}: allowed values: ('synthetic',)")
        _names_ok("scale", "controllers", self.controllers, registry.check_controller)
        if not self.sizes or min(self.sizes) < 1:
            raise ValueError(f"scale.sizes = {self.sizes!r}: must be positive station counts")
        if not self.seeds:
            raise ValueError("scale.seeds = (): must list at least one seed")
        _positive("scale", "centralised_max", self.centralised_max, allow_zero=True)
        _positive("scale", "steps", self.steps)
        self._check_execution("scale")


CONFIGS: dict[str, type] = {
    "compare": CompareConfig,
    "evaluate": EvaluateConfig,
    "train": TrainConfig,
    "tune": TuneConfig,
    "scale": ScaleConfig,
}
C = TypeVar("C")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def read_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (.yaml/.yml) or TOML (.toml) mapping; errors name the file."""
    p = Path(path)
    if p.suffix not in (".yaml", ".yml", ".toml"):
        raise ValueError(f"config file {p}: suffix {p.suffix!r} not allowed; allowed: .yaml, .yml, .toml")
    try:
        text = p.read_text()
    except OSError as exc:
        raise ValueError(f"config file {p}: cannot read ({exc.strerror})") from exc
    try:
        data = tomllib.loads(text) if p.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"config file {p}: not valid {p.suffix[1:].upper()}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {p}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


_SEED_ITEM = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_seeds(key: str, value: Any) -> tuple[int, ...]:
    """Seeds from an int, a list, or a string like '0-4,10,12-13' (inclusive ranges); duplicates dropped."""
    items = value.split(",") if isinstance(value, str) else (value if isinstance(value, (list, tuple)) else [value])
    seeds: list[int] = []
    for item in items:
        match = _SEED_ITEM.match(str(item)) if not isinstance(item, (bool, float)) else None
        if match is None or (match.group(2) is not None and int(match.group(2)) < int(match.group(1))):
            raise ValueError(f"{key} = {value!r}: must be integers >= 0 or inclusive ranges like '0-4,10'")
        lo = int(match.group(1))
        seeds.extend(range(lo, int(match.group(2) or lo) + 1))
    return tuple(dict.fromkeys(seeds))


def _coerce(key: str, tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if key.endswith(".seeds"):
        return parse_seeds(key, value)
    if origin is tuple:
        (inner, *_rest) = typing.get_args(tp)
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            items = [items]
        return tuple(_coerce(key, inner, v.strip() if isinstance(v, str) else v) for v in items if v != "")
    if origin is Mapping or tp is dict:
        return _coerce_grid(key, value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in _TRUE | _FALSE:
            return str(value).lower() in _TRUE
        raise ValueError(f"{key} = {value!r}: must be a boolean (true/false)")
    if tp in (int, float):
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if tp is int and not number.is_integer():
                raise ValueError
            return int(number) if tp is int else number
        except (TypeError, ValueError):
            raise ValueError(f"{key} = {value!r}: must be {'an integer' if tp is int else 'a number'}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ValueError(f"{key} = {value!r}: must be a string")
        return str(value)
    return value


def _coerce_grid(key: str, value: Any) -> dict[str, tuple[Any, ...]]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key} = {value!r}: must be a mapping of setting -> list of values")
    return {str(k): tuple(v) if isinstance(v, (list, tuple)) else (v,) for k, v in value.items()}


def load_config(cls: type[C], file: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> C:
    """Build `cls` from defaults, then the file (flat, or its `[<command>]` section), then `overrides`."""
    section = next(name for name, c in CONFIGS.items() if c is cls)
    data: dict[str, Any] = {}
    if file is not None:
        raw = read_file(file)
        data.update(raw[section] if isinstance(raw.get(section), dict) else raw)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in valid:
            raise ValueError(f"{section}: unknown key {key!r}; valid keys: {', '.join(valid)}")
        kwargs[key] = _coerce(f"{section}.{key}", hints[key], value)
    return cls(**kwargs)


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """`["key=value", ...]` (the --set option) -> dict; a missing '=' is an error naming the item."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: must be KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-friendly dict of a config (tuples -> lists)."""
    def plain(v: Any) -> Any:
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {f.name: plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
