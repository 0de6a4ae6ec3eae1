"""The station pool as the coordinator sees it: the replies to one price broadcast and the protocol
every pool (closed form, active set, interior point, OSQP, Ray shards) implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True, eq=False)
class StationReplies:
    """What the stations send back for one price broadcast."""

    p: np.ndarray
    """(N, H) plans (kW)."""
    value: np.ndarray
    """(N,) local optimal values f_i(p_i) + lambda . p_i."""
    answered: np.ndarray
    """(N,) bool, False where a reply did not arrive (p and value there are ignored)."""
    failed: np.ndarray
    """(N,) bool, True where the local QP failed and the station sent its safe fallback plan."""
    sensitivity: np.ndarray | None = None
    """(H, H) sum over stations of -dp_i/dlambda (PSD), when requested (smoothed if smoothing was sent)."""
    exact_sensitivity: np.ndarray | None = None
    """(H, H) the unsmoothed sum of -dp_i/dlambda, from pools that report it next to `sensitivity`."""
    bids: Bids | None = None
    """Each station's bid curve at every step, from pools that report them."""


@dataclass(frozen=True, eq=False)
class Bids:
    """Station i's power at step k if only lambda_k moved by delta (its other prices and its budget
    multiplier held): clip(level[i, k] - delta * compliance[i], lower, upper), with the plan bounds
    lower = p_min and upper = p_max while plugged (0 otherwise). Local data only: the station's
    unclipped plan, the price compliance of its own QP (kW per price unit) and the multiplier of its
    energy budget."""

    level: np.ndarray
    """(N, H) unclipped plans (kW); the plans are their clip to the bounds."""
    compliance: np.ndarray
    """(N,) kW per price unit, > 0."""
    multiplier: np.ndarray
    """(N,) the multiplier mu_i >= 0 of the station's energy budget sum_k p_i[k] <= B_i (price units),
    > 0 where the budget binds: its marginal value of energy beyond the budget."""


@dataclass(frozen=True)
class PoolCapabilities:
    """What a station pool's replies can carry beyond plans and values: each flag names the keyword of
    `StationPool.respond` that it makes the pool honour (a pool asked for one it lacks raises)."""

    barrier: bool = False
    """respond(..., barrier=tau) with tau > 0 (objective units): every station solves its QP with the
    log-barrier term -tau * sum log(slacks of p_min, p_max and the SOC cap) and reports that smoothed
    optimum, its value (barrier term included) and sensitivity ('smoothed-newton')."""
    smoothing: bool = False
    """respond(..., smoothing=omega) (H,) kW: the reported sensitivity is smoothed by omega."""
    exact: bool = False
    """respond(..., smoothing=omega, exact=True) also reports the exact sensitivity
    (StationReplies.exact_sensitivity; without smoothing the sensitivity is the exact one anyway)."""
    bids: bool = False
    """Every reply carries Bids; 'newton' then also clears the market of the station QPs they reveal
    (MPCSettings.model_after)."""
    reports: bool = False
    """The replies are the exact optima of the station QPs (not an iterative solver's approximation), so the
    stations can report their QPs once and the coordinator solve them as they do: 'newton' then clears the
    market of the reported QPs where the replies carry no bids (MPCSettings.model_after)."""
    slack_share: float = 0.01
    """Share of |area residual| that always enters omega (area_state.smoothing): stations whose
    steps are coupled by their SOC chain count unused capacity at a zero price a little."""


MINIMAL = PoolCapabilities()
"""Plans and values only (and the exact sensitivity when asked for one)."""


def check_request(pool: StationPool, barrier: float, smoothing: np.ndarray | None, exact: bool) -> None:
    """Raise ValueError if respond() was asked for a reply the pool's capabilities do not include."""
    asked = {"barrier": barrier > 0.0, "smoothing": smoothing is not None, "exact": exact}
    missing = [name for name, wanted in asked.items() if wanted and not getattr(pool.capabilities, name)]
    if missing:
        raise ValueError(f"{type(pool).__name__}.respond: {', '.join(missing)} requested, but its capabilities "
                         f"are {pool.capabilities}")


class StationPool(Protocol):
    """The stations as the coordinator sees them (SeparableStations, BatchStations, ActiveSetStations,
    OSQPStations, RayStations): one method, and what its replies can carry declared in `capabilities`
    (the coordinator asks only for those, `ask_pool`)."""

    n_stations: int
    horizon: int
    capabilities: PoolCapabilities

    def respond(self, prices: np.ndarray, want_sensitivity: bool = False, *, barrier: float = 0.0,
                smoothing: np.ndarray | None = None, exact: bool = False) -> StationReplies:
        """Every station's reply to prices (H,) (every station's) or (N, H) (one row each)."""
        ...


def priced(p: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """(N,) what each plan pays, prices_i . p_i: prices (H,) are every station's, (N, H) one row each."""
    return p @ prices if prices.ndim == 1 else np.sum(p * prices, axis=1)


def station_rows(prices: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
    """The prices of the stations `rows`: the broadcast (H,) itself, or those rows of (N, H)."""
    return prices if prices.ndim == 1 else prices[rows]


def ask_pool(pool: StationPool, prices: np.ndarray, want_sensitivity: bool, barrier: float = 0.0,
             smoothing: np.ndarray | None = None, exact: bool = False) -> StationReplies:
    """pool.respond with only what the pool's capabilities include: barrier > 0 (pools that smooth their
    QPs), smoothing (pools that smooth their sensitivity), exact with it (pools that report both)."""
    can = pool.capabilities
    if barrier > 0.0:
        return pool.respond(prices, want_sensitivity, barrier=barrier)
    if smoothing is not None and can.smoothing:
        return pool.respond(prices, want_sensitivity, smoothing=smoothing, exact=exact and can.exact)
    return pool.respond(prices, want_sensitivity)
