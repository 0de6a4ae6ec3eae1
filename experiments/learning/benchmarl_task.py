"""A BenchMARL task for the charging plant: BenchMARL's algorithms (MAPPO, IPPO, MASAC, ...), models,
loggers and reporting run on `pev_env` from BenchMARL's own configs.

Every station is an agent of one group, ``stations``; each observes the policy inputs of
`pev_env.learning` (`StationLearningWrapper`: the same features, action mapping a in [-1, 1] -> kW and
training reward as ``pev-experiments train``), and the centralised critics see the plant's global state
(``state``: every station's raw observation, the episode progress and the network loads). Actions are
continuous only. The task config (`TaskConfig`, yaml files in ``experiments/learning/benchmarl_conf/task/pev``)
picks the scenario (a `pev_env.scenarios` name or spec), `EnvConfig` overrides (e.g. ``network: caltech``)
and the area price of a price-informed agent. ``register()`` makes the tasks known to BenchMARL's hydra
loader (``task=pev/seed``); ``python -m experiments.learning.benchmarl_run`` is BenchMARL's command line with them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from benchmarl.environments import PettingZooClass, Task, task_config_registry
from benchmarl.utils import DEVICE_TYPING, _read_yaml_config
from torchrl.envs import EnvBase
from torchrl.envs.libs.pettingzoo import PettingZooWrapper

from pev_env.config import EnvConfig
from pev_env.parallel_env import PEVChargeEnv
from pev_env.scenarios import check_scenario
from pev_env.wrappers import StationLearningWrapper

CONF_DIR = Path(__file__).parent / "benchmarl_conf"
"""BenchMARL-style config folder: config.yaml (BenchMARL's defaults) and task/pev/<task>.yaml."""
ENV_NAME = "pev"
GROUP = "stations"
MAX_EVAL_STEPS = 10_000
"""Cap of an evaluation rollout; episodes end before it (the plant truncates them at their n_steps, which
depends on the day for the ACN scenarios: up to about 800 steps)."""


@dataclass
class TaskConfig:
    """The task's settings (type-checked by BenchMARL's hydra loader)."""

    scenario: str = "seed"
    """`pev_env.scenarios` name or spec (seed, seed-20, acn-caltech-train, acn:FILE:DAY, ...)."""
    env: dict[str, Any] = field(default_factory=dict)
    """`EnvConfig` fields on top of the defaults, e.g. {network: caltech, transformer_kw: 40}."""
    price_alpha: float = 0.0
    """> 0: each station also observes the area price (`pev_env.learning.AreaPrice`)."""


def task_config(config: dict[str, Any]) -> TaskConfig:
    """The checked TaskConfig of a mapping; ValueError naming the field, value and what is allowed."""
    names = [f.name for f in dataclasses.fields(TaskConfig)]
    unknown = sorted(set(config) - set(names))
    if unknown:
        raise ValueError(f"pev task config: unknown field {unknown[0]!r}; allowed: {', '.join(names)}")
    cfg = TaskConfig(**config)
    check_scenario(cfg.scenario, "pev task config: scenario")
    if not isinstance(cfg.env, dict):
        raise ValueError(f"pev task config: env = {cfg.env!r}; must be a mapping of EnvConfig fields")
    try:
        EnvConfig.from_mapping(cfg.env)
    except ValueError as exc:
        raise ValueError(f"pev task config: env: {exc}") from None
    if not isinstance(cfg.price_alpha, (int, float)) or not 0 <= cfg.price_alpha <= 1:
        raise ValueError(f"pev task config: price_alpha = {cfg.price_alpha!r}; must be a number in [0, 1]")
    return cfg


class PevClass(PettingZooClass):
    """The BenchMARL TaskClass: a TorchRL PettingZooWrapper around the learning wrapper of the plant.

    The specs (observation, state, action, info, action mask) are split as for BenchMARL's PettingZoo tasks.
    """

    def __init__(self, name: str, config: dict[str, Any] | None) -> None:
        super().__init__(name, dataclasses.asdict(task_config(dict(config or {}))))

    def make_plant(self) -> StationLearningWrapper:
        """The PettingZoo ParallelEnv the agents act in (features in, a in [-1, 1] out)."""
        cfg = task_config(self.config)
        base = EnvConfig.from_mapping(cfg.env) if cfg.env else None
        return StationLearningWrapper(PEVChargeEnv(base, scenario_name=cfg.scenario), price_alpha=cfg.price_alpha)

    def get_env_fun(self, num_envs: int, continuous_actions: bool, seed: int | None,
                    device: DEVICE_TYPING) -> Callable[[], EnvBase]:
        def make() -> EnvBase:
            plant = self.make_plant()
            return PettingZooWrapper(plant, return_state=True, group_map={GROUP: list(plant.possible_agents)},
                                     use_mask=False, categorical_actions=True, seed=seed, device=device)
        return make

    def supports_continuous_actions(self) -> bool:
        return True

    def supports_discrete_actions(self) -> bool:
        return False

    def has_state(self) -> bool:
        return True

    def has_render(self, env: EnvBase) -> bool:
        return False

    def max_steps(self, env: EnvBase) -> int:
        return MAX_EVAL_STEPS

    @staticmethod
    def env_name() -> str:
        return ENV_NAME


class PevTask(Task):
    """The plant's tasks; each has a yaml config in experiments/learning/benchmarl_conf/task/pev (any scenario by config)."""

    SEED = None
    SEED_20 = None
    ACN_CALTECH_TRAIN = None

    @staticmethod
    def associated_class() -> type[PevClass]:
        return PevClass

    def get_from_yaml(self, path: str | None = None) -> PevClass:
        """The task with its yaml config (default: experiments/learning/benchmarl_conf/task/pev/<task>.yaml)."""
        path = path or str(CONF_DIR / "task" / ENV_NAME / f"{self.name.lower()}.yaml")
        return self.get_task(config=_read_yaml_config(path))


def register() -> None:
    """Make ``pev/<task>`` known to BenchMARL's hydra loader (task registry and the TaskConfig schema)."""
    from hydra.core.config_store import ConfigStore

    for task in PevTask:
        task_config_registry[f"{ENV_NAME}/{task.name.lower()}"] = task
    ConfigStore.instance().store(name=f"{ENV_NAME}_config", group="task", node=TaskConfig)
