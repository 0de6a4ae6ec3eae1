"""The model market's arrays (pev_mpc.network_market): the cells' gains read from the CSR arrays equal the
dense gains, the stacked rows are the canonical CSC that scipy's stacking gives, and the polish's stacked
blocks hold every coordinate once, grouped by step."""

import numpy as np
from hypothesis import given, settings as hsettings, strategies as st
from scipy import sparse

from network_strategies import networks
from pev_mpc.network_market import _cell_gains, _Rows, _stack, _step_blocks


@hsettings(max_examples=40, deadline=None)
@given(network=networks(), data=st.data())
def test_cell_gains_are_the_dense_gains_of_each_cell_in_row_order(network, data):
    J, N = network.gain.shape
    rows = np.flatnonzero(data.draw(st.lists(st.booleans(), min_size=J, max_size=J)))
    station = np.asarray(data.draw(st.lists(st.integers(0, N - 1), max_size=12)), dtype=np.int64)
    j, cell, g = _cell_gains(network, rows, station)
    dense = network.gain[rows] / network.limit[rows][:, None]
    expected = [(r, c) for c in range(station.size) for r in np.flatnonzero(dense[:, station[c]])]
    assert list(zip(j.tolist(), cell.tolist())) == expected
    np.testing.assert_array_equal(g, dense[j, station[cell]])


@hsettings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), blocks=st.integers(1, 4), n=st.integers(1, 8))
def test_stacked_rows_are_scipys_canonical_stack(seed, blocks, n):
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(blocks):
        m = int(rng.integers(0, 5))
        dense = np.where(rng.random((m, n)) < 0.4, rng.normal(size=(m, n)), 0.0)
        row, cell = np.nonzero(dense)
        order = rng.permutation(row.size)                       # any order of the triplets
        parts.append(_Rows(row[order], cell[order], dense[row, cell][order], rng.normal(size=m)))
    A, b = _stack(parts, n)
    expected = sparse.vstack([sparse.csc_matrix((p.value, (p.row, p.cell)), shape=(p.rhs.size, n)) for p in parts],
                             format="csc")
    assert A.shape == expected.shape and A.has_sorted_indices
    for name in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(A, name), getattr(expected, name))
    np.testing.assert_array_equal(b, np.concatenate([p.rhs for p in parts]))


@given(k=st.lists(st.integers(0, 5), max_size=30))
def test_polish_blocks_hold_each_coordinate_once_by_step(k):
    k = np.asarray(k, dtype=np.int64)
    groups = _step_blocks(k)
    seen = np.concatenate([idx.ravel() for idx, _ in groups]) if groups else np.zeros(0, dtype=np.int64)
    assert sorted(seen.tolist()) == list(range(k.size))
    for idx, step in groups:
        assert np.all(k[idx] == step[:, None]) and np.all(np.diff(idx, axis=1) > 0)
