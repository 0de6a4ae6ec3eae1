"""Policies acting in the environment, one interface (see :class:`~pev_mpc.policies.base.Policy`).

``POLICIES`` maps the names used by runners and the CLI to factories;
``make_policy(name, **kwargs)`` builds one (kwargs go to the constructor, e.g.
``settings=MPCSettings(...)`` for the MPC policies).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pev_mpc.policies.base import Policy
from pev_mpc.policies.heuristics import EDF, LLF, EqualShare, RoundRobin, Uncontrolled
from pev_mpc.policies.mpc import (CentralisedMPC, DecentralisedMPC, DecentralisedTrackingMPC, DistributedMPC,
                                  ForesightMPC, HistoryMPC)
from pev_mpc.policies.offline import OfflineOptimal

POLICIES: dict[str, Callable[..., Policy]] = {
    cls.name: cls
    for cls in (Uncontrolled, EDF, LLF, EqualShare, RoundRobin, DecentralisedMPC, DecentralisedTrackingMPC,
                DistributedMPC, CentralisedMPC, ForesightMPC, HistoryMPC, OfflineOptimal)
}
"""Policy name -> factory (the class)."""


def make_policy(name: str, **kwargs: Any) -> Policy:
    """Build the policy registered as `name`; unknown names raise ValueError listing the valid ones."""
    if name not in POLICIES:
        raise ValueError(f"policy = {name!r}: must be one of {sorted(POLICIES)}")
    return POLICIES[name](**kwargs)


__all__ = [
    "POLICIES",
    "CentralisedMPC",
    "DecentralisedMPC",
    "DecentralisedTrackingMPC",
    "DistributedMPC",
    "EDF",
    "LLF",
    "EqualShare",
    "ForesightMPC",
    "HistoryMPC",
    "OfflineOptimal",
    "Policy",
    "RoundRobin",
    "Uncontrolled",
    "make_policy",
]
