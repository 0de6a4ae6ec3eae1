"""Run configurations of the subcommands: frozen dataclasses with the plant (`env: EnvConfig`) and the MPC
settings (`mpc: MPCSettings`) nested as typed fields.

Each class validates itself in `__post_init__` (errors name `<command>.<key>`, the value and what is
allowed); `experiments.cli.loader` builds them from files and `--set`, `experiments.cli.preflight` adds the checks
that need a scenario or the file system. Repeated names and seeds are removed with a note.
"""

from __future__ import annotations

import glob
import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from experiments.commands.backends import BACKENDS, check_ray_address
from experiments.commands.coerce import MAX_SEED, build, parse_seeds, path_value, unique
from experiments.controllers import registry
from pev_env.config import EnvConfig
from pev_env.feasibility import ACTION_MODES
from pev_mpc.settings import MPCSettings

DEFAULT_SCENARIOS, DEFAULT_EVAL_SEEDS = registry.DEFAULT_SCENARIOS, registry.DEFAULT_EVAL_SEEDS
TRAIN_SCENARIOS: tuple[str, ...] = ("seed", "seed-20", "acn-caltech-train")
"""The training scenarios: the real days are those of the training split, so `acn-caltech` and
`acn-caltech-eval` evaluate on days training never saw."""
TRAIN_SEEDS: tuple[int, ...] = tuple(range(1000, 1100))
"""The training seeds of the reference models, disjoint from the evaluation seeds 0..4."""
TRAIN_ALGOS: tuple[str, ...] = ("ippo", "mappo", "mappo-lagrangian")
"""ippo (SB3), mappo (TorchRL, overload penalty in the reward), mappo-lagrangian (TorchRL, learned multiplier)."""
LAGRANGIAN_FIELDS: tuple[str, ...] = ("lagrange_lr", "lagrange_init", "cost_limit")
"""The TrainConfig fields that only mappo-lagrangian reads (another algo refuses a value other than the default)."""
MAX_EPISODE_STEPS = 100_000
"""Most control steps per episode (about a year at 5 min), checked before anything is allocated."""
MAX_GRID = 10_000
"""Most settings one tune grid may combine."""
MAX_WORKERS = 1024
"""Most worker processes (local) or runs in flight (ray) one command may ask for."""
SEEDS = {"coerce": parse_seeds}
"""Field metadata of the seed lists: parsed from '0-4,10' style ranges."""


def _fail(section: str, key: str, value: Any, allowed: str) -> None:
    raise ValueError(f"{section}.{key} = {value!r}: {allowed}")


class _Checks:
    """Validation helpers shared by the configurations (`section` names the command in messages)."""

    section: ClassVar[str]

    def _at_least(self, key: str, minimum: float, maximum: float | None = None) -> None:
        value = getattr(self, key)
        if value < minimum or maximum is not None and value > maximum:
            _fail(self.section, key, value, f"must be >= {minimum}" if maximum is None else
                  f"must be in [{minimum}, {maximum}]")

    def _names(self, key: str, check: Any) -> None:
        """Non-empty, duplicates removed (with a note), every name valid."""
        names = unique(f"{self.section}.{key}", tuple(getattr(self, key)))
        if not names:
            _fail(self.section, key, names, "must name at least one")
        for name in names:
            check(name, f"{self.section}.{key}")
        object.__setattr__(self, key, names)

    def _seeds(self) -> None:
        seeds = unique(f"{self.section}.seeds", tuple(self.seeds))
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            _fail(self.section, "seeds", seeds, "must list at least one integer >= 0")
        object.__setattr__(self, "seeds", seeds)


@dataclass(frozen=True)
class Execution(_Checks):
    """Where the runs of a grid execute (`experiments.commands.backends`): shared by compare, tune and scale."""

    backend: str = "local"
    """'local' (this machine: a process pool, or this process with workers = 1) or 'ray' (Ray tasks)."""
    workers: int = 0
    """local: worker processes (0 = one per core; 1 = this process, the cleanest step times);
    ray: runs in flight at once (0 = twice the cluster's CPUs)."""
    ray_address: str = ""
    """Ray cluster address ('auto', 'HOST:PORT', 'ray://HOST:10001'); empty: start a local Ray instance."""

    def _check_execution(self) -> None:
        if self.backend not in BACKENDS:
            _fail(self.section, "backend", self.backend, f"allowed values: {', '.join(BACKENDS)}")
        self._at_least("workers", 0, MAX_WORKERS)
        try:
            check_ray_address(self.ray_address)
        except ValueError as exc:
            raise ValueError(f"{self.section}.{exc}") from None


