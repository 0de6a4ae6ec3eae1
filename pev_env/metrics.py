"""Episode metrics (the metric names of docs/INTERFACES.md, units in the names) and the per-PEV table.

Definitions:

* ``energy_requested_kwh``: sum over PEVs of (target - soc_init)+.
* ``energy_delivered_kwh``: energy stored in the batteries, sum of (soc - soc_init): charging beyond the target
  (up to the capacity) included, so it can exceed ``energy_requested_kwh``.
* ``unmet_energy_kwh``: sum over PEVs of (target - SOC at departure)+; a PEV still plugged
  uses its current SOC, a PEV never plugged counts its whole need.
* ``pevs_fully_served``: PEVs whose unmet energy is within 1e-3 kWh.
* ``area_violation_steps``: steps with area power > P_ref + 1e-9 kW;
  ``area_overload_kwh`` = sum of the kW over P_ref times dt_h.
* ``network_violation_steps``: steps in which any constraint of the site network (``pev_env.network``) has a
  load above its limit plus the tolerance of ``pev_env.meter`` (1e-9 kW on a kW row, 1e-9 of the limit + 1e-9 A
  on a current row); on the default ``area`` network it equals ``area_violation_steps``.
* ``network_overload_max_pct``: the largest 100 (load - limit) / limit over those steps and constraints (%),
  0 when none was exceeded.
* ``local_violation_steps``: (station, step) pairs with a local violation.
* ``episode_reward``: sum over steps of the mean per-station reward (the shared reward's return).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pev_env.scenario import Scenario
from pev_env.schedule import PlugSchedule

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

METRIC_COLUMNS: tuple[str, ...] = (
    "energy_requested_kwh", "energy_delivered_kwh", "unmet_energy_kwh", "unmet_energy_pct",
    "pevs_total", "pevs_fully_served", "pevs_never_plugged",
    "area_violation_steps", "area_overload_max_kw", "area_overload_kwh",
    "network_violation_steps", "network_overload_max_pct",
    "local_violation_steps", "peak_power_kw", "episode_reward",
)
CONTROLLER_COLUMNS: tuple[str, ...] = ("step_time_median_ms", "step_time_p95_ms", "coordination_iterations_mean")
SERVED_TOL_KWH = 1e-3


def unmet_kwh(scenario: Scenario, soc: np.ndarray) -> np.ndarray:
    """(M,) kWh still missing per PEV: (target - soc)+."""
    return np.maximum(scenario.soc_target - soc, 0.0)


def episode_metrics(
    scenario: Scenario, schedule: PlugSchedule, soc: np.ndarray, area_power_kw: np.ndarray,
    area_overload_kw: np.ndarray, local_violation: np.ndarray, mean_reward: np.ndarray, dt_h: float,
    network_overload_pct: np.ndarray,
) -> dict[str, float | int]:
    """Metrics of the steps recorded so far (arrays over recorded steps; soc is the current SOC;
    network_overload_pct: each step's largest relative overload of a network constraint, %, 0 when none)."""
    requested = float(scenario.energy_requested.sum())
    unmet = unmet_kwh(scenario, soc)
    total_unmet = float(unmet.sum())
    return {
        "energy_requested_kwh": requested,
        "energy_delivered_kwh": float((soc - scenario.soc_init).sum()),
        "unmet_energy_kwh": total_unmet,
        "unmet_energy_pct": 100.0 * total_unmet / requested if requested > 0 else 0.0,
        "pevs_total": int(scenario.n_pevs),
        "pevs_fully_served": int((unmet <= SERVED_TOL_KWH).sum()),
        "pevs_never_plugged": int((~schedule.plugged).sum()),
        "area_violation_steps": int((area_overload_kw > 0).sum()),
        "area_overload_max_kw": float(area_overload_kw.max(initial=0.0)),
        "area_overload_kwh": float(area_overload_kw.sum() * dt_h),
        "network_violation_steps": int((network_overload_pct > 0).sum()),
        "network_overload_max_pct": float(network_overload_pct.max(initial=0.0)),
        "local_violation_steps": int(local_violation.sum()),
        "peak_power_kw": float(area_power_kw.max(initial=0.0)),
        "episode_reward": float(mean_reward.sum()),
    }


def pev_table(scenario: Scenario, schedule: PlugSchedule, soc: np.ndarray) -> pd.DataFrame:
    """One row per PEV: sessions, assignment, energies (kWh) and whether it was fully served."""
    import pandas as pd

    unmet = unmet_kwh(scenario, soc)
    return pd.DataFrame({
        "pev": np.arange(scenario.n_pevs),
        "arrival": scenario.arrival,
        "departure": scenario.departure,
        "station": schedule.station,
        "plug_step": schedule.plug_step,
        "unplug_step": schedule.unplug_step,
        "waited_steps": schedule.waited_steps,
        "soc_init_kwh": scenario.soc_init,
        "target_kwh": scenario.soc_target,
        "delivered_kwh": soc - scenario.soc_init,
        "unmet_kwh": unmet,
        "served": unmet <= SERVED_TOL_KWH,
    })
