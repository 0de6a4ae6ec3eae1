"""Names of controllers and scenarios the harness accepts, and construction of controllers.

Controllers are `pev_mpc.policies.POLICIES`, the learned ones (saved models, `experiments.controllers.rl_model`; the reference
models shipped in the package unless a folder is given), named `<algo>[-price][-<action mode>]` (`learned_name`:
algo ppo (IPPO), mappo or mappo-lagrangian; `-price` for price-informed agents; the action mode of
`pev_env.feasibility` unless raw, e.g. `ppo-safe`, `mappo-residual`), and the user's own policy classes
(`experiments.controllers.policies_plugin`: `package.module:ClassName`, or a name of the entry-point group
`pev_mpc.policies`). Scenarios are resolved by `pev_env.scenarios` (names and file specs).
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiments.controllers import policies_plugin

if TYPE_CHECKING:
    from pev_mpc.settings import MPCSettings

PPO = "ppo"
MAPPO = "mappo"
MAPPO_LAGRANGIAN = "mappo-lagrangian"
LEARNED_ALGOS: dict[str, str] = {"ippo": PPO, "mappo": MAPPO, "mappo-lagrangian": MAPPO_LAGRANGIAN}
"""`train --algo` -> the controller name stem of its models."""
PRICE_SUFFIX = "-price"
ACTION_MODES: tuple[str, ...] = ("raw", "safe", "safe-rate", "residual")
"""`pev_env.feasibility.ACTION_MODES` (listed here so that resolving names imports no plant code)."""


def learned_name(stem: str, price_alpha: float = 0.0, action_mode: str = "raw") -> str:
    """The controller name of a learned model: stem (ppo, mappo, mappo-lagrangian), `-price` when price-informed,
    `-<action mode>` unless raw."""
    return stem + (PRICE_SUFFIX if price_alpha > 0 else "") + ("" if action_mode == "raw" else f"-{action_mode}")


LEARNED_NAMES: tuple[str, ...] = tuple(learned_name(stem, price, mode) for stem in LEARNED_ALGOS.values()
                                       for price in (0.0, 1.0) for mode in ACTION_MODES)
"""Every learned controller name (a model runs only under the name its model.json records, `preflight`)."""
DEFAULT_CONTROLLERS: tuple[str, ...] = (
    "uncontrolled",
    "edf",
    "llf",
    "equal-share",
    "mpc-decentralised",
    "mpc-centralised",
    "mpc-decentralised-tracking",
    "offline-optimal",
    PPO,
    MAPPO,
    PPO + PRICE_SUFFIX,
    PPO + "-safe",
    PPO + "-residual",
    MAPPO + "-safe",
    MAPPO_LAGRANGIAN,
)
DEFAULT_SCENARIOS: tuple[str, ...] = ("seed", "seed-20", "acn-caltech", "acn-caltech-network")
"""The scenarios of the default comparison (`compare`, `evaluate`)."""
DEFAULT_EVAL_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
"""The seeds of the default comparison."""
LEARNED_NEEDS: dict[str, tuple[str, ...]] = {name: ("safetensors",) for name in LEARNED_NAMES}
"""Modules each learned controller needs at run time (torch is needed for training only)."""
TRAINING_SEED_MARK = "@"
"""`ppo@2`: the learned controller `ppo` run with the third of several model folders (training seeds) given."""
INSTALL_HINT = "install the learned controllers with: pip install 'pev-mpc[rl]'"
Models = tuple[tuple[str, str], ...]
"""(learned controller, model folder) pairs; a learned controller not listed runs its shipped reference model."""
log = logging.getLogger(__name__)


def controller_names() -> tuple[str, ...]:
    """All valid controller names: the policy registry of pev_mpc, `ppo` and the installed plug-ins (an import
    path `package.module:ClassName` is valid too)."""
    from pev_mpc.policies import POLICIES

    return (*POLICIES, *LEARNED_NEEDS, *policies_plugin.entry_points())


def learned_base(name: str) -> str:
    """The learned controller behind `name` (`ppo` for `ppo` and for a training-seed run `ppo@2`); '' for every
    other controller."""
    base, mark, index = name.partition(TRAINING_SEED_MARK)
    if base in LEARNED_NEEDS and (not mark or index.isdigit()):
        return base
    return ""


def training_seed_names(name: str, count: int) -> tuple[str, ...]:
    """The controller names of `count` model folders of learned controller `name`: `name` itself for one,
    `name@0` ... `name@{count-1}` for several."""
    return (name,) if count <= 1 else tuple(f"{name}{TRAINING_SEED_MARK}{i}" for i in range(count))


def installed(module: str) -> bool:
    """True when top-level `module` can be imported (found by the import system)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_modules(name: str) -> list[str]:
    """The modules learned controller `name` needs that are not installed ([] for every other controller)."""
    return [m for m in LEARNED_NEEDS.get(learned_base(name), ()) if not installed(m)]


