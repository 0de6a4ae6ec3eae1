"""The area coordination's phases on explicit state: each takes an AreaState and returns the next one."""

from dataclasses import replace

import numpy as np

from pev_mpc import BatchStations, ChargingProblem, MPCSettings, SeparableStations
from pev_mpc.area_newton import Proposal, Search, judge, newton, on_rejection
from pev_mpc.area_state import AreaContext, AreaState, ask, certify, with_ceiling

H = 8


def binding_problem(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return ChargingProblem(x0=rng.uniform(0, 15, n), r=np.full(n, 24.0), s=np.full(n, 24.0),
                           d=rng.integers(1, H + 1, n), p_min=0.0, p_max=22.0, eta=0.9, dt_h=5 / 60,
                           P_ref=np.full(H, 0.3 * 22 * n), horizon=H)


def tracking_context(n=4, seed=3):
    pr = binding_problem(n, seed)
    st = MPCSettings(horizon=H, objective="tracking")
    return AreaContext.of(BatchStations(pr, st), pr, st)


class LosingPool:
    """Wraps a pool; station 0's reply is lost in the first round."""

    def __init__(self, inner):
        self.inner, self.n_stations, self.horizon = inner, inner.n_stations, inner.horizon
        self.capabilities, self.rounds = inner.capabilities, 0

    def respond(self, prices, want_sensitivity=False, **kw):
        rep = self.inner.respond(prices, want_sensitivity, **kw)
        self.rounds += 1
        answered = rep.answered.copy()
        answered[0] = self.rounds > 1
        return replace(rep, p=np.where(answered[:, None], rep.p, np.nan), answered=answered)


def test_a_lost_reply_is_asked_again_and_counted():
    inner = tracking_context()
    ctx = replace(inner, pool=LosingPool(inner.pool))
    blank = AreaState.blank(ctx)
    state = ask(ctx, blank, np.zeros(H), False)
    c = state.counts
    assert (c.rounds, c.missing, c.messages) == (2, 1, 2 * 4 + 3 + 4)
    assert not state.stale.any() and np.all(np.isfinite(state.plan))
    assert blank.counts.rounds == 0 and blank.stale.all()  # the state it took is unchanged


def test_certification_counts_its_messages_in_the_returned_state():
    """Within tolerance but not certified by the ceiling bound: the stations value the projected plans
    (2 messages each), counted in the state certify returns, not in the one it took."""
    ctx = tracking_context()
    state = with_ceiling(ctx, ask(ctx, AreaState.blank(ctx), np.zeros(H), False))
    near = replace(state, last=replace(state.last, prices=np.full(H, 10.0), residual=np.full(H, -5e-5)))
    checked, _ = certify(ctx, near)
    assert checked.counts.messages == near.counts.messages + 2 * 4
    assert checked.counts.gap_checks == near.counts.gap_checks + 1 == 1
    assert near.counts == state.counts
    far = replace(near, last=replace(near.last, residual=np.full(H, -1.0)))  # too far to be worth a check
    assert certify(ctx, far) == (far, False)


def test_a_rejected_trial_keeps_the_plans_of_the_kept_state():
    ctx = tracking_context()
    kept = with_ceiling(ctx, ask(ctx, AreaState.blank(ctx), np.zeros(H), True))
    tried = ask(ctx, kept, np.minimum(kept.last.prices + 50.0, kept.ceiling), True)
    proposal = Proposal(tried.last.prices, exact=False, jumped=False, from_pivot=False)
    search = Search(floor=1e-9, delta=1e-9)
    verdict = judge(ctx, kept, tried, proposal)
    state, after = on_rejection(ctx, kept, tried, search, proposal, verdict)
    assert not np.array_equal(tried.plan, kept.plan)
    assert state.plan is kept.plan and state.last is kept.last and state.stale is kept.stale
    assert state.counts == tried.counts and state.counts.rounds == kept.counts.rounds + 1
    assert after.rejected == 1 and not after.streak and after.delta > search.delta and after.length == 1.0


def test_newton_hands_over_at_its_round_cap_with_the_replies_to_its_prices():
    pr = binding_problem(n=12, seed=2)
    st = MPCSettings(horizon=H)
    ctx = AreaContext.of(SeparableStations(pr, st), pr, st)
    state, outcome = newton(ctx, AreaState.blank(ctx), np.zeros(H), rounds=1)
    assert outcome == "handover" and state.counts.rounds == 1
    assert state.last.replies.bids is not None
    again = ask(ctx, AreaState.blank(ctx), state.last.prices, True)
    np.testing.assert_array_equal(again.plan, state.plan)


def test_a_pool_without_bids_clears_its_reported_qps_after_model_after_rounds():
    """Tracking stations carry no bids: after model_after rounds they report their QPs once (one message each),
    the coordinator clears that market itself, and the replies to its prices certify in a few rounds; the
    plans are the centralised optimum, as by Newton alone (which takes 21-30 rounds on these problems)."""
    from pev_mpc import solve_centralised
    from pev_mpc.coordinator import coordinate_area

    for seed in range(3):
        pr = binding_problem(n=12, seed=seed)
        alone, reported = (MPCSettings(horizon=H, objective="tracking", model_after=m) for m in (None, 2))
        slow = coordinate_area(BatchStations(pr, alone), pr, alone)
        fast = coordinate_area(BatchStations(pr, reported), pr, reported)
        assert slow.converged and fast.converged
        assert slow.history["model_exchanges"] == 0 and fast.history["model_exchanges"] == 1
        assert fast.iterations <= 6 < 20 <= slow.iterations
        optimum = solve_centralised(pr, alone).p
        for result in (slow, fast):
            np.testing.assert_allclose(result.p, optimum, atol=1e-3)
