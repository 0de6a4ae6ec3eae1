"""Hypothesis strategies shared by the network tests: random site networks with phasor gains."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from pev_env.network import Network

PHASES = np.exp(1j * np.deg2rad([30.0, -90.0, 150.0]))


@st.composite
def networks(draw, linear: bool | None = None) -> Network:
    """Random networks over 1-7 stations: three-phase-like rows (coefficients in {-1, 0, 1, 1/4} on line
    phasors, one phase per station), arbitrary complex rows, or power rows (linear)."""
    n = draw(st.integers(1, 7))
    J = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["power"] if linear else ["three-phase", "complex", "power"]))
    if kind == "power":
        gain = rng.choice([0.0, 1.0, 1.0, 0.5], size=(J, n)).astype(complex)
    elif kind == "three-phase":
        phase = PHASES[rng.integers(0, 3, size=n)] * 1000 / 208
        gain = rng.choice([-1.0, 0.0, 1.0, 0.25], size=(J, n)) * phase
    else:
        gain = rng.normal(size=(J, n)) + 1j * rng.normal(size=(J, n))
        gain[rng.random((J, n)) < 0.3] = 0.0
    limit = np.abs(gain).sum(axis=1) * rng.uniform(0.05, 1.2, size=J) + rng.uniform(0.1, 1.0, size=J)
    return Network("random", tuple(f"c{j}" for j in range(J)), gain, limit, ("A",) * J)