@dataclass(frozen=True)
class BasePlant(_Checks):
    """The base plant every scenario is built on."""

    env: EnvConfig = field(default_factory=EnvConfig)
    """The base plant (units of `pev_env.config.EnvConfig`: kW, kWh, minutes), e.g. {P_ref: 40, xi: 0.05};
    `--set env.P_ref=40` sets one field, on top of `env_file`; unset fields keep the EnvConfig defaults (the
    seed's plant). `seed` runs the base as is; `seed-20` / `seed-30` fix n_stations = 5, n_pevs = 20 / 30,
    total_time = 960 min. The binding scenarios recompute on top of the base: acn-caltech n_stations,
    n_pevs, total_time (1440 min), p_min (0), p_max (6.6 kW), soc_max = soc_ref (largest session), P_ref
    (binding) and P_max; synthetic-N n_stations (N), n_pevs, P_ref (binding) and P_max (it draws its
    sessions with the base p_max, xi, soc_max, total_time). So e.g. env.P_ref changes only seed, seed-20
    and seed-30."""
    env_file: str = ""
    """YAML/TOML file with a flat table of EnvConfig fields, the base that `env` entries override (read by
    `experiments.cli.loader` into `env`; kept here as the record of where `env` came from). Empty: none."""

    def _check_plant(self) -> None:
        if self.env.n_steps > MAX_EPISODE_STEPS:
            _fail(self.section, "env", f"total_time / sampling_time = {self.env.n_steps} steps",
                  f"must be <= {MAX_EPISODE_STEPS} control steps per episode")


@dataclass(frozen=True)
class Output(_Checks):
    """The output directory of a command and what may happen to results already in it."""

    out: str = "results"
    """Output directory."""
    overwrite: bool = False
    """Replace the results already in `out` (without it, a folder holding results is refused)."""

    def _check_output(self) -> None:
        if not self.out:
            _fail(self.section, "out", self.out, "must name a directory")
        object.__setattr__(self, "out", os.path.expanduser(self.out))  # `out: ~/x` in a file, as on a shell


