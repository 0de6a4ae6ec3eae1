"""Gymnasium registration of the plant (idempotent)."""
from __future__ import annotations

import gymnasium

GYM_ID = "PEVChargeBattery-v0"


def register_envs() -> None:
    """Register ``PEVChargeBattery-v0`` once (importing pev_env twice is harmless)."""
    if GYM_ID not in gymnasium.registry:
        gymnasium.register(id=GYM_ID, entry_point="pev_env.gym_env:PEVChargeGymEnv")