def available_defaults(controllers: tuple[str, ...]) -> tuple[str, ...]:
    """`controllers` less the learned ones whose modules are missing, skipped with one line."""
    skipped = {name: missing_modules(name) for name in controllers if missing_modules(name)}
    if skipped:
        missing = sorted({m for modules in skipped.values() for m in modules})
        log.warning("controllers %s skipped (%s not installed); %s", ", ".join(skipped), ", ".join(missing),
                    INSTALL_HINT)
    return tuple(name for name in controllers if name not in skipped)


def check_available(name: str, key: str = "controller") -> None:
    """ImportError with the install hint when a learned controller asked for explicitly cannot run here."""
    missing = missing_modules(name)
    if missing:
        raise ImportError(f"{key}: {name} needs {', '.join(missing)}, not installed; {INSTALL_HINT}")


def is_causal(name: str) -> bool:
    """False for a controller whose class sets `causal = False` (it reads the episode's future sessions: a bound,
    e.g. offline-optimal, mpc-foresight, or a plug-in that says so); learned controllers are causal."""
    from pev_mpc.policies import POLICIES

    if name in POLICIES:
        return bool(getattr(POLICIES[name], "causal", True))
    if policies_plugin.is_plugin(name):
        return bool(getattr(policies_plugin.load_class(name), "causal", True))
    return True


def mpc_controllers() -> tuple[str, ...]:
    """Names of the controllers configured by `MPCSettings` (their factories take `settings`)."""
    from pev_mpc.policies import POLICIES

    return tuple(name for name, factory in POLICIES.items() if "settings" in inspect.signature(factory).parameters)


def scenario_names() -> tuple[str, ...]:
    """Every scenario form pev_env accepts: fixed names, synthetic-N, acn:PATH:YYYY-MM-DD, csv:PATH."""
    from pev_env.scenarios import scenario_names as names

    return names()


def check_controller(name: str, key: str = "controller") -> None:
    """Raise ValueError naming `key` and listing the valid names when `name` is unknown (an import path is
    loaded, checked against the policy interface and built once)."""
    if policies_plugin.is_import_path(name):
        policies_plugin.make(name, key)
        return
    valid = controller_names()
    if name not in valid and not learned_base(name):
        raise ValueError(f"{key}: unknown controller {name!r}; valid controllers: {', '.join(valid)}")


def check_scenario(name: str, key: str = "scenario") -> None:
    """Raise ValueError naming `key` (and listing the valid forms) unless pev_env can build scenario `name`."""
    from pev_env.scenarios import check_scenario as check

    check(name, key)


def is_plugin(name: str) -> bool:
    """True for a controller brought by the user (an import path, or an entry point that no built-in or learned
    controller shadows)."""
    from pev_mpc.policies import POLICIES

    return name not in POLICIES and not learned_base(name) and policies_plugin.is_plugin(name)


def make_controller(name: str, models: Mapping[str, str | Path] | None = None, mpc: MPCSettings | None = None,
                    **settings: Any) -> Any:
    """A fresh controller. A learned one (`LEARNED_NEEDS`) loads its folder in `models` (absent: its shipped
    reference model); the MPC controllers
    (`mpc_controllers()`) run with the `MPCSettings` `mpc` (None: the defaults), the others ignore it;
    `settings` go to the factory. Plug-ins are built without arguments."""
    from pev_mpc.policies import POLICIES

    check_controller(name)
    base = learned_base(name)
    if base:
        from experiments.controllers.rl_model import LearnedPolicy, reference_model

        return LearnedPolicy.load((models or {}).get(name) or reference_model(base), f"{base}_model")
    if name not in POLICIES:
        return policies_plugin.make(name)
    if mpc is not None and name in mpc_controllers():
        settings = {"settings": mpc, **settings}
    return POLICIES[name](**settings)
