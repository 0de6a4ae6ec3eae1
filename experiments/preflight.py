"""Checks before any work starts that need more than the configuration itself: every scenario built once
(with the first seed) on the base plant, the PPO model file, and Ray (installed, the cluster reachable).

Each failure raises ValueError, ImportError or ConnectionError with one line naming the problem; the command
line turns them into exit code 2.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from experiments import registry
from experiments.config import MAX_EPISODE_STEPS
from pev_env.config import EnvConfig


def check_scenarios(section: str, scenarios: tuple[str, ...], seed: int, env: EnvConfig) -> None:
    """Build every scenario with `seed` on `env`; its ValueError (e.g. a sampling time that does not divide the
    day) or an episode longer than MAX_EPISODE_STEPS names the scenario."""
    from pev_env.scenarios import make_scenario

    for name in scenarios:
        try:
            config, _ = make_scenario(name, seed, base=env)
        except ValueError as exc:
            raise ValueError(f"{section}.scenarios: {name}: {exc}") from None
        if config.n_steps > MAX_EPISODE_STEPS:
            raise ValueError(f"{section}.scenarios: {name}: {config.n_steps} control steps per episode; must be <= "
                             f"{MAX_EPISODE_STEPS}")


def check_ppo_model(section: str, path: str) -> None:
    """An existing PPO model must be a zip file with its normaliser beside it (a missing one is trained)."""
    model = Path(path)
    if not model.exists():
        return
    if not zipfile.is_zipfile(model):
        raise ValueError(f"{section}.ppo_model = {path!r}: not a zip file; allowed: a model.zip written by "
                         "`pev-experiments train`")
    if not (model.parent / "normalizer.npz").is_file():
        raise ValueError(f"{section}.ppo_model = {path!r}: no normalizer.npz beside it; allowed: a model written "
                         "by `pev-experiments train`")


def check_ray(address: str) -> None:
    """Ray installed (ImportError with the install command) and, for a cluster address, reachable."""
    from experiments.backends import check_ray_reachable
    from pev_mpc.distributed import import_ray

    import_ray()
    check_ray_reachable(address)


def preflight(cfg: Any) -> None:
    """Every check of this module that applies to the configuration `cfg`."""
    seeds = getattr(cfg, "seeds", (0,))
    if cfg.section != "scale":  # scale builds synthetic-N only, checked by ScaleConfig
        check_scenarios(cfg.section, cfg.scenarios, seeds[0], getattr(cfg, "env", EnvConfig()))
    if registry.PPO in getattr(cfg, "controllers", ()):
        check_ppo_model(cfg.section, cfg.ppo_model)
    if getattr(cfg, "backend", "local") == "ray":
        check_ray(cfg.ray_address)
