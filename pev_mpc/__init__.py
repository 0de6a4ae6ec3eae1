"""Controllers for PEV charging in a load area: station QPs, area coordinator, decentralised and
centralised MPC (formulation in docs/FORMULATION.md), plus the environment policies."""

from pev_mpc.batch_qp import ActiveSetStations, BatchStations
from pev_mpc.centralised import solve_centralised
from pev_mpc.coordinator import AreaCoordinator, CoordinationResult, dual_step_size, project_to_limit, shift_prices
from pev_mpc.decentralised import make_station_pool, solve_decentralised
from pev_mpc.objective import OBJECTIVES, StationCosts, objective_value, station_costs
from pev_mpc.pool import PoolCapabilities, StationPool, StationReplies
from pev_mpc.problem import ChargingProblem, InfeasibleProblemError
from pev_mpc.separable_qp import SeparableStations
from pev_mpc.settings import MPCSettings
from pev_mpc.solution import MPCSolution
from pev_mpc.station_qp import OSQPStations, StationQP

from pev_mpc.policies import (EDF, LLF, POLICIES, CentralisedMPC, DecentralisedMPC, DecentralisedTrackingMPC,
                              DistributedMPC, EqualShare, OfflineOptimal, Uncontrolled)

__all__ = [
    "ActiveSetStations", "AreaCoordinator", "BatchStations", "ChargingProblem", "CoordinationResult", "InfeasibleProblemError",
    "MPCSettings", "MPCSolution", "OSQPStations", "PoolCapabilities", "SeparableStations", "StationPool", "StationQP", "StationReplies",
    "dual_step_size",
    "OBJECTIVES", "StationCosts", "objective_value", "station_costs",
    "make_station_pool", "project_to_limit", "shift_prices", "solve_centralised", "solve_decentralised",
    "CentralisedMPC", "DecentralisedMPC", "DecentralisedTrackingMPC", "DistributedMPC", "EDF", "LLF", "EqualShare", "OfflineOptimal", "POLICIES", "Uncontrolled",
]
