"""Names of controllers and scenarios the harness accepts, and construction of controllers.

Controllers are `pev_mpc.policies.POLICIES` plus `ppo` (a saved Stable-Baselines3 model, `experiments.rl`).
Scenarios are resolved by `pev_env.scenarios` (names and file specs).
"""

from __future__ import annotations

import inspect
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
    "mpc-decentralised-tracking",
    "offline-optimal",
    PPO,
)


def controller_names() -> tuple[str, ...]:
    """All valid controller names: the policy registry of pev_mpc plus `ppo`."""
    from pev_mpc.policies import POLICIES

    return (*POLICIES, PPO)


def mpc_controllers() -> tuple[str, ...]:
    """Names of the controllers configured by `MPCSettings` (their factories take `settings`)."""
    from pev_mpc.policies import POLICIES

    return tuple(name for name, factory in POLICIES.items() if "settings" in inspect.signature(factory).parameters)


def scenario_names() -> tuple[str, ...]:
    """Every scenario form pev_env accepts: fixed names, synthetic-N, acn:PATH:YYYY-MM-DD, csv:PATH."""
    from pev_env.scenarios import scenario_names as names

    return names()


def check_controller(name: str, key: str = "controller") -> None:
    """Raise ValueError naming `key` and listing the valid names when `name` is unknown."""
    valid = controller_names()
    if name not in valid:
        raise ValueError(f"{key}: unknown controller {name!r}; valid controllers: {', '.join(valid)}")


def check_scenario(name: str, key: str = "scenario") -> None:
    """Raise ValueError naming `key` (and listing the valid forms) unless pev_env can build scenario `name`."""
    from pev_env.scenarios import check_scenario as check

    check(name, key)


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