@dataclass(frozen=True)
class CompareConfig(Execution, BasePlant, Output):
    """`compare` / `evaluate`: every controller on every scenario x seed, full episodes."""

    section: ClassVar[str] = "compare"

    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    """Scenario names (`pev_env.scenarios`), e.g. seed, seed-20, acn-caltech, synthetic-50."""
    seeds: tuple[int, ...] = field(default=DEFAULT_EVAL_SEEDS, metadata=SEEDS)
    """Scenario seeds, the same for every controller (training uses seeds >= 1000, so these are held out)."""
    controllers: tuple[str, ...] = registry.DEFAULT_CONTROLLERS
    """Controller names (`experiments.controllers.registry.controller_names()`), or import paths `package.module:ClassName`
    of the user's own policy classes. A learned controller that cannot run here (its extra not installed) is
    left out of the default list with a note; named explicitly, it is an error."""
    out: str = str(Path("results") / "compare")
    """Output directory (metrics.csv, summary.md, traces/, plots/, run.json)."""
    resume: bool = False
    """Keep the rows of an earlier run in `out` whose settings fingerprint matches, and skip their keys."""
    reference: str = ""
    """Controller the paired per-seed differences in summary.md are taken against (empty: offline-optimal
    when it runs, else none)."""
    traces: bool = True
    """Write per-step traces (area power, P_ref, prices, per-station power, SOC, network constraint loads) as CSV."""
    plots: bool = True
    """Write PNG plots."""
    ppo_model: str = ""
    """Saved model of `ppo`: a folder (or its model.json) written by `train`; empty: the reference model shipped
    in the package (experiments/controllers/models/ppo). A missing or unreadable model is an error, never retrained."""
    mappo_model: str = ""
    """Saved model of `mappo` (`train --algo mappo`); empty: the shipped reference (experiments/controllers/models/mappo)."""
    models: Mapping[str, str] = field(default_factory=dict)
    """Learned controller -> model folder, for any learned controller (e.g. `--set models.ppo-price=DIR`); a
    learned controller without one runs its reference model shipped in experiments/controllers/models/<controller>.
    Several folders (training seeds), comma-separated and/or as glob patterns (`--set models.ppo=runs/ppo-*`),
    run as `ppo@0`, `ppo@1`, ... (in the order given, a pattern's matches sorted): one row per training seed
    x scenario x seed, grouped again by `ppo` in the RL statistics of summary.md."""
    trust_model: bool = False
    """Accept a model file holding pickled objects (a Stable-Baselines3 model.zip), which can run any code when
    loaded: it is converted once into the safe format in `out`/models/ppo. Only for files you made."""
    mpc: MPCSettings = field(default_factory=MPCSettings)
    """The MPCSettings of every MPC controller (mpc-decentralised, mpc-centralised, mpc-distributed), in sections
    (objective, coordination, stations, centralised, policy; docs/controllers.md), e.g. {policy: {horizon: 48},
    objective: {name: tracking, terminal_weight: 100}}; `--set mpc.policy.horizon=48` sets one field. The others
    ignore it."""
    run_timeout: float = 0.0
    """Seconds one run (controller x scenario x seed) may take; a run over it is recorded as failed and the grid
    goes on (0: no limit)."""

    def __post_init__(self) -> None:
        self._check_output()
        self._at_least("run_timeout", 0)
        self._check_plant()
        self._names("scenarios", registry.check_scenario)
        if tuple(self.controllers) == registry.DEFAULT_CONTROLLERS:
            object.__setattr__(self, "controllers", registry.available_defaults(self.controllers))
        self._names("controllers", registry.check_controller)
        self._seeds()
        self._check_execution()
        if self.resume and self.overwrite:
            _fail(self.section, "resume", self.resume, "cannot be combined with overwrite")
        unknown = sorted(set(self.models) - set(registry.LEARNED_NEEDS))
        if unknown:
            _fail(self.section, "models", dict(self.models), f"unknown learned controllers {unknown}; allowed: "
                  f"{', '.join(registry.LEARNED_NEEDS)}")
        self._training_seeds()
        if self.reference and self.reference not in self.controllers:
            _fail(self.section, "reference", self.reference, f"must be one of the controllers "
                  f"({', '.join(self.controllers)})")

    def model_folders(self) -> dict[str, tuple[str, ...]]:
        """Learned controller -> the model folders given for it (('',): the shipped reference model); ValueError
        naming the key for a pattern that matches nothing or an empty entry."""
        options = {k: v for k, v in ((registry.PPO, self.ppo_model), (registry.MAPPO, self.mappo_model)) if v}
        for name, folder in options.items():
            if self.models.get(name) and str(self.models[name]) != str(folder):
                _fail(self.section, f"{name}_model", folder, f"give the model of {name} once: models.{name} = "
                      f"{str(self.models[name])!r} names another")
        given = {**self.models, **options}
        return {name: model_folder_list(f"{self.section}.models.{name}", str(given.get(name, "")))
                for name in registry.LEARNED_NEEDS}

    def model_paths(self) -> dict[str, str]:
        """Controller -> the model folder given for it ('' for the shipped reference model); a learned controller
        given several folders appears once per folder, as `name@i` (`registry.training_seed_names`)."""
        return {run: folder for name, folders in self.model_folders().items()
                for run, folder in zip(registry.training_seed_names(name, len(folders)), folders)}

    def _training_seeds(self) -> None:
        """A learned controller given several model folders runs once per folder (`name@i`); a `name@i` named
        directly must be one of them."""
        folders = self.model_folders()
        runs = self.model_paths()
        expanded: list[str] = []
        for name in self.controllers:
            if name in folders:
                expanded += registry.training_seed_names(name, len(folders[name]))
            elif registry.learned_base(name) and name not in runs:
                base = registry.learned_base(name)
                names = registry.training_seed_names(base, len(folders[base]))
                _fail(self.section, "controllers", name, f"allowed: {', '.join(names)} (one per folder in "
                      f"models.{base})")
            else:
                expanded.append(name)
        object.__setattr__(self, "controllers", tuple(dict.fromkeys(expanded)))

    def reference_controller(self) -> str:
        """The controller of the paired differences ('' for none)."""
        default = "offline-optimal" if "offline-optimal" in self.controllers else ""
        return self.reference or default


