"""Rule-based controllers: Uncontrolled, EDF, LLF, EqualShare.

Every rule first grants each plugged station its floor ``p_min`` (the plant applies
it anyway), then shares the rest of the area limit ``P_ref`` among the stations'
extra needs ``min(p_max, soc_remain / (eta dt_h)) - floor`` (the power that finishes
the PEV in this step, so no rule requests more energy than the PEV still needs).
EDF, LLF and EqualShare never request more than ``P_ref`` in total (unless the
floors alone exceed it); Uncontrolled ignores ``P_ref`` on purpose (the seed's
"charge at full power until full").
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from pev_mpc.policies.allocation import priority_fill, water_fill
from pev_mpc.policies.base import Observed, Policy


class _ShareRule(Policy):
    """Floor + a share of the remaining area budget, decided by :meth:`_share`."""

    def _act(self, ob: Observed) -> tuple[np.ndarray, dict[str, Any]]:
        floor = ob.floor_kw()
        extra = np.maximum(ob.need_kw(self.config.eta, self.config.dt_h) - floor, 0.0)
        budget = max(ob.P_ref - float(floor.sum()), 0.0)
        return floor + self._share(ob, extra, budget), {}

    @abstractmethod
    def _share(self, ob: Observed, extra: np.ndarray, budget: float) -> np.ndarray:
        """Allocation (N,) kW with 0 <= a <= extra and, except for Uncontrolled, sum(a) <= budget."""


class Uncontrolled(_ShareRule):
    """Every plugged station charges at full power (capped by what the PEV still needs); ignores P_ref."""

    name = "uncontrolled"

    def _share(self, ob: Observed, extra: np.ndarray, budget: float) -> np.ndarray:
        return extra


class EDF(_ShareRule):
    """Earliest deadline first: fewest steps to departure served first, up to P_ref."""

    name = "edf"

    def _share(self, ob: Observed, extra: np.ndarray, budget: float) -> np.ndarray:
        return priority_fill(extra, budget, np.argsort(ob.steps_to_departure, kind="stable"))


class LLF(_ShareRule):
    """Least laxity first: laxity = steps to departure - steps needed at p_max; up to P_ref."""

    name = "llf"

    def _share(self, ob: Observed, extra: np.ndarray, budget: float) -> np.ndarray:
        per_step = ob.p_max * self.config.eta * self.config.dt_h  # kWh per step at full power
        steps_needed = np.divide(ob.soc_remain, per_step, out=np.zeros_like(per_step), where=per_step > 0)
        laxity = ob.steps_to_departure - steps_needed
        return priority_fill(extra, budget, np.argsort(laxity, kind="stable"))


class EqualShare(_ShareRule):
    """P_ref split equally among plugged stations (water-filling: capped shares are redistributed)."""

    name = "equal-share"

    def _share(self, ob: Observed, extra: np.ndarray, budget: float) -> np.ndarray:
        return water_fill(extra, budget)
