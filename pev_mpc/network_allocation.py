"""The network prices of the MPC (`station_prices`, `dual_penalty`) and, re-exported from `pev_env.allocation`
(where the feasibility layer of the learned agents needs them: pev_env never imports pev_mpc), the exact fill
primitives under a site network: `step_limit`, `largest_rate`, `sorted_fill`, `round_robin`, `max_min_fill`,
`scale_into_network` (see that module for the closed form they rest on).
"""

from __future__ import annotations

import numpy as np

from pev_env.allocation import (SHRINK, largest_rate, max_min_fill, round_robin, scale_into_network, sorted_fill,
                                 step_limit)
from pev_env.network import Network

__all__ = ["SHRINK", "dual_penalty", "largest_rate", "max_min_fill", "round_robin", "scale_into_network",
           "sorted_fill", "station_prices", "step_limit"]


def station_prices(network: Network, prices: np.ndarray) -> np.ndarray:
    """(N, H) pi_ik = sum_j Re(conj(G_ji) y_jk): station i's price per kW at step k of the network
    multipliers y (J, H) complex (the convention of pev_mpc.centralised and pev_mpc.network_coordinator)."""
    return network.weigh(prices)


def dual_penalty(network: Network, y: np.ndarray) -> float:
    """sum_jk L_j |y_jk|: what the network multipliers y (J, H) charge for the limits (the dual's last term)."""
    return float(network.limit @ np.abs(y).sum(axis=1))