def model_folder_list(key: str, given: str) -> tuple[str, ...]:
    """The folders of a comma-separated list of folders and glob patterns (a pattern's matches sorted, repeats
    dropped); ('',) for '' (the shipped reference model)."""
    if not given.strip():
        return ("",)
    folders: list[str] = []
    for part in (p.strip() for p in given.split(",")):
        if not part:
            raise ValueError(f"{key} = {given!r}: an empty entry; allowed: model folders separated by commas")
        if glob.has_magic(part):
            matches = sorted(glob.glob(os.path.expanduser(part)))
            if not matches:
                raise ValueError(f"{key} = {given!r}: the pattern {part!r} matches no model folder")
            folders += matches
        else:
            folders.append(part)
    return tuple(dict.fromkeys(folders))


@dataclass(frozen=True)
class EvaluateConfig(CompareConfig):
    """`evaluate`: a saved PPO model (plus optional other controllers) in compare's format."""

    section: ClassVar[str] = "evaluate"

    controllers: tuple[str, ...] = ("ppo",)
    out: str = str(Path("results") / "evaluate")


@dataclass(frozen=True)
class TrainConfig(BasePlant, Output):
    """`train`: PPO with parameter sharing (one policy, every station one sample)."""

    section: ClassVar[str] = "train"

    algo: str = "ippo"
    """ippo: PPO with parameter sharing (Stable-Baselines3; the controller `ppo`); mappo: PPO with a centralised
    critic (TorchRL, the `marl` extra; the controller `mappo`); mappo-lagrangian: MAPPO whose overload cost is
    weighted by a Lagrange multiplier learned by dual ascent (`lagrange_lr`, `cost_limit`; the controller
    `mappo-lagrangian`). All train the same kind of shared station actor on the same features, and save it in
    the same safe format."""
    action_mode: str = "raw"
    """How an action becomes power (`pev_env.feasibility`): raw (a request, may exceed a limit), safe (a score:
    the heuristics' fill in the learned order, never exceeds a limit), safe-rate (a request capped by that fill
    where it would exceed a limit) or residual (score = LLF's key + the action: residual RL on LLF). The model
    records it; the controller is `<algo>[-price][-<mode>]`, e.g. ppo-safe."""
    scenarios: tuple[str, ...] = TRAIN_SCENARIOS
    """Scenario families trained on simultaneously (one plant per name); the defaults reproduce the
    shipped reference model (experiments/controllers/models/ppo/model.json, `training`)."""
    seeds: tuple[int, ...] = field(default=TRAIN_SEEDS, metadata=SEEDS)
    """Scenario seeds drawn in turn for training episodes: disjoint from the evaluation seeds 0..4 (the real
    days come from the `acn-caltech-train` split, never from the evaluation days)."""
    seed: int = 0
    """Seed of the learner (torch, PPO sampling)."""
    timesteps: int = 2_400_000
    """Training budget in station-steps (samples); about 2 minutes on 2 cores."""
    out: str = ""
    """Output directory: model.json + model.safetensors (`experiments.controllers.rl_model`), training_log.csv,
    learning_curve.png, tb/ (TensorBoard); empty: results/<algo>."""
    learning_rate: float = 1e-3
    """Adam step size of PPO."""
    n_steps: int = 128
    """Rollout length per plant (samples per update = n_steps x total stations)."""
    batch_size: int = 1024
    """Minibatch size (samples) of the PPO updates."""
    n_epochs: int = 5
    """Passes over each rollout."""
    gamma: float = 0.99
    """Discount factor per control step."""
    ent_coef: float = 0.0
    """Entropy bonus weight."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and value networks."""
    price_alpha: float = 0.0
    """0: the stations see their own features only. > 0: price-informed agents: an area coordinator broadcasts
    a price updated each step from the area residual, lambda <- max(0, lambda + price_alpha (P - P_ref) / P_ref)
    (`pev_env.learning.AreaPrice`), as an extra input of every station; the model is the controller
    `ppo-price` / `mappo-price`."""
    lagrange_lr: float = 5.0
    """mappo-lagrangian: dual ascent step of the multiplier after each batch, lambda <- max(0, lambda + lagrange_lr
    (mean overload cost per station-step - cost_limit)); the cost of a station-step is its power / p_max while
    any limit (area or network) is exceeded, so a policy over the limit in 10 % of its steps at half power moves
    lambda by 0.25 per batch."""
    lagrange_init: float = 1.0
    """mappo-lagrangian: the multiplier at the start (in units of the per-step progress reward)."""
    cost_limit: float = 0.0
    """mappo-lagrangian: the average overload cost per station-step the constraint allows (0: none)."""

    def __post_init__(self) -> None:
        if self.algo not in TRAIN_ALGOS:
            _fail(self.section, "algo", self.algo, f"allowed values: {', '.join(TRAIN_ALGOS)}")
        if self.action_mode not in ACTION_MODES:
            _fail(self.section, "action_mode", self.action_mode, f"allowed values: {', '.join(ACTION_MODES)}")
        self._check_plant()
        for key in LAGRANGIAN_FIELDS:
            self._at_least(key, 0)
            if self.algo != "mappo-lagrangian" and getattr(self, key) != getattr(TrainConfig, key):
                _fail(self.section, key, getattr(self, key), f"applies to algo 'mappo-lagrangian' only, not "
                      f"{self.algo!r} (it would be recorded in model.json and change nothing)")
        if not self.out:
            object.__setattr__(self, "out", str(Path("results") / self.algo))
        self._check_output()
        self._names("scenarios", registry.check_scenario)
        self._seeds()
        if not 0 <= self.seed <= MAX_SEED:
            _fail(self.section, "seed", self.seed, f"must be an integer in [0, {MAX_SEED}]")
        for key in ("timesteps", "n_steps", "batch_size", "n_epochs"):
            self._at_least(key, 1)
        if not self.learning_rate > 0:
            _fail(self.section, "learning_rate", self.learning_rate, "must be > 0")
        if not 0.0 < self.gamma <= 1.0:
            _fail(self.section, "gamma", self.gamma, "must be in (0, 1]")
        self._at_least("ent_coef", 0)
        self._at_least("price_alpha", 0)
        if not self.net_arch or min(self.net_arch) <= 0:
            _fail(self.section, "net_arch", self.net_arch, "must be positive layer sizes")


