"""pev_env: the PEV charging plant (vectorised core, PettingZoo and Gymnasium APIs, metrics)."""
from pev_env.config import EnvConfig
from pev_env.core import ChargingCore
from pev_env.gym_env import PEVChargeGymEnv
from pev_env.metrics import METRIC_COLUMNS
from pev_env.observation import N_OBS, OBS_FIELDS, OBS_INDEX
from pev_env.parallel_env import PEVChargeEnv, parallel_env
from pev_env.registration import GYM_ID, register_envs
from pev_env.scenario import Scenario

register_envs()


def __getattr__(name: str):
    # make_scenario is loaded on first use: the scenario module pulls in pandas (ACN data)
    if name == "make_scenario":
        from pev_env.scenarios import make_scenario

        return make_scenario
    raise AttributeError(f"module 'pev_env' has no attribute {name!r}")

__all__ = [
    "GYM_ID", "METRIC_COLUMNS", "N_OBS", "OBS_FIELDS", "OBS_INDEX", "ChargingCore", "EnvConfig",
    "PEVChargeEnv", "PEVChargeGymEnv", "Scenario", "make_scenario", "parallel_env",
]
