"""Names of controllers and scenarios the harness accepts, and construction of controllers.

Controllers are `pev_mpc.policies.POLICIES` plus `ppo` (a saved Stable-Baselines3 model, `experiments.rl`).
Scenarios are `pev_env.scenarios.SCENARIO_NAMES` plus `synthetic-N`.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pev_mpc.settings import MPCSettings

PPO = "ppo"
DEFAULT_CONTROLLERS: tuple[str, ...] = (
    "uncontrolled",
    "edf",
    "llf",
    "equal-share",
    "mpc-decentralised",
    "mpc-centralised",
    "offline-optimal",
    PPO,
)
_SYNTHETIC = re.compile(r"^synthetic-(\d+)$")


def controller_names() -> tuple[str, ...]:
    """All valid controller names: the policy registry of pev_mpc plus `ppo`."""
    from pev_mpc.policies import POLICIES

    return (*POLICIES, PPO)


def mpc_controllers() -> tuple[str, ...]:
    """Names of the controllers configured by `MPCSettings` (their factories take `settings`)."""
    from pev_mpc.policies import POLICIES

    return tuple(name for name, factory in POLICIES.items() if "settings" in inspect.signature(factory).parameters)


def scenario_names() -> tuple[str, ...]:
    """The fixed scenario names of pev_env (plus the parsed family `synthetic-N`)."""
    from pev_env.scenarios import SCENARIO_NAMES

    return tuple(SCENARIO_NAMES)


def check_controller(name: str, key: str = "controller") -> None:
    """Raise ValueError naming `key` and listing the valid names when `name` is unknown."""
    valid = controller_names()
    if name not in valid:
        raise ValueError(f"{key}: unknown controller {name!r}; valid controllers: {', '.join(valid)}")


def check_scenario(name: str, key: str = "scenario") -> None:
    """Raise ValueError naming `key` and listing the valid names when `name` is unknown."""
    valid = scenario_names()
    match = _SYNTHETIC.match(name)
    if name in valid or (match is not None and int(match.group(1)) >= 1):
        return
    raise ValueError(f"{key}: unknown scenario {name!r}; valid scenarios: {', '.join(valid)}, synthetic-N (N >= 1)")


def make_controller(name: str, ppo_model: str | Path | None = None, mpc: MPCSettings | None = None,
                    **settings: Any) -> Any:
    """A fresh controller. `ppo` loads `ppo_model`; the MPC controllers (`mpc_controllers()`) run with the
    `MPCSettings` `mpc` (None: the defaults), the others ignore it; `settings` go to the factory."""
    check_controller(name)
    if name == PPO:
        from experiments.rl import PPOPolicy

        if ppo_model is None:
            raise ValueError("controller 'ppo': needs a model path (ppo_model)")
        return PPOPolicy.load(ppo_model)
    from pev_mpc.policies import POLICIES

    if mpc is not None and name in mpc_controllers():
        settings = {"settings": mpc, **settings}
    return POLICIES[name](**settings)
