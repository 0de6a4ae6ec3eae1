"""Reward: the seed's three weighted penalty components per station.

Per station i at step t (after the step is applied), with weights (w0, w1, w2):

* remaining SOC: ``-w0 * soc_remain_i / soc_ref`` while a PEV is plugged (kWh / kWh);
* local limit:   ``-w1`` when the station's request was outside [p_min, p_max] while
  plugged, or nonzero while free (the same flag as ``local_violation``);
* shared limit:  ``-w2`` at every plugged station when a shared limit is exceeded: the area power above
  P_ref, or on a network any constraint above its limit (the same steps as ``network_violation_steps``).

``shared_reward=True`` gives every agent the mean over stations of these rewards
(the mean keeps the scale independent of the number of stations).
"""
from __future__ import annotations

import numpy as np


def station_rewards(
    weights: tuple[float, float, float], soc_ref: float, plugged: np.ndarray, soc_remain_kwh: np.ndarray,
    local_violation: np.ndarray, shared_violation: bool,
) -> np.ndarray:
    """(N,) float64 per-station rewards (see module doc)."""
    w0, w1, w2 = weights
    penalty = w0 * soc_remain_kwh / soc_ref + w2 * float(shared_violation)
    return -(np.where(plugged, penalty, 0.0) + w1 * local_violation)


def agent_rewards(per_station: np.ndarray, shared: bool) -> np.ndarray:
    """Per-agent rewards: the per-station rewards, or their mean for every agent when shared."""
    if shared:
        return np.full_like(per_station, per_station.mean() if per_station.size else 0.0)
    return per_station