def typed_grid(grid: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
    """A tune grid (MPCSettings `section.field` -> values) with every value coerced to its field's type."""
    return {name: tuple(path_value(MPCSettings, "tune.grid", name, v) for v in values)
            for name, values in grid.items()}


def settings_grid(grid: Mapping[str, tuple[Any, ...]]) -> list[MPCSettings]:
    """MPCSettings for every combination of the typed `grid` (`section.field` -> values)."""
    names = list(grid)
    return [build(MPCSettings, "tune.grid", dict(zip(names, combo)))
            for combo in itertools.product(*(grid[name] for name in names))]


DEFAULT_GRID: dict[str, tuple[Any, ...]] = {
    "coordination.method": ("newton", "nesterov", "gradient"),
    "coordination.max_iterations": (10, 50, 200),
    "coordination.primal_tol_kw": (1e-2, 1e-4),
    "policy.horizon": (12, 24),
}


@dataclass(frozen=True)
class TuneConfig(Execution, BasePlant, Output):
    """`tune`: sweep of decentralised-MPC solver settings against the centralised optimum."""

    section: ClassVar[str] = "tune"

    scenarios: tuple[str, ...] = ("seed",)
    seeds: tuple[int, ...] = field(default=(0,), metadata=SEEDS)
    grid: Mapping[str, tuple[Any, ...]] = field(default_factory=lambda: dict(DEFAULT_GRID))
    """MPCSettings `section.field` (e.g. policy.horizon) -> values; the cartesian product is swept with the
    decentralised MPC (the reference is always the centralised QP)."""
    max_steps: int = 0
    """Control steps per episode (0 = full episode)."""
    out: str = str(Path("results") / "tune")
    run_timeout: float = 0.0
    """Seconds one run (setting x scenario x seed) may take; a run over it is a row with `failed` set, the sweep
    goes on and ends with exit code 1 (0: no limit)."""

    def __post_init__(self) -> None:
        from pev_mpc.policies import POLICIES

        self._check_output()
        self._at_least("run_timeout", 0)
        self._check_plant()
        self._names("scenarios", registry.check_scenario)
        self._seeds()
        self._at_least("max_steps", 0)
        self._check_execution()
        grid = typed_grid(self.grid)
        size = 1
        for name, values in grid.items():
            if not values:
                _fail(self.section, f"grid.{name}", values, "must list at least one value")
            if POLICIES["mpc-decentralised"].ignores_setting(name):
                _fail(self.section, f"grid.{name}", list(values), "not read by mpc-decentralised, the controller tune "
                      "sweeps")
            if len(set(values)) < len(values):
                _fail(self.section, f"grid.{name}", list(values), "lists a value twice (one setting would run twice "
                      "under one label)")
            size *= len(values)
        if not grid or size > MAX_GRID:
            _fail(self.section, "grid", dict(self.grid), f"must combine 1 to {MAX_GRID} settings")
        object.__setattr__(self, "grid", grid)
        settings_grid(grid)  # every combination is valid MPCSettings


@dataclass(frozen=True)
class ScaleConfig(Execution, BasePlant, Output):
    """`scale`: time per control step and memory against the number of stations."""

    section: ClassVar[str] = "scale"

    sizes: tuple[int, ...] = (10, 30, 100, 300, 1000)
    """Numbers of stations (synthetic-N scenarios)."""
    controllers: tuple[str, ...] = ("mpc-decentralised", "mpc-centralised")
    centralised_max: int = 300
    """Largest size run for the centralised MPC (larger sizes are skipped and reported)."""
    steps: int = 5
    """Timed control steps per size (after one warm-up step); at most the base episode's steps - 1."""
    scenarios: tuple[str, ...] = ("synthetic",)
    """Scenario family; `synthetic` is the only scalable one (synthetic-N)."""
    seeds: tuple[int, ...] = field(default=(0,), metadata=SEEDS)
    """Scenario seeds: every size x controller runs on each."""
    out: str = str(Path("results") / "scale")
    workers: int = 1
    """As in compare, but 1 by default: the step times are the result, and parallel runs share the cores."""
    mpc: MPCSettings = field(default_factory=MPCSettings)
    """The MPCSettings of the MPC controllers timed (as in compare), e.g. `--set mpc.objective.deadline_reg=1e-3`."""
    run_timeout: float = 0.0
    """Seconds one run (size x controller x seed) may take; a run over it is a row with `skipped` saying so, and
    the command ends with exit code 1 (0: no limit)."""

    def __post_init__(self) -> None:
        self._check_output()
        self._at_least("run_timeout", 0)
        self._check_plant()
        if self.scenarios != ("synthetic",):
            _fail(self.section, "scenarios", self.scenarios, "allowed values: ('synthetic',)")
        self._names("controllers", registry.check_controller)
        object.__setattr__(self, "sizes", unique("scale.sizes", tuple(self.sizes)))
        if not self.sizes or min(self.sizes) < 1:
            _fail(self.section, "sizes", self.sizes, "must be positive station counts")
        self._seeds()
        self._at_least("centralised_max", 0)
        self._at_least("steps", 1)
        if self.steps > self.env.n_steps - 1:
            _fail(self.section, "steps", self.steps, f"must be <= {self.env.n_steps - 1} (the base plant's episode "
                  f"has {self.env.n_steps} steps, one of them the warm-up)")
        self._check_execution()


CONFIGS: dict[str, type] = {cls.section: cls for cls in (CompareConfig, EvaluateConfig, TrainConfig, TuneConfig,
                                                          ScaleConfig)}
