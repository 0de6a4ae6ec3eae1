"""Rule-based controllers: Uncontrolled, EDF, LLF, RoundRobin, EqualShare.

Every rule first grants each plugged station its floor ``p_min`` (the plant applies
it anyway), then shares what the shared limits leave among the stations' extra needs
``min(p_max, soc_remain / (eta dt_h)) - floor`` (the power that finishes the PEV in
this step, so no rule requests more energy than the PEV still needs).

Under the area limit alone (``EnvConfig.network = 'area'``) the rest is the budget
``P_ref - sum(floor)``: EDF, LLF and EqualShare never request more than ``P_ref`` in
total (unless the floors alone exceed it). On a site network (``Policy.network``) the
rules allocate exactly under every constraint (``pev_mpc.network_allocation``): EDF
and LLF are sort keys (acnportal's ``SortedSchedulingAlgo`` with continuous rates),
RoundRobin is acnportal's ``RoundRobin``, EqualShare is max-min fair water-filling.
Uncontrolled ignores every limit on purpose (the seed's "charge at full power until
full").
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from pev_env.config import EnvConfig
from pev_env.network import Network, area_network
from pev_env.scenario import Scenario
from pev_mpc.network_allocation import max_min_fill, round_robin, sorted_fill
from pev_mpc.policies.allocation import priority_fill, water_fill
from pev_mpc.policies.base import Observed, Policy

ROUND_ROBIN_INCREMENT_A = 1.0
"""RoundRobin's increment per pass: 1 A at the station voltage (EnvConfig.voltage_v), i.e. 0.208 kW at
208 V (acnportal's RoundRobin steps through the EVSE's allowed rates, 1 A apart on a continuous EVSE)."""


class _ShareRule(Policy):
    """Floor + an allocation of the extra needs, decided by :meth:`_allocate`."""

    def _act(self, ob: Observed) -> tuple[np.ndarray, dict[str, Any]]:
        floor = ob.floor_kw()
        extra = np.maximum(ob.need_kw(self.config.eta, self.config.dt_h) - floor, 0.0)
        return floor + self._allocate(ob, floor, extra), {}

    @abstractmethod
    def _allocate(self, ob: Observed, floor: np.ndarray, extra: np.ndarray) -> np.ndarray:
        """Allocation (N,) kW above the floors, 0 <= a <= extra."""


class _LimitRule(_ShareRule):
    """The area budget P_ref - sum(floor) shared by :meth:`_share`, or the site network by :meth:`_network_share`."""

    def _allocate(self, ob: Observed, floor: np.ndarray, extra: np.ndarray) -> np.ndarray:
        if self.network is not None:
            return self._network_share(ob, self.network, floor, extra)
        return self._share(ob, extra, max(ob.P_ref - float(floor.sum()), 0.0))

    @abstractmethod
    def _share(self, ob: Observed, extra: np.ndarray, budget: float) -> np.ndarray:
        """Allocation (N,) kW with 0 <= a <= extra and, except for Uncontrolled, sum(a) <= budget."""

    @abstractmethod
    def _network_share(self, ob: Observed, network: Network, floor: np.ndarray, extra: np.ndarray) -> np.ndarray:
        """Allocation (N,) kW with 0 <= a <= extra and, except for Uncontrolled, |gain @ (floor + a)| <= limit."""


class Uncontrolled(_LimitRule):
    """Every plugged station charges at full power (capped by what the PEV still needs); ignores every limit."""

    name = "uncontrolled"

    def _share(self, ob: Observed, extra: np.ndarray, budget: float) -> np.ndarray:
        return extra

    def _network_share(self, ob: Observed, network: Network, floor: np.ndarray, extra: np.ndarray) -> np.ndarray:
        return extra


class SortedRule(_LimitRule):
    """Stations served in the order of a sort key (:meth:`_order`), each up to what the limits allow (on a network:
    the largest rate that keeps every constraint, in that order). A heuristic of your own is a subclass with
    `name` and `_order`."""

    @abstractmethod
    def _order(self, ob: Observed) -> np.ndarray:
        """Station indices (N,), first = highest priority."""

    def _share(self, ob: Observed, extra: np.ndarray, budget: float) -> np.ndarray:
        return priority_fill(extra, budget, self._order(ob))

    def _network_share(self, ob: Observed, network: Network, floor: np.ndarray, extra: np.ndarray) -> np.ndarray:
        return sorted_fill(network, floor, extra, self._order(ob))


class EDF(SortedRule):
    """Earliest deadline first: fewest steps to departure served first, up to the limits."""

    name = "edf"

    def _order(self, ob: Observed) -> np.ndarray:
        return np.argsort(ob.steps_to_departure, kind="stable")


class LLF(SortedRule):
    """Least laxity first: laxity = steps to departure - steps needed at p_max; up to the limits."""

    name = "llf"

    def _order(self, ob: Observed) -> np.ndarray:
        per_step = ob.p_max * self.config.eta * self.config.dt_h  # kWh per step at full power
        steps_needed = np.divide(ob.soc_remain, per_step, out=np.zeros_like(per_step), where=per_step > 0)
        laxity = ob.steps_to_departure - steps_needed
        return np.argsort(laxity, kind="stable")


class RoundRobin(_ShareRule):
    """acnportal's RoundRobin: stations in first-come-first-served order (plug-in step, then index) take
    ROUND_ROBIN_INCREMENT_A per pass until none can grow (`network_allocation.round_robin`); under the
    area limit alone the area is its one-row network."""

    name = "round-robin"

    def _reset(self, config: EnvConfig, scenario: Scenario | None, seed: int | None) -> None:
        n = config.n_stations
        self._limits = self.network if self.network is not None else area_network(n, config.P_ref)
        self._increment_kw = ROUND_ROBIN_INCREMENT_A * config.voltage_v / 1000.0
        self._plugged_at = np.zeros(n)      # step at which each station's PEV plugged in
        self._departure = np.zeros(n)       # its steps to departure last step
        self._was_plugged = np.zeros(n, dtype=bool)
        self._t = 0

    def _queue(self, ob: Observed) -> np.ndarray:
        """FCFS: a station is new when it was free last step or its steps to departure did not fall."""
        new = ob.plugged & (~self._was_plugged | (ob.steps_to_departure >= self._departure))
        self._plugged_at = np.where(new, self._t, self._plugged_at)
        self._was_plugged, self._departure, self._t = ob.plugged, ob.steps_to_departure, self._t + 1
        return np.lexsort((np.arange(ob.plugged.size), self._plugged_at))

    def _allocate(self, ob: Observed, floor: np.ndarray, extra: np.ndarray) -> np.ndarray:
        return round_robin(self._limits, floor, extra, self._queue(ob), self._increment_kw)


class EqualShare(_LimitRule):
    """Equal shares: of P_ref under the area limit (water-filling: capped shares are redistributed), max-min
    fair under a site network (progressive filling, `network_allocation.max_min_fill`)."""

    name = "equal-share"

    def _share(self, ob: Observed, extra: np.ndarray, budget: float) -> np.ndarray:
        return water_fill(extra, budget)

    def _network_share(self, ob: Observed, network: Network, floor: np.ndarray, extra: np.ndarray) -> np.ndarray:
        return max_min_fill(network, floor, extra)
