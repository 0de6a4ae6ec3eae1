"""Result of one MPC solve (decentralised or centralised)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class MPCSolution:
    """Plans, prices and solver statistics of one control step."""

    p: np.ndarray
    """(N, H) planned station powers (kW); p[:, 0] is the move to apply. Never exceeds P_ref."""
    prices: np.ndarray
    """(H,) area prices lambda >= 0 (objective units per kW): the coordinator's final prices or the
    dual of the coupling constraint; on a network (ChargingProblem.network) the (J, H) complex
    multipliers y of its rows (convention: pev_mpc.centralised)."""
    objective: float
    """sum_i f_i(p_i) of the returned plan."""
    iterations: int
    """Coordination rounds (decentralised) or solver iterations (centralised)."""
    converged: bool
    """True if the stopping tolerances were met (decentralised) or the solver reported optimal."""
    residual_kw: float = 0.0
    """Final area residual before projection: max_k of (sum_i p_i[k] - P_ref[k]) on bound prices'
    positive part and its absolute value where the price is positive (kW)."""
    messages: int = 0
    """Messages exchanged (price broadcasts received plus plans returned, counted per station)."""
    solve_time_s: float = 0.0
    """Wall time of the solve (s)."""
    fallbacks: int = 0
    """Station solves that failed or timed out and were replaced by a safe plan."""
    missing_replies: int = 0
    """Station replies that did not arrive in a round (the last plan was used)."""
    history: dict = field(default_factory=dict)
    """Optional per-round traces (e.g. 'residual_kw')."""
