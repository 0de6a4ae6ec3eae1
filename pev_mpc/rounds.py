"""What a coordination step's rounds cost and keep, shared by the area and the network coordinator: the
counters (`Counts`) and the replies a round leaves (`take_replies`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pev_mpc.pool import StationReplies


@dataclass(frozen=True)
class Counts:
    """What a step has spent and seen so far."""

    rounds: int = 0
    messages: int = 0
    fallbacks: int = 0
    missing: int = 0
    gap_checks: int = 0
    """Certifications in which the stations valued the projected plans."""
    exchanges: int = 0
    """Model-market exchanges."""
    model_rounds: int = 0
    """The coordinator's own rounds on the model market (no messages)."""
    trace: tuple[float, ...] = ()
    """The step's residual (kW) at every stopping test: the area's KKT residual, the power the network's
    projection shed."""

    def add(self, **increments: int | tuple[float, ...]) -> Counts:
        """The counts raised by increments (trace: the entries appended)."""
        return replace(self, **{k: getattr(self, k) + v for k, v in increments.items()})


def take_replies(plan: np.ndarray, value: np.ndarray, replies: StationReplies, prices: np.ndarray,
                 counts: Counts) -> tuple[np.ndarray, np.ndarray, Counts]:
    """After a round at prices ((H,) broadcast or (N, H) per station): the plans (N, H) and their values f_i
    (the reported value less the price term) of the stations that answered, the others' as they were, and
    the counts with the round, its messages (one each way per answer), fallbacks and lost replies."""
    ok = replies.answered
    plan, value = plan.copy(), value.copy()
    plan[ok] = replies.p[ok]
    paid = replies.p[ok] @ prices if prices.ndim == 1 else np.sum(replies.p[ok] * prices[ok], axis=1)
    value[ok] = replies.value[ok] - paid
    counts = counts.add(rounds=1, messages=plan.shape[0] + int(ok.sum()),
                        fallbacks=int(np.sum(replies.failed & ok)), missing=int(np.sum(~ok)))
    return plan, value, counts
